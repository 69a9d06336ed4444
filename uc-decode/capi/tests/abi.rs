//! The C ABI called from Rust, in process: results equal the Rust API's bit for bit, every caller
//! error is reported with its code, and error names and clauses come from uc-format.

mod common;

use std::ffi::CStr;
use std::ptr;

use uc_decode::{ErrorKind, Record};
use uc_decode_capi::*;

fn parse(bytes: &[u8]) -> (Box<uc_record>, i32, u64) {
    let mut h = Box::new(uc_record::new());
    let mut off = u64::MAX;
    // SAFETY: valid slice and handle; `bytes` outlives every use of `h` in the callers.
    let rc = unsafe { uc_record_parse(bytes.as_ptr(), bytes.len(), &mut *h, &mut off) };
    (h, rc, off)
}

fn name(code: i32) -> &'static str {
    // SAFETY: the function returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(uc_error_name(code)) }.to_str().unwrap()
}

fn clause(code: i32) -> &'static str {
    // SAFETY: the function returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(uc_error_clause(code)) }.to_str().unwrap()
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn getters_and_decodes_match_the_rust_api() {
    for (label, bytes) in common::valid_records() {
        let rec = Record::parse(&bytes).unwrap();
        let (h, rc, off) = parse(&bytes);
        assert_eq!(
            (rc, off),
            (UC_OK, u64::MAX),
            "{label}: parse; err_offset untouched on success"
        );
        let h = &*h;
        // SAFETY (all calls below): `h` holds a record parsed from `bytes`, which is alive; every
        // output pointer comes with the length of its buffer.
        unsafe {
            assert_eq!(uc_record_bits(h), u32::from(rec.bits()), "{label}");
            assert_eq!(uc_record_ndim(h) as usize, rec.shape().len(), "{label}");
            assert_eq!(uc_record_numel(h), rec.len(), "{label}");
            assert_eq!(uc_record_rows(h), rec.rows(), "{label}");
            assert_eq!(uc_record_cols(h), rec.cols(), "{label}");
            assert_eq!(uc_record_overlay_rank(h), rec.overlay_rank(), "{label}");
            assert_eq!(uc_record_overlay_dtype(h), rec.overlay_dtype() as u8, "{label}");
            assert_eq!(uc_record_crc32(h), rec.layout().crc32, "{label}");
            assert_eq!(uc_record_block_size(h), rec.block_size(), "{label}");
            assert_eq!(uc_record_sub_block(h), rec.sub_block().unwrap_or(0), "{label}");
            let mut dims = [0u64; 8];
            let nd = uc_record_shape(h, dims.as_mut_ptr(), dims.len());
            assert_eq!(&dims[..nd as usize], rec.shape(), "{label}");
            let mut small = [7u64; 8];
            if nd > 1 {
                let cap = nd as usize - 1;
                assert_eq!(uc_record_shape(h, small.as_mut_ptr(), cap), UC_ERR_OUTPUT_LENGTH);
                assert_eq!(small, [7; 8], "{label}: nothing written on a short buffer");
            }
            assert_eq!(uc_record_shape(h, ptr::null_mut(), 8), UC_ERR_NULL);

            let n = rec.len() as usize;
            let mut want = vec![0f32; n];
            rec.decode_into(&mut want).unwrap();
            let mut got = vec![f32::NAN; n];
            assert_eq!(uc_record_decode(h, got.as_mut_ptr(), n), UC_OK, "{label}");
            assert_eq!(bits_of(&got), bits_of(&want), "{label}: decode");
            assert_eq!(uc_record_decode(h, got.as_mut_ptr(), n - 1), UC_ERR_OUTPUT_LENGTH);
            assert_eq!(uc_record_decode(h, ptr::null_mut(), n), UC_ERR_NULL);
            assert_eq!(uc_record_decode(h, ptr::null_mut(), 0), UC_ERR_OUTPUT_LENGTH);

            // Every range that starts and ends at a few interesting places.
            for start in [0, 1, n / 2, n - 1, n] {
                for len in [0, 1, 63, 64, 65, n] {
                    let mut part = vec![f32::NAN; len];
                    let rc = uc_record_decode_range(h, start as u64, part.as_mut_ptr(), len);
                    if start + len <= n {
                        assert_eq!(rc, UC_OK, "{label}: range {start}+{len}");
                        assert_eq!(bits_of(&part), bits_of(&want[start..start + len]), "{label}");
                    } else {
                        assert_eq!(rc, UC_ERR_OUT_OF_RANGE, "{label}: range {start}+{len}");
                    }
                }
            }
            assert_eq!(
                uc_record_decode_range(h, u64::MAX, got.as_mut_ptr(), 2),
                UC_ERR_OUT_OF_RANGE
            );
            assert_eq!(uc_record_decode_range(h, n as u64, ptr::null_mut(), 0), UC_OK);

            let (rows, cols) = (rec.rows() as usize, rec.cols() as usize);
            for (a, b) in [(0, rows), (0, 1), (rows - 1, rows), (rows / 2, rows)] {
                let mut part = vec![f32::NAN; (b - a) * cols];
                let rc = uc_record_decode_rows(h, a as u64, b as u64, part.as_mut_ptr(), part.len());
                assert_eq!(rc, UC_OK, "{label}: rows {a}..{b}");
                assert_eq!(bits_of(&part), bits_of(&want[a * cols..b * cols]), "{label}");
            }
            let mut one = vec![0f32; cols + 1 + rows * rec.overlay_rank() as usize];
            assert_eq!(uc_record_decode_rows(h, 1, 0, one.as_mut_ptr(), 0), UC_ERR_OUT_OF_RANGE);
            let (r1, r2) = (rows as u64, rows as u64 + 1);
            assert_eq!(
                uc_record_decode_rows(h, r1, r2, one.as_mut_ptr(), cols),
                UC_ERR_OUT_OF_RANGE
            );
            assert_eq!(
                uc_record_decode_rows(h, 0, 1, one.as_mut_ptr(), cols + 1),
                UC_ERR_OUTPUT_LENGTH
            );

            let r = rec.overlay_rank() as usize;
            let mut u_want = vec![0f32; rows * r];
            let mut v_want = vec![0f32; r * cols];
            rec.overlay_u_into(&mut u_want).unwrap();
            rec.overlay_v_into(&mut v_want).unwrap();
            let mut u = vec![f32::NAN; rows * r];
            let mut v = vec![f32::NAN; r * cols];
            assert_eq!(uc_record_overlay_u(h, u.as_mut_ptr(), u.len()), UC_OK, "{label}");
            assert_eq!(uc_record_overlay_v(h, v.as_mut_ptr(), v.len()), UC_OK, "{label}");
            assert_eq!(bits_of(&u), bits_of(&u_want), "{label}: U");
            assert_eq!(bits_of(&v), bits_of(&v_want), "{label}: V");
            if r == 0 {
                assert_eq!(uc_record_overlay_u(h, ptr::null_mut(), 0), UC_OK);
                assert_eq!(uc_record_overlay_v(h, ptr::null_mut(), 0), UC_OK);
            }
            assert_eq!(
                uc_record_overlay_u(h, one.as_mut_ptr(), u.len() + 1),
                UC_ERR_OUTPUT_LENGTH
            );

            let mut merged_want = want.clone();
            rec.merge_overlay_into(&mut merged_want).unwrap();
            let mut merged = want.clone();
            assert_eq!(uc_record_merge_overlay(h, merged.as_mut_ptr(), n), UC_OK, "{label}");
            assert_eq!(bits_of(&merged), bits_of(&merged_want), "{label}: merge");
            assert_eq!(
                uc_record_merge_overlay(h, merged.as_mut_ptr(), n - 1),
                UC_ERR_OUTPUT_LENGTH
            );
        }
    }
}

#[test]
fn validation_errors_are_negated_codes_with_offsets() {
    for (label, bytes) in common::invalid_records() {
        let want = Record::parse(&bytes).unwrap_err();
        let (h, rc, off) = parse(&bytes);
        assert_eq!(rc, -(want.kind.code() as i32), "{label}");
        assert_eq!(off, want.offset, "{label}");
        assert_eq!(name(rc), want.kind.name(), "{label}");
        // SAFETY: `h` was written by uc_record_parse.
        unsafe {
            assert_eq!(uc_record_numel(&*h), 0, "{label}: a failed parse leaves no record");
            assert_eq!(uc_record_decode(&*h, ptr::null_mut(), 0), UC_ERR_BAD_HANDLE, "{label}");
        }
    }
}

#[test]
fn a_misaligned_err_offset_pointer_is_written_as_the_header_promises() {
    let (label, bytes) = common::invalid_records().into_iter().next().unwrap();
    let want = Record::parse(&bytes).unwrap_err();
    let mut buf = [0xaau8; 17];
    let mut h = Box::new(uc_record::new());
    // SAFETY: valid slice and handle; the offset pointer is valid for 8 bytes (unaligned).
    let rc = unsafe { uc_record_parse(bytes.as_ptr(), bytes.len(), &mut *h, buf.as_mut_ptr().add(1).cast()) };
    assert_eq!(rc, -(want.kind.code() as i32), "{label}");
    assert_eq!(
        u64::from_ne_bytes(buf[1..9].try_into().unwrap()),
        want.offset,
        "{label}"
    );
    assert_eq!(
        (buf[0], buf[9]),
        (0xaa, 0xaa),
        "only the 8 bytes of the offset are written"
    );
}

#[test]
fn null_and_invalid_pointers_are_reported() {
    let bytes = common::record(2, &[4, 16], 0, uc_decode::OverlayDtype::None, 3);
    let mut h = uc_record::new();
    let mut off = 0u64;
    let mut out = [0f32; 64];
    // SAFETY (all calls): every pointer is null, or valid for its stated length.
    unsafe {
        // A null `data` is an empty buffer when len is 0, an error otherwise.
        assert_eq!(uc_record_parse(ptr::null(), 0, &mut h, &mut off), -1);
        assert_eq!(off, 0);
        off = 99;
        assert_eq!(uc_record_parse(ptr::null(), 10, &mut h, &mut off), UC_ERR_NULL);
        assert_eq!(off, 99, "err_offset is written only for validation errors");
        assert_eq!(
            uc_record_parse(bytes.as_ptr(), bytes.len(), ptr::null_mut(), &mut off),
            UC_ERR_NULL
        );
        // err_offset may be null.
        assert_eq!(uc_record_parse(bytes.as_ptr(), 3, &mut h, ptr::null_mut()), -1);

        // Zero-filled handle: no record.
        let zero = uc_record::default();
        assert_eq!(uc_record_decode(&zero, out.as_mut_ptr(), 64), UC_ERR_BAD_HANDLE);
        assert_eq!(uc_record_shape(&zero, ptr::null_mut(), 0), UC_ERR_BAD_HANDLE);
        assert_eq!(uc_record_bits(&zero), 0);

        // Null handle: getters return 0, everything else UC_ERR_NULL.
        let null: *const uc_record = ptr::null();
        assert_eq!(uc_record_bits(null), 0);
        assert_eq!(uc_record_ndim(null), 0);
        assert_eq!(uc_record_numel(null), 0);
        assert_eq!(uc_record_rows(null), 0);
        assert_eq!(uc_record_cols(null), 0);
        assert_eq!(uc_record_overlay_rank(null), 0);
        assert_eq!(uc_record_overlay_dtype(null), 0);
        assert_eq!(uc_record_crc32(null), 0);
        let mut dims = [0u64; 8];
        assert_eq!(uc_record_shape(null, dims.as_mut_ptr(), 8), UC_ERR_NULL);
        assert_eq!(uc_record_decode(null, out.as_mut_ptr(), 64), UC_ERR_NULL);
        assert_eq!(uc_record_decode_range(null, 0, out.as_mut_ptr(), 1), UC_ERR_NULL);
        assert_eq!(uc_record_decode_rows(null, 0, 1, out.as_mut_ptr(), 16), UC_ERR_NULL);
        assert_eq!(uc_record_overlay_u(null, ptr::null_mut(), 0), UC_ERR_NULL);
        assert_eq!(uc_record_overlay_v(null, ptr::null_mut(), 0), UC_ERR_NULL);
        assert_eq!(uc_record_merge_overlay(null, out.as_mut_ptr(), 64), UC_ERR_NULL);

        // A good parse, then a failed one on the same handle: the handle no longer holds a record.
        assert_eq!(uc_record_parse(bytes.as_ptr(), bytes.len(), &mut h, &mut off), UC_OK);
        assert_eq!(uc_record_numel(&h), 64);
        // A copy of the handle's bytes is a handle too.
        let copy = Box::new(uc_record { opaque: h.opaque });
        assert_eq!(uc_record_decode(&*copy, out.as_mut_ptr(), 64), UC_OK);
        assert_eq!(uc_record_parse(bytes.as_ptr(), 0, &mut h, &mut off), -1);
        assert_eq!(uc_record_numel(&h), 0);
        assert_eq!(uc_record_decode(&h, out.as_mut_ptr(), 64), UC_ERR_BAD_HANDLE);

        // Misaligned handle and output pointers.
        let mut storage = vec![0u64; UC_RECORD_WORDS + 1];
        let skew = storage.as_mut_ptr().cast::<u8>().add(4).cast::<uc_record>();
        assert_eq!(
            uc_record_parse(bytes.as_ptr(), bytes.len(), skew, &mut off),
            UC_ERR_NULL
        );
        assert_eq!(uc_record_numel(skew), 0);
        assert_eq!(uc_record_parse(bytes.as_ptr(), bytes.len(), &mut h, &mut off), UC_OK);
        let mut raw = [0u32; 65];
        let skew_out = raw.as_mut_ptr().cast::<u8>().add(1).cast::<f32>();
        assert_eq!(uc_record_decode(&h, skew_out, 64), UC_ERR_NULL);
        // No buffer can be that long: rejected before any slice is formed.
        assert_eq!(uc_record_decode(&h, out.as_mut_ptr(), usize::MAX), UC_ERR_OUTPUT_LENGTH);
    }
}

#[test]
fn error_names_and_clauses_come_from_uc_format() {
    for &k in ErrorKind::ALL {
        let c = k.code() as i32;
        assert_eq!(name(-c), k.name());
        assert_eq!(name(c), k.name(), "positive codes are accepted too");
        assert_eq!(clause(-c), k.clause());
        assert_eq!(clause(c), k.clause());
    }
    assert_eq!(name(UC_OK), "ok");
    assert_eq!(clause(UC_OK), "");
    let caller = [
        (UC_ERR_OUTPUT_LENGTH, "output_length"),
        (UC_ERR_OUT_OF_RANGE, "out_of_range"),
        (UC_ERR_NULL, "null_pointer"),
        (UC_ERR_BAD_HANDLE, "bad_handle"),
    ];
    for (code, n) in caller {
        assert_eq!(name(code), n);
        assert_eq!(clause(code), "R-9.4");
    }
    let max = ErrorKind::ALL.iter().map(|k| k.code() as i32).max().unwrap();
    for code in [max + 1, -max - 1, 63, 64, -64, 99, -99, 100, -104, i32::MIN, i32::MAX] {
        assert_eq!(name(code), "unknown", "{code}");
        assert_eq!(clause(code), "unknown", "{code}");
    }
    assert_eq!(uc_abi_version(), 0x000400);
    assert_eq!(UC_ABI_VERSION, 0x000400);
    assert_eq!(name(-28), "bad_sub_block");
    assert_eq!(clause(-28), "R-13.3");
}

/// A v0.4 record (two-level scales) decodes through the C ABI to the values of computed
/// here from the parts written: `(f32(scale[i / 256]) * f32(sub[i / S])) * grid[code[i]]`, the
/// inner product exact (done in f64), the outer one rounded multiply.
#[test]
fn a_v04_record_with_two_level_scales_decodes_by_r_13_4() {
    for (bits, dims, sub) in [
        (4u8, &[300u64][..], 16u32),
        (7, &[2, 3, 45], 32),
        (1, &[1], 16),
        (8, &[5, 257], 32),
    ] {
        let v = common::record_v04(bits, dims, 0, uc_format::OverlayDtype::None, sub, u64::from(bits));
        let n: u64 = dims.iter().product();
        let want: Vec<f32> = (0..n as usize)
            .map(|i| {
                let s = f64::from(uc_format::num::f16_to_f32(v.scales[i / 256]));
                let e = (s * f64::from(v.subscales[i / sub as usize])) as f32;
                e * v.grid[usize::from(v.codes[i])]
            })
            .collect();
        let (h, rc, _) = parse(&v.bytes);
        assert_eq!(rc, UC_OK);
        let h = &*h;
        // SAFETY: `h` holds a record parsed from `v.bytes`, which is alive; every output pointer
        // comes with the length of its buffer.
        unsafe {
            assert_eq!((uc_record_block_size(h), uc_record_sub_block(h)), (256, sub));
            assert_eq!(uc_record_numel(h), n);
            let mut got = vec![f32::NAN; n as usize];
            assert_eq!(uc_record_decode(h, got.as_mut_ptr(), got.len()), UC_OK);
            assert_eq!(bits_of(&got), bits_of(&want), "bits {bits} S {sub}: decode");
            // Ranges starting and ending inside sub-blocks and blocks.
            for (s, c) in [
                (1usize, 40usize),
                (15, 18),
                (31, 2),
                (250, 10),
                (3, (n as usize).saturating_sub(3)),
            ] {
                if c == 0 || s + c > n as usize {
                    continue;
                }
                let mut part = vec![f32::NAN; c];
                assert_eq!(uc_record_decode_range(h, s as u64, part.as_mut_ptr(), c), UC_OK);
                assert_eq!(bits_of(&part), bits_of(&want[s..s + c]), "bits {bits} S {sub}: {s}+{c}");
            }
        }
    }
    // A v0.3 handle and an invalid one.
    let v03 = common::record(4, &[3, 37], 0, uc_format::OverlayDtype::None, 1);
    let (h, rc, _) = parse(&v03);
    assert_eq!(rc, UC_OK);
    let zero = uc_record::new();
    // SAFETY: a handle parsed from `v03`, which is alive, a zero-filled one, and null.
    unsafe {
        assert_eq!((uc_record_block_size(&*h), uc_record_sub_block(&*h)), (64, 0));
        assert_eq!((uc_record_block_size(&zero), uc_record_sub_block(&zero)), (0, 0));
        assert_eq!(uc_record_block_size(ptr::null()), 0);
        assert_eq!(uc_record_sub_block(ptr::null()), 0);
    }
}

#[test]
fn the_handle_holds_a_record() {
    let size = std::mem::size_of::<Record<'static>>();
    println!("size_of::<Record>() = {size}");
    assert!(size <= 8 * (UC_RECORD_WORDS - 1));
    assert_eq!(std::mem::size_of::<uc_record>(), 2048);
    assert_eq!(std::mem::align_of::<uc_record>(), 8);
}
