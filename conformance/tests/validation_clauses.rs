//! One test per validation error class (spec ): each builds a valid record, breaks exactly one
//! rule, re-seals the CRC where the intended check comes after step 8, and asserts that both
//! `uc_format::validate` and `uc_decode::Record::parse` report exactly that class at exactly the
//! expected byte offset. The step numbers in comments are those of `uc-format/src/validate.rs`.
//!
//! Base records used throughout (offsets asserted literally in `base_layouts_are_canonical`):
//!
//! | record        | bits | dims     | r | grid      | scales   | codes     | overlay   | record_len |
//! |---------------|------|----------|---|-----------|----------|-----------|-----------|------------|
//! | `small()`     | 3    | [5, 13]  | 0 | 192 + 32  | 256 + 4  | 320 + 48  | 384 + 0   | 384        |
//! | `overlay(dt)` | 2    | [4, 6]   | 2 | 192 + 16  | 256 + 2  | 320 + 16  | 384 + 40  | 448        |
//! | `wide()`      | 8    | [10, 20] | 0 | 192 + 1024| 1216 + 8 | 1280 + 256| 1536 + 0  | 1536       |
//!
//! A record ends at the first multiple of 64 at or after the end of its overlay section (R-4.5,
//! `overlay(dt)` has 24 bytes of zero trailing padding, [424, 448).

use std::cell::RefCell;
use std::collections::BTreeSet;

use uc_decode::Record;
use uc_format::header::offsets as o;
use uc_format::{
    ErrorKind, Layout, OverlayDtype, RecordParams, finalize_crc, validate, write_record, write_record_with_subscales,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// xorshift64* (Vigna), fixed seeds only.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Builds a valid record with `write_record`: deterministic grid, scales, codes and overlay.
fn build(bits: u8, dims: &[u64], r: u32, dt: OverlayDtype, seed: u64) -> Vec<u8> {
    let params = RecordParams::new(bits, dims, r, dt).expect("params");
    let layout = params.layout().expect("layout");
    let mut rng = Rng::new(seed);
    let levels = 1usize << bits;
    // Distinct, valid, non-zero grid values: (j - (levels-1)/2) / 4, never 0 since levels is even.
    let grid: Vec<f32> = (0..levels)
        .map(|j| (j as f32 - (levels as f32 - 1.0) / 2.0) * 0.25)
        .collect();
    let scales: Vec<u16> = (0..layout.n_blocks)
        .map(|_| 0x3000 | (rng.below(0x0c00) as u16))
        .collect();
    let codes: Vec<u8> = (0..layout.n).map(|_| rng.below(levels as u64) as u8).collect();
    // 0x3xxx is a small positive finite value in both binary16 and bfloat16.
    let u: Vec<u16> = (0..layout.rows * u64::from(r))
        .map(|_| 0x3000 | (rng.below(0x1000) as u16))
        .collect();
    let v: Vec<u16> = (0..layout.cols * u64::from(r))
        .map(|_| 0x3000 | (rng.below(0x1000) as u16))
        .collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    let n = write_record(&params, &grid, &scales, &codes, &u, &v, &mut buf).expect("write_record");
    assert_eq!(n, buf.len());
    buf
}

/// bits 3, dims [5, 13] (n = 65: one full block and a partial one), no overlay.
fn small() -> Vec<u8> {
    build(3, &[5, 13], 0, OverlayDtype::None, 1)
}

/// bits 2, dims [4, 6], overlay rank 2 in `dt`.
fn overlay(dt: OverlayDtype) -> Vec<u8> {
    build(2, &[4, 6], 2, dt, 2)
}

/// bits 8 (grid of 1024 bytes), dims [10, 20], no overlay.
fn wide() -> Vec<u8> {
    build(8, &[10, 20], 0, OverlayDtype::None, 3)
}

/// Builds a valid record with two-level scales of sub-block `s` with `write_record_with_subscales`.
fn build_sub(bits: u8, dims: &[u64], r: u32, dt: OverlayDtype, s: u32, seed: u64) -> Vec<u8> {
    let params = RecordParams::with_subscales(bits, dims, r, dt, s).expect("params");
    let layout = params.layout().expect("layout");
    let mut rng = Rng::new(seed);
    let levels = 1usize << bits;
    let grid: Vec<f32> = (0..levels)
        .map(|j| (j as f32 - (levels as f32 - 1.0) / 2.0) * 0.25)
        .collect();
    let scales: Vec<u16> = (0..layout.n_scales)
        .map(|_| 0x3000 | (rng.below(0x0c00) as u16))
        .collect();
    let subs: Vec<u8> = (0..layout.n_subscales).map(|_| rng.below(256) as u8).collect();
    let codes: Vec<u8> = (0..layout.n).map(|_| rng.below(levels as u64) as u8).collect();
    let u: Vec<u16> = (0..layout.rows * u64::from(r))
        .map(|_| 0x3000 | (rng.below(0x1000) as u16))
        .collect();
    let v: Vec<u16> = (0..layout.cols * u64::from(r))
        .map(|_| 0x3000 | (rng.below(0x1000) as u16))
        .collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    let n = write_record_with_subscales(&params, &grid, &scales, &subs, &codes, &u, &v, &mut buf)
        .expect("write_record_with_subscales");
    assert_eq!(n, buf.len());
    buf
}

/// Two-level scales: bits 3, dims [3, 100] (n = 300), no overlay, sub-block `s`.
fn subscaled(s: u32) -> Vec<u8> {
    build_sub(3, &[3, 100], 0, OverlayDtype::None, s, 11)
}

/// Two-level scales, S = 16: bits 2, dims [4, 70], overlay rank 2 in f16.
fn subscaled_overlay() -> Vec<u8> {
    build_sub(2, &[4, 70], 2, OverlayDtype::F16, 16, 12)
}

fn layout_of(buf: &[u8]) -> Layout {
    validate(buf).expect("base record must be valid")
}

fn put_u8(b: &mut [u8], at: u64, v: u8) {
    b[at as usize] = v;
}
fn put_u16(b: &mut [u8], at: u64, v: u16) {
    b[at as usize..at as usize + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: u64, v: u32) {
    b[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: u64, v: u64) {
    b[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u64(b: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}

/// Byte offset of the `offset` field of section `k`'s table entry.
fn sec_off_field(k: usize) -> u64 {
    o::SECTIONS + 16 * k as u64
}
/// Byte offset of the `len` field of section `k`'s table entry.
fn sec_len_field(k: usize) -> u64 {
    o::SECTIONS + 16 * k as u64 + 8
}

/// Recomputes the CRC over `[0, record_len)` as the header states it (clamped to the buffer).
fn reseal(buf: &mut [u8]) {
    let rl = get_u64(buf, o::RECORD_LEN).min(buf.len() as u64) as usize;
    finalize_crc(&mut buf[..rl]);
}

thread_local! {
    /// Error classes that `expect_err` saw on this thread (used by the coverage test).
    static SEEN: RefCell<Vec<ErrorKind>> = const { RefCell::new(Vec::new()) };
}

/// Both the format validator and the decoder must reject `buf` with exactly `(kind, offset)`.
#[track_caller]
fn expect_err(buf: &[u8], kind: ErrorKind, offset: u64) {
    let e = validate(buf).expect_err("validate accepted an invalid record");
    assert_eq!(
        (e.kind, e.offset),
        (kind, offset),
        "validate: got {} at {}, want {} at {}",
        e.kind,
        e.offset,
        kind,
        offset
    );
    let d = Record::parse(buf).expect_err("Record::parse accepted an invalid record");
    assert_eq!(d, e, "Record::parse and validate disagree");
    assert_eq!(e.clause(), kind.clause());
    SEEN.with(|s| s.borrow_mut().push(kind));
}

/// Both must accept `buf`; returns the layout.
#[track_caller]
fn expect_ok(buf: &[u8]) -> Layout {
    let l = validate(buf).unwrap_or_else(|e| panic!("validate rejected a valid record: {e}"));
    let r = Record::parse(buf).unwrap_or_else(|e| panic!("Record::parse rejected a valid record: {e}"));
    assert_eq!(*r.layout(), l);
    l
}

fn decode_bits(buf: &[u8]) -> Vec<u32> {
    let rec = Record::parse(buf).expect("parse");
    let mut out = vec![0f32; rec.len() as usize];
    rec.decode_with(uc_decode::Path::Scalar, &mut out).expect("decode");
    out.iter().map(|x| x.to_bits()).collect()
}

/// Rewrites a minor-3 record as a record of minor version `minor` whose header is `header_len`
/// bytes long: bytes [192, header_len) (unknown to v0.3, ignored) are filled with `filler`, the
/// padding up to the next multiple of 64 is zero, and every section moves by the same amount.
fn with_header(base: &[u8], minor: u16, header_len: u32, filler: u8) -> Vec<u8> {
    let aligned = u64::from(header_len).div_ceil(64) * 64;
    let shift = aligned - 192;
    let mut out = base[..192].to_vec();
    out.resize(header_len as usize, filler);
    out.resize(aligned as usize, 0);
    out.extend_from_slice(&base[192..]);
    put_u16(&mut out, o::VERSION_MINOR, minor);
    put_u32(&mut out, o::HEADER_LEN, header_len);
    let rl = get_u64(&out, o::RECORD_LEN);
    put_u64(&mut out, o::RECORD_LEN, rl + shift);
    for k in 0..4 {
        let off = get_u64(&out, sec_off_field(k));
        put_u64(&mut out, sec_off_field(k), off + shift);
    }
    finalize_crc(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Sanity of the base records
// ---------------------------------------------------------------------------------------------

#[test]
fn base_layouts_are_canonical() {
    let secs =
        |b: &[u8]| -> Vec<(u64, u64)> { layout_of(b).used_sections().iter().map(|s| (s.offset, s.len)).collect() };
    assert_eq!(secs(&small()), [(192, 32), (256, 4), (320, 48), (384, 0)]);
    assert_eq!(layout_of(&small()).record_len, 384);
    for dt in [OverlayDtype::F16, OverlayDtype::Bf16] {
        assert_eq!(secs(&overlay(dt)), [(192, 16), (256, 2), (320, 16), (384, 40)]);
        assert_eq!(layout_of(&overlay(dt)).record_len, 448);
    }
    assert_eq!(secs(&wide()), [(192, 1024), (1216, 8), (1280, 256), (1536, 0)]);
    assert_eq!(layout_of(&wide()).record_len, 1536);
    // Two-level scales: header 256, scales per 256 elements, sub-scales after the overlay.
    assert_eq!(
        secs(&subscaled(32)),
        [(256, 32), (320, 4), (384, 120), (512, 0), (512, 10)]
    );
    assert_eq!(layout_of(&subscaled(32)).record_len, 576);
    assert_eq!(
        secs(&subscaled_overlay()),
        [(256, 16), (320, 4), (384, 80), (512, 296), (832, 18)]
    );
    assert_eq!(layout_of(&subscaled_overlay()).record_len, 896);
}

// ---------------------------------------------------------------------------------------------
// One test per error class
// ---------------------------------------------------------------------------------------------

/// Steps 1, 3, 7: the buffer ends before the magic, the fixed prefix, or `record_len`.
#[test]
fn truncated() {
    for base in [small(), overlay(OverlayDtype::Bf16)] {
        // Every proper prefix of a valid record: offset = the length given.
        for len in 0..base.len() {
            expect_err(&base[..len], ErrorKind::Truncated, len as u64);
        }
        expect_ok(&base);
    }
    // Under 8 bytes nothing is examined, not even the magic.
    for junk in [&b""[..], b"\x00", b"UCR", b"\x89UCR\r\n\x1a"] {
        expect_err(junk, ErrorKind::Truncated, junk.len() as u64);
    }
    // record_len larger than the buffer (step 7 comes before the CRC, step 8).
    let mut b = small();
    put_u64(&mut b, o::RECORD_LEN, 385);
    expect_err(&b, ErrorKind::Truncated, 384);
    put_u64(&mut b, o::RECORD_LEN, u64::MAX);
    expect_err(&b, ErrorKind::Truncated, 384);
}

/// Step 2: bytes 0..8 are not the magic (offset 0 whichever byte differs).
#[test]
fn bad_magic() {
    let base = small();
    for i in 0..8 {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = base.clone();
            b[i] ^= flip;
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadMagic, 0);
            // Checked before the length of the fixed prefix.
            expect_err(&b[..8], ErrorKind::BadMagic, 0);
            expect_err(&b[..23], ErrorKind::BadMagic, 0);
        }
    }
    expect_err(&[0u8; 400], ErrorKind::BadMagic, 0);
}

/// Step 4: major version other than 0, minor version below 3.
#[test]
fn unsupported_version() {
    let base = small();
    for (at, v) in [
        (o::VERSION_MAJOR, 1u16),
        (o::VERSION_MAJOR, 0xffff),
        (o::VERSION_MINOR, 2),
        (o::VERSION_MINOR, 0),
    ] {
        let mut b = base.clone();
        put_u16(&mut b, at, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::UnsupportedVersion, at);
    }
    // Major is checked before minor.
    let mut b = base.clone();
    put_u16(&mut b, o::VERSION_MAJOR, 1);
    put_u16(&mut b, o::VERSION_MINOR, 2);
    expect_err(&b, ErrorKind::UnsupportedVersion, o::VERSION_MAJOR);
}

/// Step 5: minor 3 needs exactly 192; later minors need [192, 65536].
#[test]
fn bad_header_length() {
    let base = small();
    for (minor, hl) in [
        (3u16, 256u32),
        (3, 191),
        (3, 0),
        (3, 193),
        (4, 100),
        (4, 191),
        (4, 65537),
        (4, 70000),
        (9, 0),
    ] {
        let mut b = base.clone();
        put_u16(&mut b, o::VERSION_MINOR, minor);
        put_u32(&mut b, o::HEADER_LEN, hl);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadHeaderLength, o::HEADER_LEN);
    }
}

/// Step 6 (`record_len` < header length) and step 19 (`record_len` is not the end of the overlay
/// section rounded up to a multiple of 64).
#[test]
fn bad_record_length() {
    let base = small();
    for rl in [0u64, 100, 191] {
        let mut b = base.clone();
        put_u64(&mut b, o::RECORD_LEN, rl);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
    }
    // Later minor: record_len below its own (longer) header.
    let mut b = with_header(&base, 4, 256, 0);
    put_u64(&mut b, o::RECORD_LEN, 255);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
    // record_len at the end of the overlay section, without the trailing padding to 64: every
    // section still lies inside the record, so step 19 is the first to object.
    for base in [overlay(OverlayDtype::F16), overlay(OverlayDtype::Bf16)] {
        let mut b = base.clone();
        put_u64(&mut b, o::RECORD_LEN, 424);
        reseal(&mut b);
        expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
        expect_err(&b[..424], ErrorKind::BadRecordLength, o::RECORD_LEN);
    }
    // Extra trailing bytes included in record_len (zero bytes, so only step 19 can object),
    // including a whole extra 64-byte unit.
    for extra in [1usize, 63, 64, 1000] {
        for base in [small(), overlay(OverlayDtype::F16)] {
            let mut b = base.clone();
            b.resize(base.len() + extra, 0);
            put_u64(&mut b, o::RECORD_LEN, (base.len() + extra) as u64);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
        }
    }
}

/// Step 8: any single flipped bit after the fixed prefix, in every section, padding or the CRC field.
#[test]
fn crc_mismatch() {
    for base in [small(), overlay(OverlayDtype::F16), overlay(OverlayDtype::Bf16)] {
        let l = layout_of(&base);
        // One bit in each section explicitly (the last byte of each non-empty section).
        for s in l.sections.iter().filter(|s| s.len > 0) {
            let mut b = base.clone();
            b[(s.end() - 1) as usize] ^= 0x10;
            expect_err(&b, ErrorKind::CrcMismatch, o::CRC32);
        }
        // And every bit of every byte from the CRC field on.
        for i in 24..base.len() {
            for bit in 0..8 {
                let mut b = base.clone();
                b[i] ^= 1 << bit;
                expect_err(&b, ErrorKind::CrcMismatch, o::CRC32);
            }
        }
    }
    // The CRC covers [0, record_len) only: a flipped bit after the record changes nothing.
    let mut b = small();
    b.extend_from_slice(&[0u8; 16]);
    b[390] ^= 1;
    expect_ok(&b);
}

/// Step 9: reserved0 (44..48) and reserved1 (176..192); offset = the first non-zero byte.
#[test]
fn reserved_nonzero() {
    let base = small();
    for at in (o::RESERVED0..o::RESERVED0 + 4).chain(o::RESERVED1..o::RESERVED1 + 16) {
        for v in [1u8, 0x80, 0xff] {
            let mut b = base.clone();
            put_u8(&mut b, at, v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::ReservedNonZero, at);
        }
    }
    let mut b = base.clone();
    put_u8(&mut b, 47, 1);
    put_u8(&mut b, 180, 1);
    put_u8(&mut b, 190, 1);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::ReservedNonZero, 47);
}

/// Step 10: must-understand flag bits 0..15; bits 16..31 are ignorable.
#[test]
fn unsupported_flags() {
    let base = small();
    for f in [1u32, 1 << 15, 0xffff, 0xffff_ffff, (1 << 31) | 1] {
        let mut b = base.clone();
        put_u32(&mut b, o::FLAGS, f);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::UnsupportedFlags, o::FLAGS);
    }
    // Ignorable bits: still valid, flags reported, same decoded values.
    let want = decode_bits(&base);
    for f in [1u32 << 16, 1 << 31, 0xffff_0000] {
        let mut b = base.clone();
        put_u32(&mut b, o::FLAGS, f);
        finalize_crc(&mut b);
        let l = expect_ok(&b);
        assert_eq!(l.flags, f);
        assert_eq!(decode_bits(&b), want);
    }
}

/// Step 11: bits outside 1..=8.
#[test]
fn bad_bits() {
    for v in [0u8, 9, 16, 255] {
        let mut b = small();
        put_u8(&mut b, o::BITS, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadBits, o::BITS);
    }
}

/// Step 12: ndim outside 1..=8.
#[test]
fn bad_ndim() {
    for v in [0u8, 9, 255] {
        let mut b = small();
        put_u8(&mut b, o::NDIM, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadNdim, o::NDIM);
    }
}

/// Step 13: scale dtype other than 1 (binary16).
#[test]
fn bad_scale_dtype() {
    for v in [0u8, 2, 255] {
        let mut b = small();
        put_u8(&mut b, o::SCALE_DTYPE, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadScaleDtype, o::SCALE_DTYPE);
    }
}

/// Step 14: overlay dtype other than 0, 1, 2.
#[test]
fn bad_overlay_dtype() {
    for base in [small(), overlay(OverlayDtype::F16)] {
        for v in [3u8, 4, 255] {
            let mut b = base.clone();
            put_u8(&mut b, o::OVERLAY_DTYPE, v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadOverlayDtype, o::OVERLAY_DTYPE);
        }
    }
}

/// Step 15: block size other than 64.
#[test]
fn bad_block_size() {
    for v in [0u32, 1, 32, 63, 65, 128, u32::MAX] {
        let mut b = small();
        put_u32(&mut b, o::BLOCK_SIZE, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadBlockSize, o::BLOCK_SIZE);
    }
}

/// Step 15: with flag bit 0, `sub_block` other than 16 or 32 (offset 208), after
/// `block_size` (which must then be 256).
#[test]
fn bad_sub_block() {
    for s in [16u32, 32] {
        let base = subscaled(s);
        expect_ok(&base);
        for v in [0u32, 1, 8, 15, 17, 24, 31, 48, 64, 256, u32::MAX] {
            let mut b = base.clone();
            put_u32(&mut b, 208, v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadSubBlock, 208);
            // block_size is checked first.
            put_u32(&mut b, o::BLOCK_SIZE, 64);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadBlockSize, o::BLOCK_SIZE);
        }
    }
    // Without flag bit 0 bytes 192..256 are ignored header bytes: sub_block is not looked at, and
    // block_size 256 is then wrong.
    let mut b = subscaled(32);
    put_u32(&mut b, o::FLAGS, 0);
    put_u32(&mut b, 208, 7);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadBlockSize, o::BLOCK_SIZE);
}

/// The other rules of section 13, each checked where puts it.
#[test]
fn two_level_scales_rules() {
    let base = subscaled(32); // sub-scales 512..522, record_len 576
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        f(&mut b);
        reseal(&mut b);
        b
    };
    // Step 10: version, header length, reserved2, unknown must-understand bits.
    expect_err(
        &edit(&|b| put_u32(b, o::FLAGS, 3)),
        ErrorKind::UnsupportedFlags,
        o::FLAGS,
    );
    expect_err(
        &edit(&|b| put_u32(b, o::HEADER_LEN, 192)),
        ErrorKind::BadHeaderLength,
        o::HEADER_LEN,
    );
    expect_err(
        &edit(&|b| put_u32(b, o::HEADER_LEN, 255)),
        ErrorKind::BadHeaderLength,
        o::HEADER_LEN,
    );
    for at in [213u64, 240, 255] {
        expect_err(&edit(&|b| put_u8(b, at, 1)), ErrorKind::ReservedNonZero, at);
    }
    let mut b = small();
    put_u32(&mut b, o::FLAGS, 1);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::UnsupportedFlags, o::FLAGS);
    // Step 15: block_size 256 only with the flag.
    expect_err(
        &edit(&|b| put_u32(b, o::BLOCK_SIZE, 64)),
        ErrorKind::BadBlockSize,
        o::BLOCK_SIZE,
    );
    let mut b = small();
    put_u32(&mut b, o::BLOCK_SIZE, 256);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadBlockSize, o::BLOCK_SIZE);
    // Step 18: the scales length and the sub-scales entry at 192..208.
    expect_err(
        &edit(&|b| put_u64(b, sec_len_field(1), 10)),
        ErrorKind::SectionLength,
        sec_len_field(1),
    );
    expect_err(&edit(&|b| put_u64(b, 200, 11)), ErrorKind::SectionLength, 200);
    expect_err(
        &edit(&|b| put_u64(b, 192, u64::MAX - 5)),
        ErrorKind::SectionOverflow,
        192,
    );
    expect_err(&edit(&|b| put_u64(b, 192, 520)), ErrorKind::SectionMisaligned, 192);
    expect_err(&edit(&|b| put_u64(b, 192, 448)), ErrorKind::SectionOverlap, 192);
    expect_err(&edit(&|b| put_u64(b, 192, 576)), ErrorKind::SectionGap, 192);
    let b = edit(&|b| {
        b.truncate(520);
        put_u64(b, o::RECORD_LEN, 520);
    });
    expect_err(&b, ErrorKind::SectionOutOfBounds, 192);
    // Step 19: record_len = align64(end of the sub-scales).
    let b = edit(&|b| {
        b.truncate(522);
        put_u64(b, o::RECORD_LEN, 522);
    });
    expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
    // Step 20: padding after the overlay and after the sub-scales.
    for at in [522u64, 575] {
        expect_err(&edit(&|b| put_u8(b, at, 1)), ErrorKind::NonZeroPadding, at);
    }
    let mut b = subscaled_overlay(); // overlay ends at 808, sub-scales at 832
    put_u8(&mut b, 808, 1);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::NonZeroPadding, 808);
    // Every sub-scale value is valid.
    for v in [0u8, 1, 128, 255] {
        expect_ok(&edit(&|b| b[512..522].fill(v)));
    }
    // sub_bits (212) outside 1..=8, after sub_block.
    for v in [0u8, 9, 255] {
        expect_err(&edit(&|b| put_u8(b, 212, v)), ErrorKind::BadSubBlock, 212);
        let b = edit(&|b| {
            put_u8(b, 212, v);
            put_u32(b, 208, 8);
        });
        expect_err(&b, ErrorKind::BadSubBlock, 208);
    }
}

/// Step 16: a used dimension is 0 or an unused slot is not; offset 48 + 8 i.
#[test]
fn bad_dim() {
    let base = small(); // ndim 2, dims [5, 13]
    let dim = |i: u64| o::DIMS + 8 * i;
    // Used dimension zero.
    for i in 0..2 {
        let mut b = base.clone();
        put_u64(&mut b, dim(i), 0);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadDim, dim(i));
    }
    // Unused slot non-zero.
    for i in 2..8 {
        let mut b = base.clone();
        put_u64(&mut b, dim(i), 1);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadDim, dim(i));
    }
    // ndim 1 leaves dims[1] = 13 in an unused slot; ndim 3 makes the zero dims[2] used.
    for (ndim, at) in [(1u8, dim(1)), (3, dim(2)), (8, dim(2))] {
        let mut b = base.clone();
        put_u8(&mut b, o::NDIM, ndim);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadDim, at);
    }
}

/// Step 16: the product of the dimensions overflows u64 (offset 48).
#[test]
fn shape_overflow() {
    for dims in [
        &[1u64 << 32, 1 << 32][..],
        &[1 << 63, 2],
        &[1 << 22, 1 << 22, 1 << 22],
        &[u64::MAX, u64::MAX],
    ] {
        let mut b = small();
        put_u8(&mut b, o::NDIM, dims.len() as u8);
        for (i, &d) in dims.iter().enumerate() {
            put_u64(&mut b, o::DIMS + 8 * i as u64, d);
        }
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::ShapeOverflow, o::DIMS);
    }
}

/// Steps 16-17: more than 2^48 elements (offset 48), overlay rank above 4096 (offset 40).
#[test]
fn limit_exceeded() {
    let set_dims = |b: &mut Vec<u8>, dims: &[u64]| {
        put_u8(b, o::NDIM, dims.len() as u8);
        for i in 0..8 {
            put_u64(b, o::DIMS + 8 * i as u64, dims.get(i).copied().unwrap_or(0));
        }
    };
    for dims in [
        &[1u64 << 25, 1 << 24][..],
        &[(1 << 48) + 1],
        &[1 << 16, 1 << 16, 1 << 16, 2],
    ] {
        let mut b = small();
        set_dims(&mut b, dims);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::LimitExceeded, o::DIMS);
    }
    for (base, rank) in [
        (overlay(OverlayDtype::F16), 4097u32),
        (overlay(OverlayDtype::Bf16), u32::MAX),
        (small(), 4097),
    ] {
        let mut b = base.clone();
        put_u32(&mut b, o::OVERLAY_RANK, rank);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::LimitExceeded, o::OVERLAY_RANK);
    }
    // Exactly 2^48 elements is within the limit: the next check to fail is the scales length.
    let mut b = small();
    set_dims(&mut b, &[1 << 24, 1 << 24]);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::SectionLength, sec_len_field(1));
    // Rank exactly 4096 is within the limit (and then too large for this shape).
    let mut b = overlay(OverlayDtype::F16);
    put_u32(&mut b, o::OVERLAY_RANK, 4096);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
}

/// Step 17: rank and dtype disagree, or the rank does not fit the shape (offset 40).
#[test]
fn bad_overlay_rank() {
    // rank > 0 with dtype 0.
    let mut b = small();
    put_u32(&mut b, o::OVERLAY_RANK, 1);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
    for dt in [OverlayDtype::F16, OverlayDtype::Bf16] {
        let base = overlay(dt); // [4, 6], r = 2
        // rank 0 with a dtype.
        let mut b = base.clone();
        put_u32(&mut b, o::OVERLAY_RANK, 0);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
        // dtype 0 with rank 2.
        let mut b = base.clone();
        put_u8(&mut b, o::OVERLAY_DTYPE, 0);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
        // rank > 0 on a 1-D tensor ([24]).
        let mut b = base.clone();
        put_u8(&mut b, o::NDIM, 1);
        put_u64(&mut b, o::DIMS, 24);
        put_u64(&mut b, o::DIMS + 8, 0);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
        // rank > min(rows, cols): rows bound ([4, 6], r 5 and 7) and cols bound ([6, 2, 2], r 5).
        for r in [5u32, 7] {
            let mut b = base.clone();
            put_u32(&mut b, o::OVERLAY_RANK, r);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
        }
        let mut b = base.clone();
        put_u8(&mut b, o::NDIM, 3);
        for (i, d) in [6u64, 2, 2].into_iter().enumerate() {
            put_u64(&mut b, o::DIMS + 8 * i as u64, d);
        }
        put_u32(&mut b, o::OVERLAY_RANK, 5);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadOverlayRank, o::OVERLAY_RANK);
        // rank == min(rows, cols) = 4 fits; the overlay length (2*4*10 = 80 != 40) is then wrong.
        let mut b = base.clone();
        put_u32(&mut b, o::OVERLAY_RANK, 4);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::SectionLength, sec_len_field(3));
    }
}

/// Step 18: a section length differs from the one the shape implies (offset 112 + 16k + 8).
#[test]
fn section_length() {
    for base in [small(), overlay(OverlayDtype::F16), wide()] {
        let l = layout_of(&base);
        for k in 0..4 {
            for delta in [1u64, 2, 64, u64::MAX] {
                let mut b = base.clone();
                put_u64(&mut b, sec_len_field(k), l.sections[k].len.wrapping_add(delta));
                finalize_crc(&mut b);
                expect_err(&b, ErrorKind::SectionLength, sec_len_field(k));
            }
        }
    }
    // Header shape fields that imply other lengths: bits 3 -> 4 (grid 32 -> 64 bytes) ...
    let mut b = small();
    put_u8(&mut b, o::BITS, 4);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::SectionLength, sec_len_field(0));
    // ... and dims [5, 13] -> [5, 26] (2 -> 3 blocks: scales 4 -> 6 bytes).
    let mut b = small();
    put_u64(&mut b, o::DIMS + 8, 26);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::SectionLength, sec_len_field(1));
}

/// Step 18: offset + length overflows u64 (checked before alignment).
#[test]
fn section_overflow() {
    let base = wide(); // grid 1024 bytes, codes 256 bytes, scales 8 bytes
    for (k, off) in [
        (0usize, u64::MAX - 63),
        (2, u64::MAX - 63),
        (0, u64::MAX),
        (2, u64::MAX - 1),
        (1, u64::MAX - 6),
    ] {
        let mut b = base.clone();
        put_u64(&mut b, sec_off_field(k), off);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::SectionOverflow, sec_off_field(k));
    }
    // The largest aligned offset with a short section does not overflow: it is a gap instead.
    let mut b = base.clone();
    put_u64(&mut b, sec_off_field(1), u64::MAX - 63);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::SectionGap, sec_off_field(1));
}

/// Step 18: a section offset that is not a multiple of 64.
#[test]
fn section_misaligned() {
    for base in [small(), overlay(OverlayDtype::Bf16)] {
        let l = layout_of(&base);
        for k in 0..4 {
            for delta in [1u64, 8, 32, 63] {
                let mut b = base.clone();
                put_u64(&mut b, sec_off_field(k), l.sections[k].offset + delta);
                finalize_crc(&mut b);
                expect_err(&b, ErrorKind::SectionMisaligned, sec_off_field(k));
            }
            // Misaligned and before the previous section: alignment is checked first.
            let mut b = base.clone();
            put_u64(&mut b, sec_off_field(k), 1);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::SectionMisaligned, sec_off_field(k));
        }
    }
}

/// Step 18: a section starts before the end of the header or of the previous section.
#[test]
fn section_overlap() {
    let base = overlay(OverlayDtype::F16); // grid 192..208, scales 256..258, codes 320..336, overlay 384..424
    for (k, off) in [(0usize, 0u64), (0, 128), (1, 192), (1, 128), (2, 256), (2, 0), (3, 320)] {
        let mut b = base.clone();
        put_u64(&mut b, sec_off_field(k), off);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::SectionOverlap, sec_off_field(k));
    }
    // A later minor with a 256-byte header: a grid at 192 now overlaps the header.
    let mut b = with_header(&small(), 4, 256, 0);
    put_u64(&mut b, sec_off_field(0), 192);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::SectionOverlap, sec_off_field(0));
}

/// Step 18: a section starts after the first 64-aligned offset following the previous one.
#[test]
fn section_gap() {
    for base in [small(), overlay(OverlayDtype::F16)] {
        let l = layout_of(&base);
        for k in 0..4 {
            for delta in [64u64, 128, 1 << 20] {
                let mut b = base.clone();
                put_u64(&mut b, sec_off_field(k), l.sections[k].offset + delta);
                finalize_crc(&mut b);
                expect_err(&b, ErrorKind::SectionGap, sec_off_field(k));
            }
        }
    }
}

/// Step 18: a section ends after `record_len` (before step 19 compares `record_len` itself).
#[test]
fn section_out_of_bounds() {
    // small(): grid 192..224, scales 256..260, codes 320..368, empty overlay at 384.
    // overlay(): grid 192..208, scales 256..258, codes 320..336, overlay 384..424, end 448.
    let cases: [(Vec<u8>, u64, usize); 9] = [
        (small(), 383, 3),
        (small(), 370, 3),
        (small(), 367, 2),
        (small(), 259, 1),
        (small(), 192, 0),
        (overlay(OverlayDtype::F16), 423, 3),
        (overlay(OverlayDtype::F16), 384, 3),
        (overlay(OverlayDtype::Bf16), 385, 3),
        (overlay(OverlayDtype::F16), 335, 2),
    ];
    for (base, rl, k) in cases {
        let mut b = base.clone();
        put_u64(&mut b, o::RECORD_LEN, rl);
        finalize_crc(&mut b[..rl as usize]);
        expect_err(&b, ErrorKind::SectionOutOfBounds, sec_off_field(k));
        // Also when the buffer itself ends at record_len.
        expect_err(&b[..rl as usize], ErrorKind::SectionOutOfBounds, sec_off_field(k));
    }
}

/// Steps 20 and 24: non-zero padding between sections, and unused code bits of the last block.
#[test]
fn nonzero_padding() {
    // small(): padding [224, 256), [260, 320), [368, 384); bits 3, n 65: the last code ends at
    // bit 195, so byte 24 of the codes (record byte 344) has bits 3..7 unused, bytes 25..48 unused.
    let base = small();
    for (at, v) in [
        (224u64, 1u8),
        (230, 0x80),
        (255, 1),
        (260, 1),
        (300, 0xff),
        (319, 1),
        (368, 1),
        (370, 1),
        (383, 0x40),
    ] {
        let mut b = base.clone();
        put_u8(&mut b, at, v);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, at);
    }
    for (byte, mask) in [(24u64, 0x08u8), (24, 0x80), (24, 0xf8), (25, 1), (30, 0x10), (47, 0x80)] {
        let mut b = base.clone();
        b[(320 + byte) as usize] |= mask;
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, 320 + byte);
    }
    // Trailing padding after a non-empty overlay, up to record_len ([424, 448) in overlay()).
    for at in [424u64, 430, 447] {
        let mut b = overlay(OverlayDtype::F16);
        put_u8(&mut b, at, 0x20);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, at);
    }
    // Bits 0..2 of that byte belong to code 64: any value is valid.
    let mut b = base.clone();
    b[344] |= 0x07;
    finalize_crc(&mut b);
    expect_ok(&b);
    // Padding before a non-empty overlay ([336, 384) in overlay()).
    for at in [336u64, 360, 383] {
        let mut b = overlay(OverlayDtype::Bf16);
        put_u8(&mut b, at, 2);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, at);
    }
    // Unused code bits on a byte boundary: bits 8, n 65 -> codes bytes 65.. of 128 unused.
    let b8 = build(8, &[65], 0, OverlayDtype::None, 9);
    let codes = layout_of(&b8).sections[2].offset;
    for byte in [65u64, 100, 127] {
        let mut b = b8.clone();
        put_u8(&mut b, codes + byte, 1);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, codes + byte);
    }
    // bits 1, n 1: only bit 0 of the 8 code bytes is used.
    let b1 = build(1, &[1], 0, OverlayDtype::None, 10);
    let codes = layout_of(&b1).sections[2].offset;
    for (byte, v) in [(0u64, 0x02u8), (0, 0x80), (7, 1)] {
        let mut b = b1.clone();
        b[(codes + byte) as usize] |= v;
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::NonZeroPadding, codes + byte);
    }
    // A later minor, header_len 200: [192, 200) is header (ignored), [200, 256) is padding.
    let mut b = with_header(&base, 4, 200, 0xaa);
    expect_ok(&b);
    put_u8(&mut b, 210, 1);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::NonZeroPadding, 210);
}

/// Step 21: grid values NaN, infinite, f32 subnormal, or magnitude outside [2^-64, 2^64].
#[test]
fn bad_grid_value() {
    let bad: [u32; 11] = [
        0x7fc0_0000, // NaN
        0xffc0_0001, // negative NaN with payload
        0x7f80_0000, // +Inf
        0xff80_0000, // -Inf
        0x1f00_0000, // 2^-65
        0x1f7f_ffff, // just below 2^-64
        0x9f00_0000, // -2^-65
        0x5f80_0001, // 2^64 * (1 + 2^-23)
        0xdf80_0001, // -2^64 * (1 + 2^-23)
        0x0000_0001, // smallest f32 subnormal
        0x807f_ffff, // largest negative f32 subnormal
    ];
    for base in [small(), wide()] {
        let l = layout_of(&base);
        let grid = l.sections[0].offset;
        let levels = (l.sections[0].len / 4) as u32;
        for (t, &v) in bad.iter().enumerate() {
            let j = (t as u32 * 5) % levels;
            let mut b = base.clone();
            put_u32(&mut b, grid + 4 * u64::from(j), v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadGridValue, grid + 4 * u64::from(j));
        }
        // The bounds themselves and both zeros are valid.
        for v in [0u32, 0x8000_0000, 0x1f80_0000, 0x9f80_0000, 0x5f80_0000, 0xdf80_0000] {
            let mut b = base.clone();
            put_u32(&mut b, grid + 4, v);
            finalize_crc(&mut b);
            expect_ok(&b);
        }
        // The first bad entry is reported.
        let mut b = base.clone();
        put_u32(&mut b, grid + 4 * (u64::from(levels) - 1), 0x7f80_0000);
        put_u32(&mut b, grid + 4, 0x7fc0_0000);
        finalize_crc(&mut b);
        expect_err(&b, ErrorKind::BadGridValue, grid + 4);
    }
}

/// Step 22: scales with the sign bit set (including -0.0), infinite or NaN.
#[test]
fn bad_scale_value() {
    for base in [small(), wide()] {
        let l = layout_of(&base);
        let scales = l.sections[1].offset;
        let count = l.n_blocks;
        for (t, v) in [
            0x8000u16, 0x8001, 0xbc00, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff,
        ]
        .into_iter()
        .enumerate()
        {
            let j = t as u64 % count;
            let mut b = base.clone();
            put_u16(&mut b, scales + 2 * j, v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadScaleValue, scales + 2 * j);
        }
        for v in [0u16, 0x0001, 0x03ff, 0x0400, 0x7bff] {
            let mut b = base.clone();
            put_u16(&mut b, scales + 2 * (count - 1), v);
            finalize_crc(&mut b);
            expect_ok(&b);
        }
    }
}

/// Step 23: infinite or NaN overlay factors (in U or V), per overlay dtype.
#[test]
fn bad_overlay_value() {
    // overlay(): U is [4, 2] (8 values), V is [2, 6] (12 values); the section starts at 384.
    let cases: [(OverlayDtype, u16); 8] = [
        (OverlayDtype::F16, 0x7c00),  // +inf
        (OverlayDtype::F16, 0xfc00),  // -inf
        (OverlayDtype::F16, 0x7e00),  // nan
        (OverlayDtype::F16, 0xfc01),  // nan
        (OverlayDtype::Bf16, 0x7fc0), // nan
        (OverlayDtype::Bf16, 0xffc1), // nan
        (OverlayDtype::Bf16, 0x7f80), // +inf
        (OverlayDtype::Bf16, 0xff80), // -inf
    ];
    for (dt, v) in cases {
        for j in [0u64, 7, 8, 19] {
            let mut b = overlay(dt);
            put_u16(&mut b, 384 + 2 * j, v);
            finalize_crc(&mut b);
            expect_err(&b, ErrorKind::BadOverlayValue, 384 + 2 * j);
        }
    }
    // The largest finite values are valid; binary16 infinity is a finite bfloat16 value. (Every
    // non-finite bfloat16 pattern has the binary16 exponent bits all ones, so no converse exists.)
    for (dt, v) in [
        (OverlayDtype::F16, 0xfbffu16),
        (OverlayDtype::F16, 0x7bff),
        (OverlayDtype::Bf16, 0x7c00),
        (OverlayDtype::Bf16, 0x7f7f),
    ] {
        let mut b = overlay(dt);
        put_u16(&mut b, 384, v);
        finalize_crc(&mut b);
        expect_ok(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// Forward compatibility and the step order
// ---------------------------------------------------------------------------------------------

#[test]
fn later_minor_with_longer_header_is_valid() {
    for base in [small(), overlay(OverlayDtype::F16), overlay(OverlayDtype::Bf16), wide()] {
        let l3 = layout_of(&base);
        let want = decode_bits(&base);
        for (minor, hl, filler) in [
            (4u16, 256u32, 0u8),
            (4, 256, 0x5a),
            (4, 200, 0xff),
            (4, 192, 0),
            (7, 320, 1),
            (0xffff, 65536, 3),
        ] {
            let b = with_header(&base, minor, hl, filler);
            let l = expect_ok(&b);
            assert_eq!(l.version_minor, minor);
            let shift = u64::from(hl).div_ceil(64) * 64 - 192;
            assert_eq!(l.record_len, l3.record_len + shift);
            for k in 0..4 {
                assert_eq!(l.sections[k].offset, l3.sections[k].offset + shift);
                assert_eq!(l.sections[k].len, l3.sections[k].len);
            }
            // The canonical layout of the same shape with this header length agrees.
            let params = RecordParams {
                header_len: hl,
                ..l3.params
            };
            assert_eq!(params.layout().unwrap().sections, l.sections);
            assert_eq!(decode_bits(&b), want, "minor {minor}, header_len {hl}");
            let rec = Record::parse(&b).unwrap();
            let rec3 = Record::parse(&base).unwrap();
            let r = rec.overlay_rank() as usize;
            let mut u = vec![0f32; rec.rows() as usize * r];
            let mut u3 = u.clone();
            rec.overlay_u_into(&mut u).unwrap();
            rec3.overlay_u_into(&mut u3).unwrap();
            assert_eq!(
                u.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                u3.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

/// When several rules are broken, the earlier step wins.
#[test]
fn step_order() {
    // CRC (8) is checked after version (4) and lengths (5-7), before everything else.
    let mut b = small();
    put_u8(&mut b, o::BITS, 0);
    expect_err(&b, ErrorKind::CrcMismatch, o::CRC32);
    finalize_crc(&mut b);
    expect_err(&b, ErrorKind::BadBits, o::BITS);
    // Reserved (9) before flags (10) before bits (11) before ndim (12) ... before dims (16).
    let mut b = small();
    put_u64(&mut b, o::DIMS + 8 * 7, 1);
    put_u32(&mut b, o::BLOCK_SIZE, 1);
    put_u8(&mut b, o::OVERLAY_DTYPE, 9);
    put_u8(&mut b, o::SCALE_DTYPE, 9);
    put_u8(&mut b, o::NDIM, 0);
    put_u8(&mut b, o::BITS, 0);
    put_u32(&mut b, o::FLAGS, 1);
    put_u8(&mut b, o::RESERVED1, 1);
    let order = [
        (ErrorKind::ReservedNonZero, o::RESERVED1, 0u64),
        (ErrorKind::UnsupportedFlags, o::FLAGS, 0),
        (ErrorKind::BadBits, o::BITS, 3),
        (ErrorKind::BadNdim, o::NDIM, 2),
        (ErrorKind::BadScaleDtype, o::SCALE_DTYPE, 1),
        (ErrorKind::BadOverlayDtype, o::OVERLAY_DTYPE, 0),
        (ErrorKind::BadBlockSize, o::BLOCK_SIZE, 64),
        (ErrorKind::BadDim, o::DIMS + 56, 0),
    ];
    // Fix the reported field each time; the next one in step order is reported next.
    for (kind, at, fix) in order {
        finalize_crc(&mut b);
        expect_err(&b, kind, at);
        if at == o::BLOCK_SIZE || at == o::FLAGS {
            put_u32(&mut b, at, fix as u32);
        } else if (o::DIMS..o::SECTIONS).contains(&at) {
            put_u64(&mut b, at, fix);
        } else {
            put_u8(&mut b, at, fix as u8);
        }
    }
    finalize_crc(&mut b);
    expect_ok(&b);
    // Section table (18) before record_len (19) before padding (20) before values (21-23)
    // before code bits (24).
    let mut b = small();
    let rl = b.len() as u64;
    b.resize(b.len() + 64, 0);
    put_u64(&mut b, o::RECORD_LEN, rl + 64);
    put_u64(&mut b, sec_off_field(3), 384 + 64);
    put_u8(&mut b, 320 + 40, 1); // unused code byte 40
    put_u32(&mut b, 192, 0x7f80_0000); // grid[0] = inf
    put_u16(&mut b, 256, 0x7c00); // scale[0] = inf
    put_u8(&mut b, 300, 1); // padding
    reseal(&mut b);
    expect_err(&b, ErrorKind::SectionGap, sec_off_field(3));
    put_u64(&mut b, sec_off_field(3), 384);
    reseal(&mut b);
    expect_err(&b, ErrorKind::BadRecordLength, o::RECORD_LEN);
    put_u64(&mut b, o::RECORD_LEN, rl);
    reseal(&mut b);
    expect_err(&b, ErrorKind::NonZeroPadding, 300);
    put_u8(&mut b, 300, 0);
    reseal(&mut b);
    expect_err(&b, ErrorKind::BadGridValue, 192);
    put_u32(&mut b, 192, 0x3f80_0000);
    reseal(&mut b);
    expect_err(&b, ErrorKind::BadScaleValue, 256);
    put_u16(&mut b, 256, 0x3c00);
    reseal(&mut b);
    expect_err(&b, ErrorKind::NonZeroPadding, 360);
    put_u8(&mut b, 360, 0);
    reseal(&mut b);
    expect_ok(&b);
}

// ---------------------------------------------------------------------------------------------
// Coverage of the error classes
// ---------------------------------------------------------------------------------------------

/// The test that exercises each error class.
const KIND_TESTS: &[(ErrorKind, fn())] = &[
    (ErrorKind::Truncated, truncated),
    (ErrorKind::BadMagic, bad_magic),
    (ErrorKind::UnsupportedVersion, unsupported_version),
    (ErrorKind::BadHeaderLength, bad_header_length),
    (ErrorKind::BadRecordLength, bad_record_length),
    (ErrorKind::CrcMismatch, crc_mismatch),
    (ErrorKind::ReservedNonZero, reserved_nonzero),
    (ErrorKind::UnsupportedFlags, unsupported_flags),
    (ErrorKind::BadBits, bad_bits),
    (ErrorKind::BadNdim, bad_ndim),
    (ErrorKind::BadScaleDtype, bad_scale_dtype),
    (ErrorKind::BadOverlayDtype, bad_overlay_dtype),
    (ErrorKind::BadBlockSize, bad_block_size),
    (ErrorKind::BadDim, bad_dim),
    (ErrorKind::ShapeOverflow, shape_overflow),
    (ErrorKind::LimitExceeded, limit_exceeded),
    (ErrorKind::BadOverlayRank, bad_overlay_rank),
    (ErrorKind::SectionLength, section_length),
    (ErrorKind::SectionOverflow, section_overflow),
    (ErrorKind::SectionMisaligned, section_misaligned),
    (ErrorKind::SectionOverlap, section_overlap),
    (ErrorKind::SectionGap, section_gap),
    (ErrorKind::SectionOutOfBounds, section_out_of_bounds),
    (ErrorKind::NonZeroPadding, nonzero_padding),
    (ErrorKind::BadGridValue, bad_grid_value),
    (ErrorKind::BadScaleValue, bad_scale_value),
    (ErrorKind::BadOverlayValue, bad_overlay_value),
    (ErrorKind::BadSubBlock, bad_sub_block),
];

#[test]
fn every_error_kind_is_exercised() {
    let listed: BTreeSet<u32> = KIND_TESTS.iter().map(|(k, _)| k.code()).collect();
    let all: BTreeSet<u32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
    assert_eq!(listed.len(), KIND_TESTS.len(), "a kind is listed twice");
    assert_eq!(listed, all, "KIND_TESTS must name every ErrorKind exactly once");
    // Run each test and check, at run time, that it really produced its kind.
    let mut produced = BTreeSet::new();
    for (kind, test) in KIND_TESTS {
        SEEN.with(|s| s.borrow_mut().clear());
        test();
        let seen = SEEN.with(|s| s.borrow().clone());
        assert!(seen.contains(kind), "test for {kind} never produced it");
        produced.extend(seen.iter().map(|k| k.code()));
    }
    assert_eq!(produced, all);
}

#[test]
fn error_kind_names_and_codes() {
    assert_eq!(ErrorKind::ALL.len(), 28);
    let mut codes = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, &k) in ErrorKind::ALL.iter().enumerate() {
        assert_eq!(ErrorKind::from_name(k.name()), Some(k));
        assert_eq!(k.code(), i as u32 + 1, "ALL is in code order, codes start at 1");
        assert!(codes.insert(k.code()), "duplicate code {}", k.code());
        assert!(names.insert(k.name()), "duplicate name {}", k.name());
        assert!(k.clause().starts_with("R-"), "{k}: clause {}", k.clause());
        assert!(k.name().bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{k}");
        assert_eq!(format!("{k}"), k.name());
    }
    assert_eq!(ErrorKind::from_name(""), None);
    assert_eq!(ErrorKind::from_name("Truncated"), None);
    assert_eq!(ErrorKind::from_name("no_such_error"), None);
    let e = uc_format::Error::new(ErrorKind::BadBits, 32);
    assert_eq!(
        e.to_string(),
        "invalid uc record: bad_bits at byte offset 32 (spec R-4.8)"
    );
}
