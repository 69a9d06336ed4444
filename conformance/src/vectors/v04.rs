//! Vectors for the v0.4 records with two-level scales (spec section 13), built by the same
//! independent assembler as the v0.3 vectors (`super::assemble`, not `uc_format`'s writer). They
//! draw their random data from their own seeds, so the v0.3 vectors stay byte-identical.

use super::{Base, Expect, RecordSpec, Rng, Vector, base, fix_crc, random_spec, set_u16, set_u32, set_u64, valid};
use uc_format::ErrorKind;

/// Clauses every record with two-level scales exercises.
const SUB_CLAUSES: &[&str] = &[
    "R-13.1", "R-13.2", "R-13.3", "R-13.4", "R-4.4", "R-4.12", "R-5.9", "R-10.1",
];

/// A random valid record with two-level scales of sub-block `s` and 8-bit sub-scales: version 0.4,
/// header_len 256, flag bit 0, one random normal binary16 scale per 256 elements, random
/// sub-scales (0 and 255 frequent).
fn sub_spec(rng: &mut Rng, bits: u8, dims: &[u64], overlay_dtype: u8, rank: u32, s: u32) -> RecordSpec {
    sub_spec_q(rng, bits, dims, overlay_dtype, rank, s, 8)
}

/// As [`sub_spec`] with `q`-bit sub-scales (0 and `2^q - 1` frequent).
pub(crate) fn sub_spec_q(
    rng: &mut Rng,
    bits: u8,
    dims: &[u64],
    overlay_dtype: u8,
    rank: u32,
    s: u32,
    q: u8,
) -> RecordSpec {
    let mut spec = random_spec(rng, bits, dims, overlay_dtype, rank);
    let n: u64 = dims.iter().product();
    spec.scales = (0..n.div_ceil(256))
        .map(|_| ((rng.below(14) + 1) << 10 | rng.below(1024)) as u16)
        .collect();
    spec.subscales = (0..n.div_ceil(u64::from(s)))
        .map(|_| match rng.below(8) {
            0 => 0,
            1 => ((1u32 << q) - 1) as u8,
            _ => rng.below(1 << q) as u8,
        })
        .collect();
    spec.sub_block = s;
    spec.sub_bits = q;
    spec.minor = 4;
    spec.header_len = 256;
    spec.flags = 1;
    spec
}

fn sub_valid(name: &str, description: &str, extra: &[&'static str], spec: &RecordSpec) -> Vector {
    let mut clauses: Vec<&'static str> = SUB_CLAUSES.to_vec();
    clauses.extend_from_slice(extra);
    valid(name, description, &clauses, spec)
}

/// The positive vectors with two-level scales.
pub(super) fn positive() -> Vec<Vector> {
    let mut rng = Rng(0x5eed_0004_0000_0001);
    let mut v = Vec::new();
    // Every code width with both sub-block sizes; n = 595 = 9*64 + 19 = 2*256 + 83 = 37*16 + 3 =
    // 18*32 + 19: partial last code group, 256-block and sub-block.
    // Sub-scale widths q = 9 - bits (S = 16) and q = bits (S = 32): every q with both S.
    for bits in 1..=8u8 {
        for s in [16u32, 32] {
            let q = if s == 16 { 9 - bits } else { bits };
            let spec = sub_spec_q(&mut rng, bits, &[5, 119], 0, 0, s, q);
            v.push(sub_valid(
                &format!("sub{s}_bits{bits}_5x119"),
                &format!(
                    "two-level scales, S = {s}, {q}-bit sub-scales, {bits}-bit codes, 5x119 matrix: 3 scales \
                     (last covers 83), {} sub-scales (last partial), 10 code groups (last of 19)",
                    595u32.div_ceil(s)
                ),
                &["R-4.8", "R-4.13", "R-6.2", "R-7.5", "R-7.6", "R-5.1", "R-5.2"],
                &spec,
            ));
        }
    }
    for (name, dims, bits, s) in [
        ("sub16_n1", &[1u64][..], 3u8, 16u32),
        ("sub32_n256", &[256][..], 4, 32),
        ("sub16_n4097", &[4097][..], 2, 16),
        ("sub32_shape_3d_3x5x37", &[3, 5, 37][..], 5, 32),
    ] {
        let spec = sub_spec(&mut rng, bits, dims, 0, 0, s);
        v.push(sub_valid(
            name,
            &format!("two-level scales, S = {s}, shape {dims:?} at {bits} bits"),
            &["R-4.13", "R-4.14", "R-6.2", "R-5.2"],
            &spec,
        ));
    }
    for (name, dims, dtype, rank, s) in [
        ("sub16_overlay_r2_f16", [6u64, 70u64], 1u8, 2u32, 16u32),
        ("sub32_overlay_r3_bf16", [5, 90], 2, 3, 32),
    ] {
        let spec = sub_spec(&mut rng, 4, &dims, dtype, rank, s);
        v.push(sub_valid(
            name,
            &format!(
                "two-level scales, S = {s}, with a rank-{rank} {} overlay on a {}x{} matrix: the sub-scales \
                 section follows the overlay at the next multiple of 64",
                if dtype == 1 { "f16" } else { "bf16" },
                dims[0],
                dims[1]
            ),
            &["R-4.11", "R-8.1", "R-8.2", "R-8.3", "R-8.4", "R-8.5", "R-5.2", "R-4.5"],
            &spec,
        ));
    }
    // the range of the effective scale. Block 0 has scale 65504, block 1 2^-24, block 2
    // +0, block 3 1.0; within each block the sub-scales cycle 255, 0, 1, 128 and the codes 0..8,
    // so 65504 x 255 meets +-2^64 and the f32 below 2^64 (the largest products, rounded once),
    // 2^-24 x 1 meets 2^-64 (2^-88, the smallest), and sub-scale 0 gives zeros of both signs.
    let mut spec = sub_spec(&mut rng, 3, &[4, 256], 0, 0, 16);
    let p64 = 2f32.powi(64);
    let m64 = 2f32.powi(-64);
    spec.grid = vec![
        m64,
        -m64,
        p64,
        -p64,
        1.0,
        -0.0,
        m64 * 1.5,
        -f32::from_bits(p64.to_bits() - 1),
    ];
    spec.scales = vec![0x7bff, 0x0001, 0x0000, 0x3c00];
    spec.subscales = (0..64).map(|t| [255u8, 0, 1, 128][t % 4]).collect();
    spec.codes = (0..1024).map(|i| (i % 8) as u8).collect();
    let x = sub_valid(
        "sub_range_edges",
        "effective scales 65504 x 255 (with grid +-2^64), 2^-24 x 1 (with grid 2^-64), +0 x 255 and sub-scale 0: \
         every product an exact zero (either sign) or normal, magnitudes in [2^-88, 2^88)",
        &["R-13.5", "R-7.2", "R-7.3", "R-7.4"],
        &spec,
    );
    if let Expect::Valid { w_base, .. } = &x.expect {
        let max = w_base.iter().fold(0f32, |a, w| a.max(w.abs()));
        assert_eq!(f64::from(max), 65504.0 * 255.0 * 2f64.powi(64));
        assert!(w_base.iter().any(|w| w.to_bits() == 0x8000_0000));
        assert!(w_base.iter().any(|w| w.to_bits() == 0));
        assert!(w_base.iter().any(|w| w.abs() == 2f32.powi(-88)));
        assert!(w_base.iter().all(|w| *w == 0.0 || w.is_normal()));
    }
    v.push(x);
    // A later minor version with a longer header: bytes 256..320 are non-zero and ignored.
    let mut spec = sub_spec(&mut rng, 4, &[3, 100], 0, 0, 32);
    spec.minor = 5;
    spec.header_len = 320;
    spec.header_ext = (0..64).map(|i| 0x5a ^ i as u8).collect();
    v.push(sub_valid(
        "sub_minor5_header320",
        "version 0.5 record with two-level scales and header_len 320: the non-zero header bytes 256..320 are \
         covered by the CRC and ignored; the grid starts at 320",
        &["R-10.2", "R-4.1", "R-5.2", "R-4.6"],
        &spec,
    ));
    let mut spec = sub_spec(&mut rng, 2, &[2, 200], 0, 0, 16);
    spec.flags = 0xffff_0001;
    v.push(sub_valid(
        "sub_flags_ignorable",
        "two-level scales with every ignorable flag bit 16..=31 set as well (flags 0xffff0001)",
        &["R-10.3", "R-10.2"],
        &spec,
    ));
    v
}

/// Collects negative vectors.
struct Neg {
    v: Vec<Vector>,
}

impl Neg {
    fn add(&mut self, name: &str, desc: &str, extra: &[&'static str], bytes: Vec<u8>, error: ErrorKind, offset: u64) {
        let mut clauses = vec![error.clause(), "R-9.1", "R-9.3", "R-1.4", "R-13.1"];
        clauses.extend_from_slice(extra);
        clauses.sort_unstable();
        clauses.dedup();
        assert!(!self.v.iter().any(|x| x.name == name), "duplicate vector {name}");
        self.v.push(Vector {
            name: name.to_string(),
            description: desc.to_string(),
            clauses: clauses.into_iter().map(String::from).collect(),
            record: bytes,
            expect: Expect::Invalid { error, offset },
        });
    }

    /// A copy of `b` changed by `f`, its CRC recomputed when `crc`.
    #[allow(clippy::too_many_arguments)]
    fn m(
        &mut self,
        name: &str,
        desc: &str,
        extra: &[&'static str],
        b: &Base,
        crc: bool,
        f: impl Fn(&mut Vec<u8>),
        e: ErrorKind,
        off: u64,
    ) {
        let mut x = b.bytes.clone();
        f(&mut x);
        if crc {
            fix_crc(&mut x);
        }
        self.add(name, desc, extra, x, e, off);
    }
}

/// The negative vectors of the rules of section 13, and the order of the steps they extend.
pub(super) fn negative() -> Vec<Vector> {
    use ErrorKind as E;
    let mut rng = Rng(0x5eed_0004_0000_0002);
    // q: bits 3, [3, 100] (n 300), S 32, no overlay. qo: bits 2, [4, 70] (n 280), S 16, rank-2 f16
    // overlay. m3: a v0.3 record. qh: version 0.5, header_len 300, bytes 256..300 all 0xff.
    let q = base(sub_spec(&mut rng, 3, &[3, 100], 0, 0, 32));
    let qo = base(sub_spec(&mut rng, 2, &[4, 70], 1, 2, 16));
    let m3 = base(random_spec(&mut rng, 3, &[3, 50], 0, 0));
    let mut h = sub_spec(&mut rng, 2, &[2, 64], 0, 0, 16);
    h.minor = 5;
    h.header_len = 300;
    h.header_ext = vec![0xff; 44];
    let qh = base(h);
    // qp: as q with 5-bit sub-scales, packed.
    let qp = base(sub_spec_q(&mut rng, 3, &[3, 100], 0, 0, 32, 5));
    assert_eq!(q.sections, [(256, 32), (320, 4), (384, 120), (512, 0)]);
    assert_eq!((q.sub, q.bytes.len()), ((512, 10), 576));
    assert_eq!(qo.sections, [(256, 16), (320, 4), (384, 80), (512, 296)]);
    assert_eq!((qo.sub, qo.bytes.len()), ((832, 18), 896));
    assert_eq!(qh.sections[0], (320, 16));
    assert_eq!((qh.sub, qh.bytes.len()), ((512, 8), 576));
    assert_eq!(m3.bytes[10], 3);
    assert_eq!((qp.sub, qp.bytes.len()), ((512, 7), 576));
    let mut n = Neg { v: Vec::new() };

    // --- truncation and CRC cover the extension and the sub-scales
    n.add(
        "sub_truncated_in_extension",
        "a record with two-level scales cut at byte 200, inside the v0.4 extension",
        &["R-9.2", "R-13.2"],
        q.bytes[..200].to_vec(),
        E::Truncated,
        200,
    );
    n.add(
        "sub_truncated_in_subscales",
        "a record with two-level scales cut inside its sub-scales section",
        &["R-9.2", "R-11.3"],
        q.bytes[..517].to_vec(),
        E::Truncated,
        517,
    );
    for (name, at) in [
        ("sub_crc_mismatch_extension", 208usize),
        ("sub_crc_mismatch_subscales", 515),
    ] {
        n.m(
            name,
            "one bit flipped in the v0.4 extension or the sub-scales, CRC not updated",
            &["R-4.6", "R-13.2"],
            &q,
            false,
            |x| x[at] ^= 0x08,
            E::CrcMismatch,
            24,
        );
    }

    // --- step 10: flags, version, header length, reserved2
    n.m(
        "sub_unsupported_flags_minor3",
        "a v0.3 record (header_len 192) with flag bit 0 and block_size 256: two-level scales need minor 4; \
         also pins the version check before the header-length check of step 10",
        &["R-10.3", "R-13.1"],
        &m3,
        true,
        |x| {
            set_u32(x, 28, 1);
            set_u32(x, 36, 256);
        },
        E::UnsupportedFlags,
        28,
    );
    n.m(
        "sub_unsupported_flags_bit1",
        "flags 0x3: must-understand bit 1 is not defined by v0.4",
        &["R-10.3"],
        &q,
        true,
        |x| set_u32(x, 28, 3),
        E::UnsupportedFlags,
        28,
    );
    n.m(
        "sub_unsupported_flags_bit1_alone",
        "a v0.4 record with flags 0x2 (bit 1 instead of bit 0)",
        &["R-10.3"],
        &q,
        true,
        |x| set_u32(x, 28, 2),
        E::UnsupportedFlags,
        28,
    );
    n.m(
        "order_05_minor3_header256_before_flags",
        "a record with two-level scales labelled minor 3: header_len 256 breaks R-4.4 (step 5) before the flag \
         (step 10)",
        &["R-4.4", "R-10.1"],
        &q,
        true,
        |x| set_u16(x, 10, 3),
        E::BadHeaderLength,
        12,
    );
    for hl in [192u32, 255] {
        n.m(
            &format!("sub_bad_header_length_{hl}"),
            &format!("flag bit 0 and minor 4 with header_len {hl} < 256"),
            &["R-4.4", "R-13.2"],
            &q,
            true,
            |x| set_u32(x, 12, hl),
            E::BadHeaderLength,
            12,
        );
    }
    for at in [213usize, 233, 255] {
        n.m(
            &format!("sub_reserved2_{at}"),
            &format!("reserved2 byte {at} set"),
            &["R-13.2"],
            &q,
            true,
            |x| x[at] = 0x40,
            E::ReservedNonZero,
            at as u64,
        );
    }
    n.m(
        "order_09_reserved1_before_reserved2",
        "reserved1 byte 180 and reserved2 byte 220 set: step 9 before the reserved2 check of step 10",
        &["R-4.15", "R-13.2"],
        &q,
        true,
        |x| {
            x[180] = 1;
            x[220] = 1;
        },
        E::ReservedNonZero,
        180,
    );
    n.m(
        "order_10_unknown_flag_before_header_len",
        "flags 0x3 and header_len 192: the unknown must-understand bit first",
        &["R-10.3", "R-13.2"],
        &q,
        true,
        |x| {
            set_u32(x, 28, 3);
            set_u32(x, 12, 192);
        },
        E::UnsupportedFlags,
        28,
    );
    n.m(
        "order_10_unknown_flag_before_reserved2",
        "flags 0x3 and reserved2 byte 230 set: unsupported_flags first",
        &["R-10.3", "R-13.2"],
        &q,
        true,
        |x| {
            set_u32(x, 28, 3);
            x[230] = 1;
        },
        E::UnsupportedFlags,
        28,
    );
    n.m(
        "order_10_header_len_before_reserved2",
        "header_len 192 and reserved2 byte 230 set: bad_header_length before reserved_nonzero",
        &["R-13.2"],
        &q,
        true,
        |x| {
            set_u32(x, 12, 192);
            x[230] = 1;
        },
        E::BadHeaderLength,
        12,
    );
    n.m(
        "order_10_reserved2_in_offset_order",
        "reserved2 bytes 220 and 240 set: the first is reported",
        &["R-13.2"],
        &q,
        true,
        |x| {
            x[240] = 1;
            x[220] = 1;
        },
        E::ReservedNonZero,
        220,
    );
    n.m(
        "order_10_reserved2_before_11",
        "reserved2 byte 213 and bits = 9: reserved_nonzero (step 10) before bad_bits (step 11)",
        &["R-13.2", "R-4.8"],
        &q,
        true,
        |x| {
            x[213] = 1;
            x[32] = 9;
        },
        E::ReservedNonZero,
        213,
    );
    n.m(
        "order_10_reserved2_before_sub_block",
        "reserved2 byte 250 and sub_block 8: reserved_nonzero (step 10) before bad_sub_block (step 15)",
        &["R-13.2", "R-13.3"],
        &q,
        true,
        |x| {
            x[250] = 1;
            set_u32(x, 208, 8);
        },
        E::ReservedNonZero,
        250,
    );

    // --- step 15: block_size and sub_block
    for bs in [64u32, 16] {
        n.m(
            &format!("sub_bad_block_size_{bs}"),
            &format!("two-level scales with block_size {bs}: it must be 256"),
            &["R-4.12", "R-13.3"],
            &q,
            true,
            |x| set_u32(x, 36, bs),
            E::BadBlockSize,
            36,
        );
    }
    n.m(
        "bad_block_size_256_without_flag",
        "a v0.3 record with block_size 256",
        &["R-4.12"],
        &m3,
        true,
        |x| set_u32(x, 36, 256),
        E::BadBlockSize,
        36,
    );
    n.m(
        "bad_block_size_256_minor4_without_flag",
        "a record with two-level scales whose flag bit 0 is cleared: a minor-4 record with a 256-byte header \
         (bytes 192..256 ignored) and block_size 256",
        &["R-4.12", "R-10.2"],
        &q,
        true,
        |x| set_u32(x, 28, 0),
        E::BadBlockSize,
        36,
    );
    for (name, sb) in [
        ("0", 0u32),
        ("8", 8),
        ("24", 24),
        ("64", 64),
        ("256", 256),
        ("16_big_endian", 0x1000_0000),
    ] {
        n.m(
            &format!("bad_sub_block_{name}"),
            &format!("sub_block {sb:#x}: S must be 16 or 32"),
            &["R-13.3"],
            &q,
            true,
            |x| set_u32(x, 208, sb),
            E::BadSubBlock,
            208,
        );
    }
    for q_bad in [0u8, 9, 255] {
        n.m(
            &format!("bad_sub_bits_{q_bad}"),
            &format!("sub_bits {q_bad}: q must be in 1..=8"),
            &["R-13.3", "R-13.2"],
            &q,
            true,
            |x| x[212] = q_bad,
            E::BadSubBlock,
            212,
        );
    }
    n.m(
        "order_15_sub_block_before_sub_bits",
        "sub_block 8 and sub_bits 0: the sub_block check (offset 208) before the sub_bits check (212)",
        &["R-13.3"],
        &q,
        true,
        |x| {
            set_u32(x, 208, 8);
            x[212] = 0;
        },
        E::BadSubBlock,
        208,
    );
    n.m(
        "order_15_sub_bits_before_16",
        "sub_bits 9 and dims[1] = 0: bad_sub_block (step 15) before bad_dim (step 16)",
        &["R-13.3", "R-4.13"],
        &q,
        true,
        |x| {
            x[212] = 9;
            set_u64(x, 56, 0);
        },
        E::BadSubBlock,
        212,
    );
    n.m(
        "order_14_before_15_sub_block",
        "overlay_dtype 3 and sub_block 0: bad_overlay_dtype (step 14) before bad_sub_block (step 15)",
        &["R-4.11", "R-13.3"],
        &q,
        true,
        |x| {
            x[35] = 3;
            set_u32(x, 208, 0);
        },
        E::BadOverlayDtype,
        35,
    );
    n.m(
        "order_15_block_size_before_sub_block",
        "block_size 64 and sub_block 8: bad_block_size before bad_sub_block",
        &["R-4.12", "R-13.3"],
        &q,
        true,
        |x| {
            set_u32(x, 36, 64);
            set_u32(x, 208, 8);
        },
        E::BadBlockSize,
        36,
    );
    n.m(
        "order_15_sub_block_before_16",
        "sub_block 24 and dims[1] = 0: bad_sub_block (step 15) before bad_dim (step 16)",
        &["R-13.3", "R-4.13"],
        &q,
        true,
        |x| {
            set_u32(x, 208, 24);
            set_u64(x, 56, 0);
        },
        E::BadSubBlock,
        208,
    );

    // --- step 18: the scales length, and the sub-scales entry at 192..208
    n.m(
        "sub_section_length_scales_v03",
        "two-level scales with the v0.3 scales length 2 x ceil(n / 64) = 10 instead of 2 x ceil(n / 256) = 4",
        &["R-5.1", "R-5.3", "R-13.3"],
        &q,
        true,
        |x| set_u64(x, 136, 10),
        E::SectionLength,
        136,
    );
    for (name, len) in [("11", 11u64), ("of_s16", 19), ("zero", 0)] {
        n.m(
            &format!("sub_section_length_subscales_{name}"),
            &format!("sub-scales length {len} instead of ceil(300 / 32) = 10"),
            &["R-5.1", "R-5.3", "R-13.2"],
            &q,
            true,
            |x| set_u64(x, 200, len),
            E::SectionLength,
            200,
        );
    }
    n.m(
        "sub_section_overflow_subscales",
        "sub-scales offset 2^64 - 6: offset + length overflows",
        &["R-5.4", "R-13.2", "R-11.3"],
        &q,
        true,
        |x| set_u64(x, 192, u64::MAX - 5),
        E::SectionOverflow,
        192,
    );
    n.m(
        "sub_section_misaligned_subscales",
        "sub-scales offset 520",
        &["R-5.5", "R-13.2"],
        &q,
        true,
        |x| set_u64(x, 192, 520),
        E::SectionMisaligned,
        192,
    );
    n.m(
        "sub_section_overlap_subscales",
        "sub-scales at 768, inside the overlay section (384..808)",
        &["R-5.6", "R-13.2"],
        &qo,
        true,
        |x| set_u64(x, 192, 768),
        E::SectionOverlap,
        192,
    );
    n.m(
        "sub_section_overlap_subscales_codes",
        "sub-scales at 448, inside the codes (384..504), before the empty overlay section at 512",
        &["R-5.6", "R-13.2"],
        &q,
        true,
        |x| set_u64(x, 192, 448),
        E::SectionOverlap,
        192,
    );
    n.m(
        "sub_section_gap_subscales",
        "sub-scales moved 64 bytes later (576) with record_len 640 to match: a gap after the overlay",
        &["R-5.7", "R-13.2"],
        &q,
        true,
        |x| {
            let subs = x[512..522].to_vec();
            x[512..522].fill(0);
            x.resize(640, 0);
            x[576..586].copy_from_slice(&subs);
            set_u64(x, 192, 576);
            set_u64(x, 16, 640);
        },
        E::SectionGap,
        192,
    );
    for (name, rl, desc) in [
        (
            "sub_section_out_of_bounds_subscales",
            520u64,
            "record_len 520 ends inside the sub-scales (512..522)",
        ),
        (
            "sub_section_out_of_bounds_v03_record_len",
            512,
            "record_len 512, the v0.3 end (the empty overlay's offset): the sub-scales lie outside",
        ),
    ] {
        n.m(
            name,
            desc,
            &["R-5.8", "R-13.2", "R-4.5"],
            &q,
            true,
            |x| {
                x.truncate(rl as usize);
                set_u64(x, 16, rl);
            },
            E::SectionOutOfBounds,
            192,
        );
    }
    // Each check of the sub-scales entry before the next (overlay record qo: overlay ends at 808,
    // sub-scales at 832..850, record_len 896), and the last check of section 3 before section 4.
    let set = |off: u64, slen: u64| {
        move |x: &mut Vec<u8>| {
            set_u64(x, 192, off);
            set_u64(x, 200, slen);
        }
    };
    n.m(
        "order_18_subscales_length_before_overflow",
        "sub-scales: offset 2^64-64 and length 2^63: section_length (18a) before section_overflow (18b)",
        &["R-5.3", "R-5.4"],
        &qo,
        true,
        set(u64::MAX - 63, 1 << 63),
        E::SectionLength,
        200,
    );
    n.m(
        "order_18_subscales_overflow_before_misaligned",
        "sub-scales: offset 2^64-2: section_overflow (18b) before section_misaligned (18c)",
        &["R-5.4", "R-5.5"],
        &qo,
        true,
        set(u64::MAX - 1, 18),
        E::SectionOverflow,
        192,
    );
    n.m(
        "order_18_subscales_misaligned_before_overlap",
        "sub-scales: offset 806, unaligned and before the end of the overlay (808): section_misaligned (18c) \
         before section_overlap (18d)",
        &["R-5.5", "R-5.6"],
        &qo,
        true,
        set(806, 18),
        E::SectionMisaligned,
        192,
    );
    n.m(
        "order_18_subscales_overlap_before_gap",
        "sub-scales: offset 768 < 808, so not canonical either: section_overlap (18d) before section_gap (18e)",
        &["R-5.6", "R-5.7"],
        &qo,
        true,
        set(768, 18),
        E::SectionOverlap,
        192,
    );
    n.m(
        "order_18_subscales_gap_before_out_of_bounds",
        "sub-scales: offset 896 instead of 832, ending after record_len 896: section_gap (18e) before \
         section_out_of_bounds (18f)",
        &["R-5.7", "R-5.8"],
        &qo,
        true,
        set(896, 18),
        E::SectionGap,
        192,
    );
    n.m(
        "order_18_overlay_out_of_bounds_before_subscales_length",
        "record_len 807 ends inside the overlay section and the sub-scales length is wrong: every check of \
         section 3 (18f) before those of section 4",
        &["R-5.8", "R-5.3", "R-4.5"],
        &qo,
        true,
        |x| {
            x.truncate(807);
            set_u64(x, 16, 807);
            set_u64(x, 200, 19);
        },
        E::SectionOutOfBounds,
        160,
    );

    // --- step 19: record_len = align64(end of the sub-scales)
    n.m(
        "sub_bad_record_length_unpadded",
        "record_len 522, the end of the sub-scales without the padding to 64",
        &["R-4.5", "R-5.2", "R-13.2"],
        &q,
        true,
        |x| {
            x.truncate(522);
            set_u64(x, 16, 522);
        },
        E::BadRecordLength,
        16,
    );
    n.m(
        "sub_bad_record_length_trailing",
        "record_len covers 64 extra zero bytes after the sub-scales",
        &["R-4.5", "R-13.2"],
        &q,
        true,
        |x| {
            x.resize(640, 0);
            set_u64(x, 16, 640);
        },
        E::BadRecordLength,
        16,
    );
    n.m(
        "order_19_before_20_subscales",
        "record_len covers 64 extra non-zero bytes after the sub-scales: bad_record_length (step 19) before \
         nonzero_padding (step 20)",
        &["R-4.5", "R-5.9"],
        &q,
        true,
        |x| {
            x.resize(640, 1);
            set_u64(x, 16, 640);
        },
        E::BadRecordLength,
        16,
    );

    // --- step 20: padding around the sub-scales, and after a longer header
    for (name, b, at, desc) in [
        (
            "sub_nonzero_padding_before_subscales",
            &qo,
            808usize,
            "the first byte between the overlay (ends 808) and the sub-scales (832)",
        ),
        (
            "sub_nonzero_padding_before_subscales_last",
            &qo,
            831,
            "the last byte before the sub-scales (832)",
        ),
        (
            "sub_nonzero_padding_after_subscales",
            &q,
            522,
            "the first byte after the sub-scales (end 522)",
        ),
        (
            "sub_nonzero_padding_after_subscales_last",
            &q,
            575,
            "the last byte of the record (575)",
        ),
        (
            "sub_nonzero_padding_after_subscales_overlay",
            &qo,
            850,
            "the first byte after the sub-scales (end 850)",
        ),
        (
            "sub_nonzero_padding_after_long_header",
            &qh,
            310,
            "header_len 300 (bytes 256..300 ignored): byte 310 is padding before the grid (320)",
        ),
    ] {
        n.m(
            name,
            desc,
            &["R-5.9", "R-13.2"],
            b,
            true,
            |x| x[at] = 0x11,
            E::NonZeroPadding,
            at as u64,
        );
    }
    n.m(
        "order_20_padding_before_subscales_first",
        "padding bytes 820 (before the sub-scales) and 860 (after them): the first in offset order",
        &["R-5.9"],
        &qo,
        true,
        |x| {
            x[860] = 1;
            x[820] = 1;
        },
        E::NonZeroPadding,
        820,
    );
    n.m(
        "order_20_before_21_subscales",
        "a padding byte after the sub-scales (530) and grid[1] = NaN: nonzero_padding (step 20) first",
        &["R-5.9", "R-7.3"],
        &q,
        true,
        |x| {
            x[530] = 1;
            x[260..264].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        },
        E::NonZeroPadding,
        530,
    );

    // --- steps 22 and 24 with two-level scales
    // 5-bit sub-scales: 10 x 5 = 50 stream bits in 7 bytes (512..519): bits 50..56 of byte 518
    // are unused (R-13.2, step 24 after the codes).
    n.m(
        "sub_nonzero_padding_subscale_bits",
        "an unused bit of the 5-bit sub-scales section (record byte 518, bit 7)",
        &["R-13.2", "R-5.9"],
        &qp,
        true,
        |x| x[518] |= 0x80,
        E::NonZeroPadding,
        518,
    );
    n.m(
        "order_24_code_bits_before_subscale_bits",
        "an unused code bit (496) and an unused sub-scale bit (518): the codes are checked first",
        &["R-13.2", "R-5.9", "R-6.2"],
        &qp,
        true,
        |x| {
            x[518] |= 0x40;
            x[496] |= 0x10;
        },
        E::NonZeroPadding,
        496,
    );
    n.m(
        "sub_section_length_subscales_unpacked",
        "5-bit sub-scales with the 8-bit length ceil(300 / 32) = 10 instead of ceil(10 x 5 / 8) = 7",
        &["R-13.2", "R-5.3"],
        &qp,
        true,
        |x| set_u64(x, 200, 10),
        E::SectionLength,
        200,
    );
    n.m(
        "sub_bad_scale_value_last",
        "the last of the ceil(300 / 256) = 2 scales is +inf",
        &["R-7.2", "R-13.3"],
        &q,
        true,
        |x| set_u16(x, 322, 0x7c00),
        E::BadScaleValue,
        322,
    );
    // 300 codes x 3 bits = 900 bits: codes byte 112 (record 496) holds bits 896..904, 900.. unused.
    n.m(
        "sub_nonzero_padding_code_bits",
        "an unused code bit of the partial last code group (record byte 496)",
        &["R-5.9", "R-6.2", "R-13.3"],
        &q,
        true,
        |x| x[496] |= 0x80,
        E::NonZeroPadding,
        496,
    );
    n.v
}
