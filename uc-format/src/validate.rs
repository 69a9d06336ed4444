//! Record validation: the checks of spec, in the order that clause fixes, so that every
//! conforming decoder reports the same error class for the same bytes.

use crate::header::{HeaderExtV04, RecordHeader, offsets as o};
use crate::num::{grid_value_ok, overlay_value_ok, scale_value_ok};
use crate::{
    BLOCK_SIZE_V04, Error, ErrorKind, FLAG_SUBSCALES, FLAGS_KNOWN, FLAGS_MUST_UNDERSTAND, HEADER_LEN_V03,
    HEADER_LEN_V04, Layout, MAX_HEADER_LEN, MAX_NDIM, OverlayDtype, RecordParams, SCALE_DTYPE_F16, SECTION_ALIGN,
    SECTION_CODES, SECTION_GRID, SECTION_OVERLAY, SECTION_SCALES, SECTION_SUBSCALES, SUB_BLOCKS, SectionEntry,
    VERSION_MAJOR, VERSION_MINOR, VERSION_MINOR_V04, section_entry_offset,
};
use zerocopy::FromBytes;

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn err(kind: ErrorKind, offset: u64) -> Error {
    Error::new(kind, offset)
}

/// Checks that the bits of the packed stream `s` (at record offset `base`) from bit position
/// `first_unused_bit` on are zero: `nonzero_padding` at the first byte holding a
/// set unused bit.
fn unused_bits_zero(s: &[u8], base: u64, first_unused_bit: u64) -> Result<(), Error> {
    let byte = (first_unused_bit / 8) as usize;
    if byte < s.len() {
        let partial_mask = !((1u16 << (first_unused_bit % 8)) - 1) as u8;
        if s[byte] & partial_mask != 0 {
            return Err(err(ErrorKind::NonZeroPadding, base + byte as u64));
        }
        if let Some(i) = first_nonzero(&s[byte + 1..]) {
            return Err(err(ErrorKind::NonZeroPadding, base + (byte + 1 + i) as u64));
        }
    }
    Ok(())
}

/// Index of the first non-zero byte of `b`, if any.
fn first_nonzero(b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x != 0)
}

/// Validates a record: every rule of spec, in order. On success returns the record's
/// [`Layout`]; every offset and length in it lies inside `bytes`, so a decoder may index with it
/// freely. Bytes after `record_len` are not part of the record and are not examined.
///
/// Cost: one pass over the record (CRC) plus one pass over grid, scales and overlay; no allocation.
pub fn validate(bytes: &[u8]) -> Result<Layout, Error> {
    let len = bytes.len() as u64;
    // Steps 1-3: magic, then the fixed prefix that holds the version and lengths.
    if bytes.len() < 8 {
        return Err(err(ErrorKind::Truncated, len));
    }
    if bytes[..8] != crate::MAGIC {
        return Err(err(ErrorKind::BadMagic, o::MAGIC));
    }
    if bytes.len() < 24 {
        return Err(err(ErrorKind::Truncated, len));
    }
    // Step 4: version.
    if le_u16(bytes, 8) != VERSION_MAJOR {
        return Err(err(ErrorKind::UnsupportedVersion, o::VERSION_MAJOR));
    }
    let minor = le_u16(bytes, 10);
    if minor < VERSION_MINOR {
        return Err(err(ErrorKind::UnsupportedVersion, o::VERSION_MINOR));
    }
    // Step 5: header length.
    let header_len = le_u32(bytes, 12);
    let header_ok = if minor == VERSION_MINOR {
        header_len == HEADER_LEN_V03
    } else {
        (HEADER_LEN_V03..=MAX_HEADER_LEN).contains(&header_len)
    };
    if !header_ok {
        return Err(err(ErrorKind::BadHeaderLength, o::HEADER_LEN));
    }
    // Steps 6-7: record length against the header and the buffer.
    let record_len = le_u64(bytes, 16);
    if record_len < u64::from(header_len) {
        return Err(err(ErrorKind::BadRecordLength, o::RECORD_LEN));
    }
    if len < record_len {
        return Err(err(ErrorKind::Truncated, len));
    }
    let rec = &bytes[..record_len as usize];
    // Step 8: CRC.
    let stored_crc = le_u32(rec, 24);
    if crate::record_crc(rec) != stored_crc {
        return Err(err(ErrorKind::CrcMismatch, o::CRC32));
    }
    let (h, _) = RecordHeader::ref_from_prefix(rec).map_err(|_| err(ErrorKind::Truncated, len))?;
    // Step 9: reserved bytes.
    if let Some(i) = first_nonzero(&h.reserved0) {
        return Err(err(ErrorKind::ReservedNonZero, o::RESERVED0 + i as u64));
    }
    if let Some(i) = first_nonzero(&h.reserved1) {
        return Err(err(ErrorKind::ReservedNonZero, o::RESERVED1 + i as u64));
    }
    // Step 10: flags; with two-level scales also the version, the header length and the
    // extension's reserved bytes.
    let flags = h.flags.get();
    if flags & FLAGS_MUST_UNDERSTAND & !FLAGS_KNOWN != 0 {
        return Err(err(ErrorKind::UnsupportedFlags, o::FLAGS));
    }
    let subscaled = flags & FLAG_SUBSCALES != 0;
    let ext = if subscaled {
        if minor < VERSION_MINOR_V04 {
            return Err(err(ErrorKind::UnsupportedFlags, o::FLAGS));
        }
        if header_len < HEADER_LEN_V04 {
            return Err(err(ErrorKind::BadHeaderLength, o::HEADER_LEN));
        }
        // record_len >= header_len >= 256 (steps 5-7), so the extension lies inside `rec`.
        let (ext, _) = HeaderExtV04::ref_from_prefix(&rec[HEADER_LEN_V03 as usize..])
            .map_err(|_| err(ErrorKind::Truncated, len))?;
        if let Some(i) = first_nonzero(&ext.reserved2) {
            return Err(err(ErrorKind::ReservedNonZero, o::RESERVED2 + i as u64));
        }
        Some(ext)
    } else {
        None
    };
    // Steps 11-15: scalar fields.
    if !(1..=8).contains(&h.bits) {
        return Err(err(ErrorKind::BadBits, o::BITS));
    }
    if !(1..=MAX_NDIM as u8).contains(&h.ndim) {
        return Err(err(ErrorKind::BadNdim, o::NDIM));
    }
    if h.scale_dtype != SCALE_DTYPE_F16 {
        return Err(err(ErrorKind::BadScaleDtype, o::SCALE_DTYPE));
    }
    let overlay_dtype =
        OverlayDtype::from_u8(h.overlay_dtype).ok_or(err(ErrorKind::BadOverlayDtype, o::OVERLAY_DTYPE))?;
    let want_block = if subscaled { BLOCK_SIZE_V04 } else { crate::BLOCK_SIZE };
    if h.block_size.get() != want_block {
        return Err(err(ErrorKind::BadBlockSize, o::BLOCK_SIZE));
    }
    let (sub_block, sub_bits) = match ext {
        Some(e) => {
            let s = e.sub_block.get();
            if !SUB_BLOCKS.contains(&s) {
                return Err(err(ErrorKind::BadSubBlock, o::SUB_BLOCK));
            }
            if !(1..=8).contains(&e.sub_bits) {
                return Err(err(ErrorKind::BadSubBlock, o::SUB_BITS));
            }
            (s, e.sub_bits)
        }
        None => (0, 0),
    };
    // Steps 16-17: shape and overlay rank, and from them the canonical layout.
    let mut dims = [0u64; MAX_NDIM];
    for (d, s) in dims.iter_mut().zip(h.dims.iter()) {
        *d = s.get();
    }
    let params = RecordParams {
        bits: h.bits,
        ndim: h.ndim,
        dims,
        overlay_rank: h.overlay_rank.get(),
        overlay_dtype,
        header_len,
        sub_block,
        sub_bits,
    };
    let mut layout = params.layout()?;
    // Step 18: section table against the canonical layout (five entries with two-level scales).
    let table = h.sections.iter().chain(ext.map(|e| &e.subscales));
    let mut prev_end = u64::from(header_len);
    for (k, (want, got)) in layout.used_sections().iter().zip(table).enumerate() {
        let got: &SectionEntry = got;
        let at = section_entry_offset(k);
        let (off, slen) = (got.offset.get(), got.len.get());
        if slen != want.len {
            return Err(err(ErrorKind::SectionLength, at + 8));
        }
        let end = off.checked_add(slen).ok_or(err(ErrorKind::SectionOverflow, at))?;
        if off % SECTION_ALIGN != 0 {
            return Err(err(ErrorKind::SectionMisaligned, at));
        }
        if off < prev_end {
            return Err(err(ErrorKind::SectionOverlap, at));
        }
        if off != want.offset {
            return Err(err(ErrorKind::SectionGap, at));
        }
        if end > record_len {
            return Err(err(ErrorKind::SectionOutOfBounds, at));
        }
        prev_end = end;
    }
    // Step 19: the record ends at align64(end of the last section).
    if record_len != layout.record_len {
        return Err(err(ErrorKind::BadRecordLength, o::RECORD_LEN));
    }
    // Step 20: padding before each section and after the last one is zero (header bytes past the
    // fixed header and its extension, [192 or 256, header_len), are ignored).
    let mut pad_start = u64::from(header_len);
    let pad_ends = layout
        .used_sections()
        .iter()
        .map(|s| (s.offset, s.end()))
        .chain([(record_len, record_len)]);
    for (pad_end, next_start) in pad_ends {
        if let Some(i) = first_nonzero(&rec[pad_start as usize..pad_end as usize]) {
            return Err(err(ErrorKind::NonZeroPadding, pad_start + i as u64));
        }
        pad_start = next_start;
    }
    let sec = |k: usize| {
        let s = layout.sections[k];
        (&rec[s.offset as usize..s.end() as usize], s.offset)
    };
    // Step 21: grid values.
    let (grid, base) = sec(SECTION_GRID);
    for (j, c) in grid.chunks_exact(4).enumerate() {
        if !grid_value_ok(u32::from_le_bytes([c[0], c[1], c[2], c[3]])) {
            return Err(err(ErrorKind::BadGridValue, base + 4 * j as u64));
        }
    }
    // Step 22: scales.
    let (scales, base) = sec(SECTION_SCALES);
    for (j, c) in scales.chunks_exact(2).enumerate() {
        if !scale_value_ok(u16::from_le_bytes([c[0], c[1]])) {
            return Err(err(ErrorKind::BadScaleValue, base + 2 * j as u64));
        }
    }
    // Step 23: overlay factors.
    let (overlay, base) = sec(SECTION_OVERLAY);
    let bf16 = overlay_dtype == OverlayDtype::Bf16;
    for (j, c) in overlay.chunks_exact(2).enumerate() {
        if !overlay_value_ok(u16::from_le_bytes([c[0], c[1]]), bf16) {
            return Err(err(ErrorKind::BadOverlayValue, base + 2 * j as u64));
        }
    }
    // Step 24: unused code bits of the last block, bit positions [n*b, n_blocks*64*b); then, with
    // two-level scales, the unused bits of the sub-scales section, [n_sub*sub_bits, 8*len_4).
    let (codes, base) = sec(SECTION_CODES);
    unused_bits_zero(codes, base, layout.n * u64::from(params.bits))?;
    if subscaled {
        let (subs, base) = sec(SECTION_SUBSCALES);
        unused_bits_zero(subs, base, layout.n_subscales * u64::from(sub_bits))?;
    }
    layout.version_minor = minor;
    layout.flags = flags;
    layout.record_len = record_len;
    layout.crc32 = stored_crc;
    Ok(layout)
}
