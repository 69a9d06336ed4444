//! Any bytes as a record: `uc_format::validate` and `uc_decode::Record::parse` agree (same verdict,
//! same error class and offset); the verdict obeys R-4.5 / R-9.2 (see `uc_fuzz::check`); a valid
//! record decodes by every path, whole and in sub-ranges, blocks, rows and overlay, to the bits of
//! the formula, and caller errors are reported, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uc_fuzz::check;

/// A cheap hash of the input: chooses sub-ranges without taking bytes from the record.
pub fn pick(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64 ^ data.len() as u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = check::validate_checked(data) {
        check::exercise(&rec, pick(data));
    }
});
