//! Properties of the validator and the decoder that hold for every input.

use crate::{MAX_DECODE, assert_same_bits, f16_value};
use uc_decode::{DecodeError, Path, Record};
use uc_format::{Error, ErrorKind, Layout, MAX_ELEMENTS, MAX_OVERLAY_RANK, OverlayDtype, record_crc, validate};

const PATHS: [Path; 4] = [Path::Scalar, Path::Portable, Path::Avx2, Path::Auto];

fn align64(x: u64) -> u64 {
    x.div_ceil(64) * 64
}

fn le(bytes: &[u8], at: usize, width: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..width].copy_from_slice(&bytes[at..at + width]);
    u64::from_le_bytes(a)
}

/// Validates `bytes` with `uc_format::validate` and `Record::parse`, asserts that they agree, and
/// checks the invariants of the verdict. Returns the parsed record.
pub fn validate_checked(bytes: &[u8]) -> Result<Record<'_>, Error> {
    let v = validate(bytes);
    let p = Record::parse(bytes);
    match (&v, &p) {
        (Ok(l), Ok(r)) => assert_eq!(l, r.layout(), "validate and Record::parse give different layouts"),
        (Err(a), Err(b)) => assert_eq!(a, b, "validate and Record::parse give different errors"),
        _ => panic!(
            "validate ({v:?}) and Record::parse ({:?}) disagree",
            p.as_ref().map(|r| *r.layout())
        ),
    }
    match &v {
        Ok(l) => layout_invariants(bytes, l),
        Err(e) => error_invariants(bytes, e),
    }
    p
}

/// A valid record's layout is the canonical one of its header fields, lies
/// inside the buffer, and does not depend on the bytes after `record_len`.
fn layout_invariants(bytes: &[u8], l: &Layout) {
    let len = bytes.len() as u64;
    let p = &l.params;
    assert!(
        l.record_len <= len && l.record_len.is_multiple_of(64),
        "record_len {}",
        l.record_len
    );
    assert!((1..=8).contains(&p.bits));
    // v0.4 implements must-understand flag bit 0 only (two-level scales, R-13.1).
    assert!(l.version_minor >= 3 && l.flags & 0xfffe == 0);
    let two_level = l.flags & 1 != 0;
    assert_eq!(two_level, l.has_subscales());
    let header_len = u64::from(p.header_len);
    if two_level {
        assert!(l.version_minor >= 4 && header_len >= 256, "R-13.1, R-13.2");
        assert!(p.sub_block == 16 || p.sub_block == 32, "sub_block {}", p.sub_block);
        assert_eq!(le(bytes, 208, 4), u64::from(p.sub_block));
        assert!((1..=8).contains(&p.sub_bits) && bytes[212] == p.sub_bits, "sub_bits");
        assert!(bytes[213..256].iter().all(|&b| b == 0), "reserved2");
    } else {
        assert_eq!(p.sub_block, 0);
    }
    let block = if two_level { 256 } else { 64 };
    assert_eq!((l.block_size, le(bytes, 36, 4)), (block, u64::from(block)));
    assert!(
        if l.version_minor == 3 {
            header_len == 192
        } else {
            (192..=65536).contains(&header_len)
        },
        "header_len {header_len} with minor {}",
        l.version_minor
    );
    let shape = p.shape();
    assert!((1..=8).contains(&shape.len()) && shape.iter().all(|&d| d >= 1));
    assert!(p.dims[shape.len()..].iter().all(|&d| d == 0));
    let n = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .expect("n overflows");
    assert!(n == l.n && n <= MAX_ELEMENTS);
    assert_eq!(l.n_blocks, n.div_ceil(64));
    assert_eq!(l.n_scales, n.div_ceil(u64::from(block)));
    let n_sub = if two_level {
        n.div_ceil(u64::from(p.sub_block))
    } else {
        0
    };
    assert_eq!(l.n_subscales, n_sub);
    let len_4 = (n_sub * u64::from(p.sub_bits)).div_ceil(8);
    assert_eq!((l.rows, l.cols), (shape[0], n / shape[0]));
    let r = p.overlay_rank;
    assert!(r <= MAX_OVERLAY_RANK);
    assert_eq!(r == 0, p.overlay_dtype == OverlayDtype::None);
    if r > 0 {
        assert!(shape.len() >= 2 && u64::from(r) <= l.rows.min(l.cols));
    }
    let lens = [
        4u64 << p.bits,
        2 * n.div_ceil(u64::from(block)),
        8 * u64::from(p.bits) * l.n_blocks,
        2 * u64::from(r) * (l.rows + l.cols),
        len_4,
    ];
    let used = l.used_sections();
    assert_eq!(used.len(), if two_level { 5 } else { 4 });
    let mut end = header_len;
    for (k, s) in used.iter().enumerate() {
        assert_eq!((s.offset, s.len), (align64(end), lens[k]), "section {k}");
        end = s.offset + s.len;
    }
    assert_eq!(l.record_len, align64(end));
    // The header bytes say what the layout says.
    assert_eq!(bytes[32], p.bits);
    assert_eq!(usize::from(bytes[33]), shape.len());
    assert_eq!(le(bytes, 16, 8), l.record_len);
    assert_eq!(le(bytes, 24, 4), u64::from(l.crc32));
    assert_eq!(record_crc(&bytes[..l.record_len as usize]), l.crc32);
    for (k, s) in used.iter().enumerate() {
        let at = if k < 4 { 112 + 16 * k } else { 192 };
        assert_eq!(le(bytes, at, 8), s.offset);
        assert_eq!(le(bytes, at + 8, 8), s.len);
    }
    // bytes after record_len are not part of the record.
    let rec = &bytes[..l.record_len as usize];
    assert_eq!(validate(rec), Ok(*l), "the record alone validates differently");
    // every strict prefix of a valid record is `truncated` at its own length.
    let rl = l.record_len as usize;
    for cut in [0, 1, 7, 8, 23, 24, 27, 191, 192, rl / 2, rl - 64, rl - 1] {
        if cut < rl {
            assert_eq!(
                validate(&rec[..cut]),
                Err(Error::new(ErrorKind::Truncated, cut as u64)),
                "prefix of {cut} bytes"
            );
        }
    }
}

/// A failure names an offset inside the buffer (or its length, for `truncated`), and bytes after
/// the buffer cannot change any other verdict.
fn error_invariants(bytes: &[u8], e: &Error) {
    let len = bytes.len() as u64;
    if e.kind == ErrorKind::Truncated {
        assert_eq!(e.offset, len, "truncated must report the buffer length");
        return;
    }
    assert!(e.offset < len, "{e:?} names an offset outside the {len}-byte buffer");
    assert!(ErrorKind::ALL.contains(&e.kind));
    let mut longer = Vec::with_capacity(bytes.len() + 64);
    longer.extend_from_slice(bytes);
    longer.extend_from_slice(&[0xa5; 64]);
    assert_eq!(validate(&longer), Err(*e), "bytes after the buffer changed the verdict");
}

/// Decodes a valid record by every path and API and checks that they agree bit for bit with the
/// element formula of R-7.1 (via the record's own `scale`, `code` and `grid` getters) or, with
/// two-level scales, of R-13.4 (`(f32(scale) x sub) x grid[code]`, the scale and sub-scale read
/// from the stored bytes and the exact product taken in f64), that every value is zero or a
/// normal number, and that caller errors are reported.
/// `pick` chooses the sub-ranges. Returns the decoded `W_base` when it was decoded whole.
pub fn exercise(rec: &Record<'_>, pick: u64) -> Option<Vec<f32>> {
    let n = rec.len();
    let l = *rec.layout();
    assert!(n >= 1 && !rec.is_empty());
    assert_eq!(rec.shape(), l.params.shape());
    assert_eq!(rec.grid().len(), 1 << rec.bits());
    let mut whole = None;
    if n <= MAX_DECODE {
        let nu = n as usize;
        let mut reference = vec![0f32; nu];
        rec.decode_with(Path::Scalar, &mut reference).unwrap();
        let sub_block = rec.sub_block();
        assert_eq!(rec.block_size(), if sub_block.is_some() { 256 } else { 64 });
        for (i, &v) in reference.iter().enumerate() {
            let s = match sub_block {
                None => rec.scale(i as u64 / 64).expect("scale of a block"),
                Some(sb) => {
                    let at = 2 * (i / 256);
                    let h = u16::from_le_bytes([rec.scales_bytes()[at], rec.scales_bytes()[at + 1]]);
                    // sub[t]: q bits at stream bit t * q of the sub-scales section.
                    let q = rec.layout().params.sub_bits as usize;
                    let t = i / sb as usize;
                    let sub = (0..q).fold(0u32, |a, u| {
                        let k = t * q + u;
                        a | u32::from((rec.subscales_bytes()[k / 8] >> (k % 8)) & 1) << u
                    });
                    let e = f64::from(f16_value(h)) * f64::from(sub);
                    let e32 = e as f32;
                    assert_eq!(f64::from(e32), e, "element {i}: the effective scale is exact (R-13.4)");
                    assert_eq!(
                        rec.scale(i as u64 / 256).map(f32::to_bits),
                        Some(f16_value(h).to_bits())
                    );
                    e32
                }
            };
            assert_eq!(
                rec.effective_scale(i as u64).map(f32::to_bits),
                Some(s.to_bits()),
                "element {i}: effective_scale"
            );
            let c = rec.code(i as u64).expect("code of an element");
            let want = s * rec.grid()[usize::from(c)];
            assert_eq!(v.to_bits(), want.to_bits(), "element {i}: scalar path vs R-7.1 formula");
            assert!(
                v == 0.0 || v.is_normal(),
                "element {i} = {v:e} is not zero or normal (R-7.4)"
            );
        }
        let mut out = vec![f32::NAN; nu];
        for path in PATHS {
            out.fill(f32::NAN);
            rec.decode_with(path, &mut out).unwrap();
            assert_same_bits(path.name(), &reference, &out);
        }
        out.fill(f32::NAN);
        rec.decode_into(&mut out).unwrap();
        assert_same_bits("decode_into", &reference, &out);
        out.fill(f32::NAN);
        rec.decode_rows_into(0..rec.rows(), &mut out).unwrap();
        assert_same_bits("decode_rows_into", &reference, &out);
        let mut count = 0u64;
        for b in rec.blocks() {
            assert_eq!(b.index, count);
            let start = (b.index * 64) as usize;
            assert_eq!(b.len, (nu - start).min(64));
            assert_same_bits("blocks", &reference[start..start + b.len], b.as_slice());
            assert!(b.values[b.len..].iter().all(|v| v.to_bits() == 0));
            count += 1;
        }
        assert_eq!(count, l.n_blocks);
        whole = Some(reference);
    } else {
        // Too large to decode whole: the first and last blocks.
        for b in rec.blocks().take(3) {
            assert!(b.len == 64 || b.index + 1 == l.n_blocks);
        }
    }
    // A sub-range by every path, against the whole decode.
    let start = pick % n;
    let count = (n - start).min(1 + (pick >> 40) % 300) as usize;
    let mut first: Option<Vec<f32>> = None;
    for path in PATHS {
        let mut out = vec![f32::NAN; count];
        rec.decode_range_with(path, start, &mut out).unwrap();
        match &first {
            None => first = Some(out),
            Some(f) => assert_same_bits("decode_range_with", f, &out),
        }
    }
    if let (Some(w), Some(f)) = (&whole, &first) {
        assert_same_bits("range vs whole", &w[start as usize..start as usize + count], f);
    }
    // Rows.
    let rows = rec.rows();
    let r0 = (pick >> 8) % rows;
    let r1 = (r0 + 1 + (pick >> 20) % 4).min(rows);
    if (r1 - r0) * rec.cols() <= MAX_DECODE {
        let mut out = vec![0f32; ((r1 - r0) * rec.cols()) as usize];
        rec.decode_rows_into(r0..r1, &mut out).unwrap();
        if let Some(w) = &whole {
            let a = (r0 * rec.cols()) as usize;
            assert_same_bits("decode_rows_into", &w[a..a + out.len()], &out);
        }
    }
    caller_errors(rec);
    if let Some(w) = &whole {
        overlay(rec, w);
    }
    whole
}

/// Requests outside the tensor or with wrong buffer lengths are errors, never panics.
fn caller_errors(rec: &Record<'_>) {
    let n = rec.len();
    let mut one = [0f32; 1];
    let mut two = [0f32; 2];
    if n != 1 {
        assert!(matches!(
            rec.decode_into(&mut one),
            Err(DecodeError::OutputLength { .. })
        ));
    }
    if n != 2 {
        assert!(matches!(
            rec.decode_with(Path::Scalar, &mut two),
            Err(DecodeError::OutputLength { .. })
        ));
    }
    for path in PATHS {
        for start in [n, n.saturating_add(1), u64::MAX, u64::MAX - 1] {
            assert!(matches!(
                rec.decode_range_with(path, start, &mut one),
                Err(DecodeError::OutOfRange { .. })
            ));
        }
        assert!(matches!(
            rec.decode_range_with(path, n - 1, &mut two),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(rec.decode_range_with(path, n, &mut []).is_ok());
    }
    let rows = rec.rows();
    #[allow(clippy::reversed_empty_ranges)]
    for range in [rows..rows + 1, 1..0, 0..u64::MAX, u64::MAX..u64::MAX] {
        assert!(matches!(
            rec.decode_rows_into(range, &mut one),
            Err(DecodeError::OutOfRange { .. })
        ));
    }
    assert_eq!(rec.scale(rec.layout().n_scales), None);
    assert_eq!(rec.effective_scale(n), None);
    assert_eq!(rec.scale(u64::MAX), None);
    assert_eq!(rec.code(n), None);
    assert_eq!(rec.code(u64::MAX), None);
    let mut w = vec![0f32; 1];
    if n != 1 {
        assert!(matches!(
            rec.merge_overlay_into(&mut w),
            Err(DecodeError::OutputLength { .. })
        ));
    }
}

/// Overlay factors are finite exact conversions; the merge follows exactly.
fn overlay(rec: &Record<'_>, w_base: &[f32]) {
    let r = u64::from(rec.overlay_rank());
    let (rows, cols) = (rec.rows(), rec.cols());
    let (nu, nv) = (rows * r, r * cols);
    if nu + nv > MAX_DECODE {
        return;
    }
    let mut u = vec![f32::NAN; nu as usize];
    let mut v = vec![f32::NAN; nv as usize];
    rec.overlay_u_into(&mut u).unwrap();
    rec.overlay_v_into(&mut v).unwrap();
    assert!(u.iter().chain(&v).all(|x| x.is_finite()), "overlay factor not finite");
    let mut wrong = vec![0f32; nu as usize + 1];
    assert!(rec.overlay_u_into(&mut wrong).is_err());
    let mut wrong = vec![0f32; nv as usize + 1];
    assert!(rec.overlay_v_into(&mut wrong).is_err());
    if rec.len().saturating_mul(r) > 1 << 16 {
        return; // the merge costs n * r; the differential and pack targets compare it elsewhere
    }
    let mut merged = w_base.to_vec();
    rec.merge_overlay_into(&mut merged).unwrap();
    let (ru, cu) = (r as usize, cols as usize);
    let mut want = w_base.to_vec();
    // with r = 0, W = W_base exactly (nothing is added, a -0 stays -0).
    for i in 0..if r == 0 { 0 } else { rows as usize } {
        for j in 0..cu {
            let mut acc = 0f32;
            for k in 0..ru {
                acc += u[i * ru + k] * v[k * cu + j];
            }
            want[i * cu + j] += acc;
        }
    }
    assert_same_bits("merge_overlay_into vs R-8.5", &want, &merged);
}
