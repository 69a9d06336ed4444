//! Helpers that write records: used by the encoder, the conformance generator and tests.
//! No allocation: the caller provides the output buffer, sized from [`RecordParams::layout`].

use crate::header::{HeaderExtV04, RecordHeader, SectionEntry};
use crate::{
    Error, ErrorKind, HEADER_LEN_V03, MAGIC, OverlayDtype, RecordParams, SCALE_DTYPE_F16, SECTION_CODES, SECTION_GRID,
    SECTION_OVERLAY, SECTION_SCALES, SECTION_SUBSCALES, VERSION_MAJOR, section_entry_offset,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

/// CRC-32/ISO-HDLC (the zlib CRC) of a whole record with bytes 24..28 read as zero.
/// `rec` must be at least 28 bytes long; shorter input yields the CRC of what is there.
pub fn record_crc(rec: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    if rec.len() < 28 {
        h.update(rec);
    } else {
        h.update(&rec[..24]);
        h.update(&[0u8; 4]);
        h.update(&rec[28..]);
    }
    h.finalize()
}

/// Computes and stores the CRC of a complete record in place (bytes 24..28).
/// Does nothing on buffers shorter than 28 bytes.
pub fn finalize_crc(rec: &mut [u8]) {
    if rec.len() >= 28 {
        let c = record_crc(rec);
        rec[24..28].copy_from_slice(&c.to_le_bytes());
    }
}

/// Packs `codes` (one code per byte, each `< 2^bits`) LSB-first into `out`: code `i`
/// occupies bits `[i*bits, i*bits+bits)` of the stream, and bit `k` of the stream is bit `k mod 8`
/// of byte `k div 8`. Bits of `out` past the last code are set to zero. Returns the number of bytes
/// the codes occupy, `ceil(codes.len() * bits / 8)`.
///
/// Errors: [`ErrorKind::BadBits`] for `bits` outside 1..=8; [`ErrorKind::Truncated`] when `out`
/// is too short (offset = required length); [`ErrorKind::NonZeroPadding`] when a code does not fit
/// in `bits` bits (offset = index of the code).
pub fn pack_codes(codes: &[u8], bits: u8, out: &mut [u8]) -> Result<usize, Error> {
    if !(1..=8).contains(&bits) {
        return Err(Error::new(ErrorKind::BadBits, 0));
    }
    let b = usize::from(bits);
    let need = (codes.len() * b).div_ceil(8);
    if out.len() < need {
        return Err(Error::new(ErrorKind::Truncated, need as u64));
    }
    out.fill(0);
    let mut acc: u32 = 0;
    let mut nacc = 0usize;
    let mut w = 0usize;
    for (i, &c) in codes.iter().enumerate() {
        if u32::from(c) >> b != 0 {
            return Err(Error::new(ErrorKind::NonZeroPadding, i as u64));
        }
        acc |= u32::from(c) << nacc;
        nacc += b;
        while nacc >= 8 {
            out[w] = acc as u8;
            w += 1;
            acc >>= 8;
            nacc -= 8;
        }
    }
    if nacc > 0 {
        out[w] = acc as u8;
    }
    Ok(need)
}

/// Writes a complete v0.3 record into `out[..layout.record_len]` and validates it. For the shape
/// fields of a record with two-level scales, use [`write_record_with_subscales`].
///
/// * `grid`: `2^bits` values; `scales`: one binary16 bit pattern per block; `codes`: one code per
///   element (row-major), each `< 2^bits`;
/// * `overlay_u` (`rows*r` values, row-major `[rows, r]`) and `overlay_v` (`r*cols`, row-major
///   `[r, cols]`) as 16-bit patterns of the overlay dtype; both empty when `r = 0`.
///
/// Returns the record length. Every byte of `out[..record_len]` is written (padding zeroed), so
/// the output depends only on the inputs. Errors are the validation errors of the record that
/// would result (e.g. [`ErrorKind::BadGridValue`]), or [`ErrorKind::SectionLength`] when an
/// input slice has the wrong length (offset = the section's table entry), or
/// [`ErrorKind::Truncated`] when `out` is too short (offset = required length).
pub fn write_record(
    params: &RecordParams,
    grid: &[f32],
    scales: &[u16],
    codes: &[u8],
    overlay_u: &[u16],
    overlay_v: &[u16],
    out: &mut [u8],
) -> Result<usize, Error> {
    write_record_with_subscales(params, grid, scales, &[], codes, overlay_u, overlay_v, out)
}

/// Writes a complete record, with two-level scales when `params` has a sub-block size (v0.4,
/// `scales` holds one binary16 pattern per block of `B` elements (`B` = 256 with two-level
/// scales, 64 without) and `subscales` one value per sub-block of `params.sub_block` elements,
/// each `< 2^params.sub_bits` (packed here as codes are; empty without two-level scales).
/// Otherwise as [`write_record`].
#[allow(clippy::too_many_arguments)]
pub fn write_record_with_subscales(
    params: &RecordParams,
    grid: &[f32],
    scales: &[u16],
    subscales: &[u8],
    codes: &[u8],
    overlay_u: &[u16],
    overlay_v: &[u16],
    out: &mut [u8],
) -> Result<usize, Error> {
    let layout = params.layout()?;
    let r = u64::from(params.overlay_rank);
    let len_err = |k: usize| Error::new(ErrorKind::SectionLength, section_entry_offset(k) + 8);
    if grid.len() as u64 != 1u64 << params.bits {
        return Err(len_err(SECTION_GRID));
    }
    if scales.len() as u64 != layout.n_scales {
        return Err(len_err(SECTION_SCALES));
    }
    if subscales.len() as u64 != layout.n_subscales {
        return Err(len_err(SECTION_SUBSCALES));
    }
    if codes.len() as u64 != layout.n {
        return Err(len_err(SECTION_CODES));
    }
    if overlay_u.len() as u64 != layout.rows * r || overlay_v.len() as u64 != r * layout.cols {
        return Err(len_err(SECTION_OVERLAY));
    }
    if (out.len() as u64) < layout.record_len {
        return Err(Error::new(ErrorKind::Truncated, layout.record_len));
    }
    let rec = &mut out[..layout.record_len as usize];
    rec.fill(0);
    let range = |k: usize| {
        let s = layout.sections[k];
        s.offset as usize..s.end() as usize
    };

    let entry = |k: usize| SectionEntry {
        offset: U64::new(layout.sections[k].offset),
        len: U64::new(layout.sections[k].len),
    };
    let sections = [entry(0), entry(1), entry(2), entry(3)];
    let mut dims = [U64::new(0); 8];
    for (d, &v) in dims.iter_mut().zip(params.dims.iter()) {
        *d = U64::new(v);
    }
    let header = RecordHeader {
        magic: MAGIC,
        version_major: U16::new(VERSION_MAJOR),
        version_minor: U16::new(layout.version_minor),
        header_len: U32::new(params.header_len),
        record_len: U64::new(layout.record_len),
        crc32: U32::new(0),
        flags: U32::new(layout.flags),
        bits: params.bits,
        ndim: params.ndim,
        scale_dtype: SCALE_DTYPE_F16,
        overlay_dtype: params.overlay_dtype as u8,
        block_size: U32::new(layout.block_size),
        overlay_rank: U32::new(params.overlay_rank),
        reserved0: [0; 4],
        dims,
        sections,
        reserved1: [0; 16],
    };
    rec[..core::mem::size_of::<RecordHeader>()].copy_from_slice(header.as_bytes());
    if params.has_subscales() {
        let ext = HeaderExtV04 {
            subscales: entry(SECTION_SUBSCALES),
            sub_block: U32::new(params.sub_block),
            sub_bits: params.sub_bits,
            reserved2: [0; 43],
        };
        let at = HEADER_LEN_V03 as usize;
        rec[at..at + core::mem::size_of::<HeaderExtV04>()].copy_from_slice(ext.as_bytes());
        pack_codes(subscales, params.sub_bits, &mut rec[range(SECTION_SUBSCALES)]).map_err(|e| match e.kind {
            ErrorKind::NonZeroPadding => {
                Error::new(ErrorKind::NonZeroPadding, layout.sections[SECTION_SUBSCALES].offset)
            }
            _ => e,
        })?;
    }

    for (c, g) in rec[range(SECTION_GRID)].chunks_exact_mut(4).zip(grid) {
        c.copy_from_slice(&g.to_le_bytes());
    }
    for (c, s) in rec[range(SECTION_SCALES)].chunks_exact_mut(2).zip(scales) {
        c.copy_from_slice(&s.to_le_bytes());
    }
    pack_codes(codes, params.bits, &mut rec[range(SECTION_CODES)]).map_err(|e| match e.kind {
        ErrorKind::NonZeroPadding => Error::new(ErrorKind::NonZeroPadding, layout.sections[SECTION_CODES].offset),
        _ => e,
    })?;
    if params.overlay_dtype != OverlayDtype::None {
        for (c, s) in rec[range(SECTION_OVERLAY)]
            .chunks_exact_mut(2)
            .zip(overlay_u.iter().chain(overlay_v))
        {
            c.copy_from_slice(&s.to_le_bytes());
        }
    }
    finalize_crc(rec);
    crate::validate(rec)?;
    Ok(layout.record_len as usize)
}
