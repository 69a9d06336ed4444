//! Regression tests for inputs found by `fuzz/` (target `encode_roundtrip`): the public encoding
//! entry points return an error, never panic, for options or shapes that no record can have.

use uc_encode::gsq::EncodeError;
use uc_encode::{TensorOptions, candidates, encode_tensor};
use uc_format::ErrorKind;

fn format_kind(r: Result<impl std::fmt::Debug, EncodeError>) -> ErrorKind {
    match r {
        Err(EncodeError::Format(e)) => e.kind,
        other => panic!("expected a format error, got {other:?}"),
    }
}

fn opts(bits: u8, rank: u32) -> TensorOptions {
    TensorOptions {
        bits,
        rank,
        seed: 0,
        subscales: None,
    }
}

#[test]
fn empty_tensors_are_a_format_error_not_a_panic() {
    // Found by the fuzzer: a zero dimension reached the quantizer, which indexed an empty sample.
    for dims in [&[0u64][..], &[255, 0], &[0, 7]] {
        assert_eq!(format_kind(encode_tensor(&[], dims, &opts(1, 0))), ErrorKind::BadDim);
        assert_eq!(format_kind(encode_tensor(&[], dims, &opts(4, 3))), ErrorKind::BadDim);
        assert_eq!(
            format_kind(candidates(&[], dims, &[2, 4], &[0, 2], 0, None)),
            ErrorKind::BadDim
        );
    }
    assert_eq!(format_kind(encode_tensor(&[], &[], &opts(4, 0))), ErrorKind::BadNdim);
}

#[test]
fn invalid_bit_widths_are_a_format_error_not_a_panic() {
    // Bits outside 1..=8 used to reach `1 << bits` in the quantizer (an overflow from 64 on).
    let w: Vec<f32> = (0..100).map(|i| i as f32 / 10.0).collect();
    for bits in [0u8, 9, 63, 64, 200, 255] {
        assert_eq!(
            format_kind(encode_tensor(&w, &[100], &opts(bits, 0))),
            ErrorKind::BadBits,
            "{bits}"
        );
        assert_eq!(
            format_kind(candidates(&w, &[10, 10], &[4, bits], &[0], 0, None)),
            ErrorKind::BadBits
        );
    }
}

#[test]
fn non_finite_weights_are_reported_at_their_index() {
    let mut w: Vec<f32> = (0..70).map(|i| i as f32).collect();
    for (at, bad) in [(0, f32::NAN), (69, f32::INFINITY), (33, f32::NEG_INFINITY)] {
        w[at] = bad;
        assert_eq!(
            encode_tensor(&w, &[7, 10], &opts(3, 2)).unwrap_err(),
            EncodeError::NonFinite { index: at }
        );
        w[at] = 1.0;
    }
}

#[test]
fn a_zero_or_odd_sub_block_is_a_format_error_not_a_panic() {
    let w: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin()).collect();
    for (block, bits) in [(0u32, 6u8), (8, 6), (16, 0), (32, 9)] {
        let o = TensorOptions {
            bits: 4,
            rank: 0,
            seed: 0,
            subscales: Some(uc_encode::SubScales { block, bits }),
        };
        match encode_tensor(&w, &[300], &o) {
            Err(uc_encode::EncodeError::Format(e)) => {
                assert_eq!(e.kind, uc_format::ErrorKind::BadSubBlock, "S {block} q {bits}")
            }
            other => panic!("S {block} q {bits}: {other:?}"),
        }
    }
}
