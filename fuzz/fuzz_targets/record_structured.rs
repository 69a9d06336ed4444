//! Structured records (`uc_fuzz::generate::RecordSpec`): a valid base record from `write_record`
//! (or, with two-level scales, `write_record_with_subscales`: v0.4, S = 16 or 32, arbitrary
//! sub-scales) with arbitrary shape, bits, overlay, minor version, extended header, ignorable flags and values,
//! then field-aware mutations with the CRC recomputed (unless `stale_crc`), so that inputs reach
//! every validation step and the decode paths. Checks:
//! * the base record is valid, has the planned layout, and decodes (every path) to
//!   `f32(scale) * grid[code]` (with two-level scales `(f32(scale) * sub) * grid[code]`, R-13.4)
//!   computed from the generating values with f64 arithmetic, and its
//!   overlay factors to the exact values of the generating bits;
//! * the mutated record gets the verdict that implies where it is local (`Built::oracle`:
//!   class and offset), and all the properties of `record_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uc_decode::{OverlayDtype, Record};
use uc_fuzz::generate::RecordSpec;
use uc_fuzz::{assert_same_bits, check, f16_value};

fuzz_target!(|spec: RecordSpec| {
    let b = spec.build();
    let pick = u64::from(spec.ext_fill) << 40 | u64::from(spec.ignorable_flags) << 8 | u64::from(spec.rank);
    let base = Record::parse(&b.base).unwrap_or_else(|e| panic!("the base record is invalid: {e:?}"));
    assert_eq!(base.layout(), &b.layout, "base layout");
    assert_eq!(base.sub_block().is_some(), spec.two_level % 3 != 0, "two-level scales");
    let w = check::exercise(&base, pick).expect("small records decode whole");
    assert_same_bits("base W_base vs generating values", &b.expected, &w);
    // Overlay factors: the exact values of the stored bits, from the bytes themselves.
    let r = base.overlay_rank() as usize;
    if r > 0 {
        let (rows, cols) = (base.rows() as usize, base.cols() as usize);
        let mut u = vec![0f32; rows * r];
        let mut v = vec![0f32; r * cols];
        base.overlay_u_into(&mut u).unwrap();
        base.overlay_v_into(&mut v).unwrap();
        let off = b.layout.sections[3].offset as usize;
        let want: Vec<f32> = b.base[off..off + 2 * (u.len() + v.len())]
            .chunks_exact(2)
            .map(|c| {
                let h = u16::from_le_bytes([c[0], c[1]]);
                match base.overlay_dtype() {
                    OverlayDtype::Bf16 => f32::from_bits(u32::from(h) << 16),
                    _ => f16_value(h),
                }
            })
            .collect();
        u.extend_from_slice(&v);
        assert_same_bits("overlay factors", &want, &u);
    }
    let got = check::validate_checked(&b.bytes);
    if let Some(want) = &b.oracle {
        assert_eq!(
            &got.as_ref().map(|_| ()).map_err(|e| *e),
            want,
            "verdict vs the spec's prediction"
        );
    }
    if let Ok(rec) = &got {
        let w = check::exercise(rec, pick);
        if b.bytes.get(..b.base.len()) == Some(&b.base[..]) {
            assert_same_bits("unchanged record", &b.expected, &w.unwrap());
        }
    }
});
