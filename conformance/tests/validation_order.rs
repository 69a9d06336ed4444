//! The order of the validation steps of spec is pinned by the vectors.
//!
//! This file holds a second, test-only transcription of, written from the spec text: every
//! check is a separate function that looks only at its own condition (and returns "cannot tell"
//! when the fields it needs are unreadable or meaningless), so that the checks can be run in any
//! order. In the order of the spec it must agree with every committed vector. Then every
//! neighbouring pair of steps is swapped, every neighbouring pair of checks inside a step is
//! swapped, and every step that scans in offset order is scanned backwards: each such mutant
//! validator must disagree with at least one vector, or the vectors would not pin that part of the
//! order. The few swaps that no record can detect (the two checks can never both fail) are listed
//! with the reason, and the test fails if one of them becomes detectable.

use conformance::{Expect, files};
use std::collections::BTreeSet;
use uc_format::ErrorKind as E;

type Fail = Option<(E, u64)>;

/// A record's bytes with every field read defensively: `None` where the bytes are not there.
struct Rec<'a> {
    /// The whole buffer.
    buf: &'a [u8],
    /// `buf[..min(buf_len, record_len)]` (the bytes steps 8 and later may read).
    rec: &'a [u8],
}

fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

fn align64(x: u64) -> Option<u64> {
    Some(x.checked_add(63)? / 64 * 64)
}

impl<'a> Rec<'a> {
    fn new(buf: &'a [u8]) -> Self {
        let rl = le(buf, 16, 8).map_or(buf.len(), |r| (r.min(buf.len() as u64)) as usize);
        Rec { buf, rec: &buf[..rl] }
    }
    fn buf_len(&self) -> u64 {
        self.buf.len() as u64
    }
    fn f(&self, at: usize, n: usize) -> Option<u64> {
        le(self.rec, at, n)
    }
    fn header_len(&self) -> Option<u64> {
        le(self.buf, 12, 4)
    }
    fn record_len(&self) -> Option<u64> {
        le(self.buf, 16, 8)
    }
    fn bits(&self) -> Option<u64> {
        self.f(32, 1).filter(|b| (1..=8).contains(b))
    }
    fn ndim(&self) -> Option<usize> {
        self.f(33, 1).filter(|d| (1..=8).contains(d)).map(|d| d as usize)
    }
    fn dims(&self) -> Option<Vec<u64>> {
        (0..8).map(|i| self.f(48 + 8 * i, 8)).collect()
    }
    /// `n` when the used dims are all >= 1, their product fits u64 and is at most 2^48.
    fn n(&self) -> Option<u64> {
        let (nd, d) = (self.ndim()?, self.dims()?);
        if d[..nd].contains(&0) {
            return None;
        }
        d[..nd]
            .iter()
            .try_fold(1u64, |a, &x| a.checked_mul(x))
            .filter(|&n| n <= 1 << 48)
    }
    fn rows_cols(&self) -> Option<(u64, u64)> {
        let n = self.n()?;
        let rows = self.dims()?[0];
        Some((rows, n / rows))
    }
    fn rank(&self) -> Option<u64> {
        self.f(40, 4)
    }
    /// Flag bit 0, two-level scales.
    fn subscaled(&self) -> Option<bool> {
        Some(self.f(28, 4)? & 1 != 0)
    }
    /// `S` of a record with two-level scales, when it is 16 or 32.
    fn sub_block(&self) -> Option<u64> {
        self.f(208, 4).filter(|s| [16, 32].contains(s))
    }
    /// `q` of a record with two-level scales, when it is in 1..=8.
    fn sub_bits(&self) -> Option<u64> {
        self.f(212, 1).filter(|q| (1..=8).contains(q))
    }
    /// The last section `L`: 4 with two-level scales, else 3.
    fn last(&self) -> Option<usize> {
        Some(if self.subscaled()? { 4 } else { 3 })
    }
    /// `len_k` of R-5.1 (and for k = 4), where computable.
    fn len_k(&self, k: usize) -> Option<u64> {
        let bits = self.bits()?;
        match k {
            0 => Some(4 << bits),
            1 => {
                let b = if self.subscaled()? { 256 } else { 64 };
                Some(2 * self.n()?.div_ceil(b))
            }
            2 => Some(8 * bits * self.n()?.div_ceil(64)),
            3 => {
                let r = self.rank().filter(|&r| r <= 4096)?;
                let (rows, cols) = self.rows_cols()?;
                Some(2 * r * (rows + cols))
            }
            _ => Some((self.n()?.div_ceil(self.sub_block()?) * self.sub_bits()?).div_ceil(8)),
        }
    }
    /// Canonical offset `offset_k` of.
    fn canonical(&self, k: usize) -> Option<u64> {
        let mut off = align64(self.header_len()?)?;
        for j in 0..k {
            off = align64(off.checked_add(self.len_k(j)?)?)?;
        }
        Some(off)
    }
    /// The table entry of section `k`: at 112 + 16k, or 192 for the sub-scales.
    fn stored(&self, k: usize) -> Option<(u64, u64)> {
        let at = entry(k) as usize;
        Some((self.f(at, 8)?, self.f(at + 8, 8)?))
    }
    /// Offsets of the non-zero bytes of `rec[a..b)` (clamped to the bytes present).
    fn nonzero(&self, a: u64, b: u64) -> Vec<u64> {
        let b = b.min(self.rec.len() as u64);
        (a..b).filter(|&i| self.rec[i as usize] != 0).collect()
    }
}

/// One check: all the offsets at which it fails (in increasing order); the validator reports the
/// first one (the last one in a mutant that scans backwards).
type Check = fn(&Rec<'_>) -> Option<(E, Vec<u64>)>;

fn one(kind: E, off: u64, failed: bool) -> Option<(E, Vec<u64>)> {
    failed.then(|| (kind, vec![off]))
}

fn many(kind: E, offs: Vec<u64>) -> Option<(E, Vec<u64>)> {
    (!offs.is_empty()).then_some((kind, offs))
}

const MAGIC: [u8; 8] = [0x89, 0x55, 0x43, 0x52, 0x0d, 0x0a, 0x1a, 0x0a];

fn grid_ok(m: u32) -> bool {
    let m = m & 0x7fff_ffff;
    let e = m >> 23;
    m == 0 || (63..=190).contains(&e) || m == 0x5f80_0000
}

/// Record offset of the `offset` field of section `k`'s table entry.
fn entry(k: usize) -> u64 {
    if k < 4 { 112 + 16 * k as u64 } else { 192 }
}

/// The checks of one section-table entry (step 18, a to f); section 4 only with two-level scales.
fn sec_check(r: &Rec<'_>, k: usize, which: char) -> Option<(E, Vec<u64>)> {
    if k == 4 && !r.subscaled()? {
        return None;
    }
    let at = entry(k);
    let (off, slen) = r.stored(k)?;
    match which {
        'a' => one(E::SectionLength, at + 8, slen != r.len_k(k)?),
        'b' => one(E::SectionOverflow, at, off.checked_add(slen).is_none()),
        'c' => one(E::SectionMisaligned, at, off % 64 != 0),
        'd' => {
            let prev_end = if k == 0 {
                r.header_len()?
            } else {
                r.stored(k - 1)?.0.checked_add(r.len_k(k - 1)?)?
            };
            one(E::SectionOverlap, at, off < prev_end)
        }
        'e' => one(E::SectionGap, at, off != r.canonical(k)?),
        _ => one(E::SectionOutOfBounds, at, off.checked_add(slen)? > r.record_len()?),
    }
}

macro_rules! sec {
    ($k:literal, $w:literal) => {
        c(concat!("18.", $k, $w), |r| sec_check(r, $k, $w))
    };
}

fn c(name: &'static str, f: Check) -> (&'static str, Check) {
    (name, f)
}

/// as a list of steps, each a list of named checks, in the order of the spec.
fn steps() -> Vec<(&'static str, Vec<(&'static str, Check)>)> {
    vec![
        ("1", vec![c("1", |r| one(E::Truncated, r.buf_len(), r.buf.len() < 8))]),
        (
            "2",
            vec![c("2", |r| {
                let k = r.buf.len().min(8);
                one(E::BadMagic, 0, r.buf[..k] != MAGIC[..k])
            })],
        ),
        ("3", vec![c("3", |r| one(E::Truncated, r.buf_len(), r.buf.len() < 24))]),
        (
            "4",
            vec![
                c("4.major", |r| one(E::UnsupportedVersion, 8, le(r.buf, 8, 2)? != 0)),
                c("4.minor", |r| one(E::UnsupportedVersion, 10, le(r.buf, 10, 2)? < 3)),
            ],
        ),
        (
            "5",
            vec![c("5", |r| {
                let (minor, hl) = (le(r.buf, 10, 2)?, r.header_len()?);
                let ok = if minor == 3 {
                    hl == 192
                } else {
                    (192..=65536).contains(&hl)
                };
                one(E::BadHeaderLength, 12, !ok)
            })],
        ),
        (
            "6",
            vec![c("6", |r| {
                one(E::BadRecordLength, 16, r.record_len()? < r.header_len()?)
            })],
        ),
        (
            "7",
            vec![c("7", |r| {
                one(E::Truncated, r.buf_len(), r.buf_len() < r.record_len()?)
            })],
        ),
        (
            "8",
            vec![c("8", |r| {
                if r.rec.len() < 28 {
                    return None;
                }
                let mut h = crc32fast::Hasher::new();
                h.update(&r.rec[..24]);
                h.update(&[0; 4]);
                h.update(&r.rec[28..]);
                one(E::CrcMismatch, 24, u64::from(h.finalize()) != r.f(24, 4)?)
            })],
        ),
        (
            "9",
            vec![
                c("9.reserved0", |r| many(E::ReservedNonZero, r.nonzero(44, 48))),
                c("9.reserved1", |r| many(E::ReservedNonZero, r.nonzero(176, 192))),
            ],
        ),
        (
            "10",
            vec![
                // v0.4 implements must-understand bit 0 only.
                c("10.flags", |r| one(E::UnsupportedFlags, 28, r.f(28, 4)? & 0xfffe != 0)),
                c("10.minor", |r| {
                    one(E::UnsupportedFlags, 28, r.subscaled()? && le(r.buf, 10, 2)? < 4)
                }),
                c("10.header_len", |r| {
                    one(E::BadHeaderLength, 12, r.subscaled()? && r.header_len()? < 256)
                }),
                c("10.reserved2", |r| {
                    if !r.subscaled()? {
                        return None;
                    }
                    many(E::ReservedNonZero, r.nonzero(213, 256))
                }),
            ],
        ),
        (
            "11",
            vec![c("11", |r| one(E::BadBits, 32, !(1..=8).contains(&r.f(32, 1)?)))],
        ),
        (
            "12",
            vec![c("12", |r| one(E::BadNdim, 33, !(1..=8).contains(&r.f(33, 1)?)))],
        ),
        ("13", vec![c("13", |r| one(E::BadScaleDtype, 34, r.f(34, 1)? != 1))]),
        ("14", vec![c("14", |r| one(E::BadOverlayDtype, 35, r.f(35, 1)? > 2))]),
        (
            "15",
            vec![
                c("15.block_size", |r| {
                    let want = if r.subscaled()? { 256 } else { 64 };
                    one(E::BadBlockSize, 36, r.f(36, 4)? != want)
                }),
                c("15.sub_block", |r| {
                    one(E::BadSubBlock, 208, r.subscaled()? && r.sub_block().is_none())
                }),
                c("15.sub_bits", |r| {
                    one(E::BadSubBlock, 212, r.subscaled()? && r.sub_bits().is_none())
                }),
            ],
        ),
        (
            "16",
            vec![
                c("16.dims", |r| {
                    let (nd, d) = (r.ndim()?, r.dims()?);
                    let bad = (0..8).filter(|&i| (i < nd) != (d[i] != 0));
                    many(E::BadDim, bad.map(|i| 48 + 8 * i as u64).collect())
                }),
                c("16.overflow", |r| {
                    let (nd, d) = (r.ndim()?, r.dims()?);
                    let p = d[..nd].iter().try_fold(1u64, |a, &x| a.checked_mul(x));
                    one(E::ShapeOverflow, 48, p.is_none())
                }),
                c("16.limit", |r| {
                    // The exact product, which exceeds 2^48 whenever it overflows u64.
                    let (nd, d) = (r.ndim()?, r.dims()?);
                    let p = d[..nd].iter().fold(1u64, |a, &x| a.saturating_mul(x));
                    one(E::LimitExceeded, 48, p > 1 << 48)
                }),
            ],
        ),
        (
            "17",
            vec![
                c("17.limit", |r| one(E::LimitExceeded, 40, r.rank()? > 4096)),
                c("17.rank", |r| {
                    let (rank, dt, nd) = (r.rank()?, r.f(35, 1)?, r.ndim()?);
                    let (rows, cols) = r.rows_cols()?;
                    let bad = (rank == 0) != (dt == 0) || (rank > 0 && (nd < 2 || rank > rows.min(cols)));
                    one(E::BadOverlayRank, 40, bad)
                }),
            ],
        ),
        (
            "18",
            vec![
                sec!(0, 'a'),
                sec!(0, 'b'),
                sec!(0, 'c'),
                sec!(0, 'd'),
                sec!(0, 'e'),
                sec!(0, 'f'),
                sec!(1, 'a'),
                sec!(1, 'b'),
                sec!(1, 'c'),
                sec!(1, 'd'),
                sec!(1, 'e'),
                sec!(1, 'f'),
                sec!(2, 'a'),
                sec!(2, 'b'),
                sec!(2, 'c'),
                sec!(2, 'd'),
                sec!(2, 'e'),
                sec!(2, 'f'),
                sec!(3, 'a'),
                sec!(3, 'b'),
                sec!(3, 'c'),
                sec!(3, 'd'),
                sec!(3, 'e'),
                sec!(3, 'f'),
                sec!(4, 'a'),
                sec!(4, 'b'),
                sec!(4, 'c'),
                sec!(4, 'd'),
                sec!(4, 'e'),
                sec!(4, 'f'),
            ],
        ),
        (
            "19",
            vec![c("19", |r| {
                let (off, slen) = r.stored(r.last()?)?;
                one(
                    E::BadRecordLength,
                    16,
                    align64(off.checked_add(slen)?)? != r.record_len()?,
                )
            })],
        ),
        (
            "20",
            vec![c("20", |r| {
                let last = r.last()?;
                let mut bad = r.nonzero(r.header_len()?, r.canonical(0)?);
                for k in 1..=last {
                    bad.extend(r.nonzero(r.canonical(k - 1)? + r.len_k(k - 1)?, r.canonical(k)?));
                }
                bad.extend(r.nonzero(r.canonical(last)? + r.len_k(last)?, r.record_len()?));
                many(E::NonZeroPadding, bad)
            })],
        ),
        (
            "21",
            vec![c("21", |r| {
                let base = r.canonical(0)?;
                let bad = (0..1u64 << r.bits()?)
                    .map(|j| base + 4 * j)
                    .filter(|&at| r.f(at as usize, 4).is_some_and(|g| !grid_ok(g as u32)));
                many(E::BadGridValue, bad.collect())
            })],
        ),
        (
            "22",
            vec![c("22", |r| {
                let base = r.canonical(1)?;
                let bad = (0..r.len_k(1)? / 2).map(|j| base + 2 * j).filter(|&at| {
                    r.f(at as usize, 2)
                        .is_some_and(|h| h & 0x8000 != 0 || h & 0x7c00 == 0x7c00)
                });
                many(E::BadScaleValue, bad.collect())
            })],
        ),
        (
            "23",
            vec![c("23", |r| {
                let (base, bf16) = (r.canonical(3)?, r.f(35, 1)? == 2);
                let bad = (0..r.len_k(3)? / 2).map(|j| base + 2 * j).filter(|&at| {
                    r.f(at as usize, 2).is_some_and(|h| {
                        if bf16 {
                            h & 0x7f80 == 0x7f80
                        } else {
                            h & 0x7c00 == 0x7c00
                        }
                    })
                });
                many(E::BadOverlayValue, bad.collect())
            })],
        ),
        (
            "24",
            vec![
                c("24", |r| {
                    let (base, bits, n) = (r.canonical(2)?, r.bits()?, r.n()?);
                    let first = n * bits;
                    let end = n.div_ceil(64) * 64 * bits;
                    let bad = (first / 8..end / 8).filter(|&q| {
                        let mask = if q == first / 8 {
                            !((1u16 << (first % 8)) - 1) as u8
                        } else {
                            0xff
                        };
                        r.f((base + q) as usize, 1).is_some_and(|b| b as u8 & mask != 0)
                    });
                    many(E::NonZeroPadding, bad.map(|q| base + q).collect())
                }),
                c("24.subs", |r| {
                    if !r.subscaled()? {
                        return None;
                    }
                    let (base, q) = (r.canonical(4)?, r.sub_bits()?);
                    let first = r.n()?.div_ceil(r.sub_block()?) * q;
                    let end = 8 * r.len_k(4)?;
                    let bad = (first / 8..end / 8).filter(|&j| {
                        let mask = if j == first / 8 {
                            !((1u16 << (first % 8)) - 1) as u8
                        } else {
                            0xff
                        };
                        r.f((base + j) as usize, 1).is_some_and(|b| b as u8 & mask != 0)
                    });
                    many(E::NonZeroPadding, bad.map(|j| base + j).collect())
                }),
            ],
        ),
    ]
}

/// Runs the checks in `order`; `backwards` names checks that report their last offset.
fn run(order: &[(&'static str, Check)], backwards: &BTreeSet<&str>, buf: &[u8]) -> Fail {
    let r = Rec::new(buf);
    order.iter().find_map(|(name, c)| {
        let (kind, offs) = c(&r)?;
        let off = if backwards.contains(name) {
            *offs.last()?
        } else {
            offs[0]
        };
        Some((kind, off))
    })
}

/// Every (input, expected result) the committed vectors define.
fn cases() -> Vec<(String, Vec<u8>, Fail)> {
    let mut out = Vec::new();
    for v in files::load(&conformance::default_vectors_dir()).unwrap() {
        match &v.expect {
            Expect::Valid { .. } => out.push((v.name.clone(), v.record.clone(), None)),
            Expect::Invalid { error, offset } => out.push((v.name.clone(), v.record.clone(), Some((*error, *offset)))),
            Expect::EveryPrefixTruncated => {
                for l in 0..v.record.len() {
                    out.push((
                        format!("{}[..{l}]", v.name),
                        v.record[..l].to_vec(),
                        Some((E::Truncated, l as u64)),
                    ));
                }
            }
        }
    }
    out
}

fn flatten(steps: &[(&'static str, Vec<(&'static str, Check)>)]) -> Vec<(&'static str, Check)> {
    steps.iter().flat_map(|(_, c)| c.iter().copied()).collect()
}

/// Whether some vector tells `order` apart from the spec's order.
fn detected(cases: &[(String, Vec<u8>, Fail)], order: &[(&'static str, Check)], backwards: &BTreeSet<&str>) -> bool {
    cases.iter().any(|(_, b, want)| run(order, backwards, b) != *want)
}

/// Swaps that no record can detect, with the reason. Every other neighbouring pair of can fail
/// in one record with different results.
const UNDETECTABLE: &[(&str, &str)] = &[(
    "10.flags <-> 10.minor",
    "both report unsupported_flags at offset 28, so no record tells their order apart",
)];

#[test]
fn the_transcription_agrees_with_every_vector_and_with_uc_format() {
    let cases = cases();
    let order = flatten(&steps());
    for (name, b, want) in &cases {
        let got = run(&order, &BTreeSet::new(), b);
        assert_eq!(
            got, *want,
            "{name}: the test's transcription of R-9.1 disagrees with the vector"
        );
        let reference = uc_format::validate(b).err().map(|e| (e.kind, e.offset));
        assert_eq!(
            reference, *want,
            "{name}: uc_format::validate disagrees with the vector"
        );
    }
}

#[test]
fn every_swap_of_neighbouring_steps_and_checks_is_caught_by_a_vector() {
    let cases = cases();
    let steps = steps();
    let none = BTreeSet::new();
    let mut survivors = Vec::new();
    // Neighbouring steps (i, i + 1), each moved as a whole.
    for i in 0..steps.len() - 1 {
        let mut s = steps.clone();
        s.swap(i, i + 1);
        if !detected(&cases, &flatten(&s), &none) {
            survivors.push(format!("step {} <-> step {}", steps[i].0, steps[i + 1].0));
        }
    }
    // Neighbouring checks inside a step (steps 4, 9, 10, 15, 16, 17 and the 30 checks of step 18).
    for (si, (_, checks)) in steps.iter().enumerate() {
        for j in 0..checks.len().saturating_sub(1) {
            let mut s = steps.clone();
            s[si].1.swap(j, j + 1);
            if !detected(&cases, &flatten(&s), &none) {
                survivors.push(format!("{} <-> {}", checks[j].0, checks[j + 1].0));
            }
        }
    }
    // Checks that scan in offset (index) order, scanned backwards.
    let order = flatten(&steps);
    for name in [
        "9.reserved0",
        "9.reserved1",
        "10.reserved2",
        "16.dims",
        "20",
        "21",
        "22",
        "23",
        "24",
    ] {
        if !detected(&cases, &order, &BTreeSet::from([name])) {
            survivors.push(format!("{name} scanned backwards"));
        }
    }
    let undetectable: Vec<String> = UNDETECTABLE.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(
        survivors, undetectable,
        "validation orders that no vector distinguishes from R-9.1 (add a vector that fails both checks \
         and expects the earlier one's error)"
    );
}
