//! Differential decoding: for the input bytes as a record, and for the structured record that the
//! same bytes describe (`uc_fuzz::generate::RecordSpec`), the decode paths `Path::Scalar`,
//! `Portable`, `Avx2` and `Auto` return identical bits (whole tensor, sub-ranges, rows, blocks),
//! and the C ABI (`uc_record_parse`, `uc_record_decode`, ... called through their `extern "C"`
//! functions) reports the same verdict as Rust (negated error code, same offset) and, on valid
//! records, the same getters and the same bits.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use uc_decode::Record;
use uc_fuzz::generate::RecordSpec;
use uc_fuzz::{capi, check};

fn run(bytes: &[u8], pick: u64) {
    let rust = Record::parse(bytes);
    let w = match &rust {
        Ok(rec) => check::exercise(rec, pick),
        Err(_) => None,
    };
    capi::agrees(bytes, &rust, w.as_deref(), pick);
}

fuzz_target!(|data: &[u8]| {
    let pick = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    run(data, pick);
    if let Ok(spec) = RecordSpec::arbitrary(&mut Unstructured::new(data)) {
        run(&spec.build().bytes, pick.rotate_left(17));
    }
});
