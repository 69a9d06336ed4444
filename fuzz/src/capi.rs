//! The C ABI (`uc_decode::capi`, called through its `extern "C"` functions exactly as a C program
//! would call them) against the Rust API on the same bytes.

use crate::{MAX_DECODE, assert_same_bits};
use core::ffi::CStr;
use uc_decode::Record;
use uc_decode::capi::{
    UC_ERR_BAD_HANDLE, UC_ERR_NULL, UC_ERR_OUT_OF_RANGE, UC_ERR_OUTPUT_LENGTH, UC_OK, uc_error_clause, uc_error_name,
    uc_record, uc_record_bits, uc_record_cols, uc_record_crc32, uc_record_decode, uc_record_decode_range,
    uc_record_decode_rows, uc_record_merge_overlay, uc_record_ndim, uc_record_numel, uc_record_overlay_dtype,
    uc_record_overlay_rank, uc_record_overlay_u, uc_record_overlay_v, uc_record_parse, uc_record_rows, uc_record_shape,
};
use uc_format::Error;

fn name(code: i32) -> &'static str {
    // SAFETY: uc_error_name returns a static NUL-terminated string for every code.
    unsafe { CStr::from_ptr(uc_error_name(code)) }.to_str().unwrap()
}

fn clause(code: i32) -> &'static str {
    // SAFETY: as above.
    unsafe { CStr::from_ptr(uc_error_clause(code)) }.to_str().unwrap()
}

/// Parses `bytes` through the C ABI and checks that it reports what Rust reported (`rust`): the
/// same success, or the negated error code with the same offset; on success, the same getters and
/// the same decoded bits (`w_base`, when the caller decoded the record whole). `pick` chooses a
/// sub-range.
pub fn agrees(bytes: &[u8], rust: &Result<Record<'_>, Error>, w_base: Option<&[f32]>, pick: u64) {
    let mut h = Box::new(uc_record::new());
    const SENTINEL: u64 = 0xdead_beef_dead_beef;
    let mut off = SENTINEL;
    // SAFETY: `bytes` outlives every use of `h` below; `h` and `off` are valid for writes.
    let rc = unsafe { uc_record_parse(bytes.as_ptr(), bytes.len(), &mut *h, &mut off) };
    let hp: *const uc_record = &*h;
    match rust {
        Err(e) => {
            assert_eq!(rc, -(e.kind.code() as i32), "C ABI code vs Rust {e:?}");
            assert_eq!(off, e.offset, "C ABI error offset vs Rust {e:?}");
            assert_eq!(name(rc), e.kind.name());
            assert_eq!(clause(rc), e.kind.clause());
            assert_eq!(name(-rc), e.kind.name());
            // A failed parse leaves the handle invalid.
            // SAFETY: `h` was last written by uc_record_parse.
            unsafe {
                assert_eq!(uc_record_bits(hp), 0);
                assert_eq!(uc_record_numel(hp), 0);
                let mut one = [0f32; 1];
                assert_eq!(uc_record_decode(hp, one.as_mut_ptr(), 1), UC_ERR_BAD_HANDLE);
                assert_eq!(uc_record_shape(hp, core::ptr::null_mut(), 0), UC_ERR_BAD_HANDLE);
            }
        }
        Ok(rec) => {
            assert_eq!(rc, UC_OK);
            assert_eq!(off, SENTINEL, "err_offset written on success");
            assert_eq!(name(rc), "ok");
            // SAFETY: `h` holds a record parsed from `bytes`, which is alive; every output
            // pointer below is valid for the length passed with it.
            unsafe { parsed(hp, rec, w_base, pick) }
        }
    }
}

/// # Safety
/// `hp` holds a record parsed from bytes that are alive.
unsafe fn parsed(hp: *const uc_record, rec: &Record<'_>, w_base: Option<&[f32]>, pick: u64) {
    // SAFETY (whole function): every buffer passed is a live Vec or array of the given length.
    unsafe {
        assert_eq!(uc_record_bits(hp), u32::from(rec.bits()));
        assert_eq!(uc_record_ndim(hp) as usize, rec.shape().len());
        assert_eq!(uc_record_numel(hp), rec.len());
        assert_eq!(uc_record_rows(hp), rec.rows());
        assert_eq!(uc_record_cols(hp), rec.cols());
        assert_eq!(uc_record_overlay_rank(hp), rec.overlay_rank());
        assert_eq!(uc_record_overlay_dtype(hp), rec.overlay_dtype() as u8);
        assert_eq!(uc_record_crc32(hp), rec.layout().crc32);
        let mut dims = [0u64; 8];
        let nd = rec.shape().len();
        assert_eq!(uc_record_shape(hp, dims.as_mut_ptr(), 8), nd as i32);
        assert_eq!(&dims[..nd], rec.shape());
        if nd > 1 {
            assert_eq!(uc_record_shape(hp, dims.as_mut_ptr(), nd - 1), UC_ERR_OUTPUT_LENGTH);
        }
        assert_eq!(uc_record_shape(hp, core::ptr::null_mut(), 8), UC_ERR_NULL);

        let n = rec.len();
        if let Some(w) = w_base {
            let mut out = vec![f32::NAN; w.len()];
            assert_eq!(uc_record_decode(hp, out.as_mut_ptr(), out.len()), UC_OK);
            assert_same_bits("uc_record_decode", w, &out);
            out.fill(f32::NAN);
            assert_eq!(
                uc_record_decode_rows(hp, 0, rec.rows(), out.as_mut_ptr(), out.len()),
                UC_OK
            );
            assert_same_bits("uc_record_decode_rows", w, &out);
            out.fill(f32::NAN);
            assert_eq!(uc_record_decode_range(hp, 0, out.as_mut_ptr(), out.len()), UC_OK);
            assert_same_bits("uc_record_decode_range", w, &out);
            // Overlay factors and the merge.
            let r = u64::from(rec.overlay_rank());
            let (nu, nv) = ((rec.rows() * r) as usize, (r * rec.cols()) as usize);
            if (nu + nv) as u64 <= MAX_DECODE {
                let (mut u, mut v) = (vec![f32::NAN; nu], vec![f32::NAN; nv]);
                let (mut ru, mut rv) = (vec![f32::NAN; nu], vec![f32::NAN; nv]);
                assert_eq!(uc_record_overlay_u(hp, u.as_mut_ptr(), nu), UC_OK);
                assert_eq!(uc_record_overlay_v(hp, v.as_mut_ptr(), nv), UC_OK);
                rec.overlay_u_into(&mut ru).unwrap();
                rec.overlay_v_into(&mut rv).unwrap();
                assert_same_bits("uc_record_overlay_u", &ru, &u);
                assert_same_bits("uc_record_overlay_v", &rv, &v);
                if n.saturating_mul(r) <= 1 << 22 {
                    let mut m = w.to_vec();
                    let mut rm = w.to_vec();
                    assert_eq!(uc_record_merge_overlay(hp, m.as_mut_ptr(), m.len()), UC_OK);
                    rec.merge_overlay_into(&mut rm).unwrap();
                    assert_same_bits("uc_record_merge_overlay", &rm, &m);
                }
                if nu > 0 {
                    assert_eq!(uc_record_overlay_u(hp, u.as_mut_ptr(), nu - 1), UC_ERR_OUTPUT_LENGTH);
                }
            }
        }
        // A sub-range through both APIs.
        let start = pick % n;
        let count = (n - start).min(1 + (pick >> 40) % 200) as usize;
        let mut c = vec![f32::NAN; count];
        let mut r = vec![f32::NAN; count];
        assert_eq!(uc_record_decode_range(hp, start, c.as_mut_ptr(), count), UC_OK);
        rec.decode_range_into(start, &mut r).unwrap();
        assert_same_bits("uc_record_decode_range (sub-range)", &r, &c);
        // Caller errors.
        let mut one = [0f32; 2];
        if n != 1 {
            assert_eq!(uc_record_decode(hp, one.as_mut_ptr(), 1), UC_ERR_OUTPUT_LENGTH);
        }
        assert_eq!(uc_record_decode(hp, core::ptr::null_mut(), 1), UC_ERR_NULL);
        // Misaligned output pointer.
        let mis = (one.as_mut_ptr() as *mut u8).add(1) as *mut f32;
        assert_eq!(uc_record_decode_range(hp, 0, mis, 1), UC_ERR_NULL);
        assert_eq!(uc_record_decode_range(hp, n, one.as_mut_ptr(), 1), UC_ERR_OUT_OF_RANGE);
        assert_eq!(
            uc_record_decode_range(hp, u64::MAX, one.as_mut_ptr(), 2),
            UC_ERR_OUT_OF_RANGE
        );
        assert_eq!(uc_record_decode_range(hp, n, core::ptr::null_mut(), 0), UC_OK);
        assert_eq!(
            uc_record_decode_rows(hp, 1, 0, one.as_mut_ptr(), 0),
            UC_ERR_OUT_OF_RANGE
        );
        assert_eq!(
            uc_record_decode_rows(hp, 0, rec.rows() + 1, one.as_mut_ptr(), 1),
            UC_ERR_OUT_OF_RANGE
        );
        assert_eq!(uc_record_decode(core::ptr::null(), one.as_mut_ptr(), 1), UC_ERR_NULL);
        assert_eq!(uc_record_bits(core::ptr::null()), 0);
        assert_eq!(
            uc_record_parse(core::ptr::null(), 0, core::ptr::null_mut(), core::ptr::null_mut()),
            UC_ERR_NULL
        );
    }
}
