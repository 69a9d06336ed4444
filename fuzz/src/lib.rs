//! Code shared by the fuzz targets of `fuzz/fuzz_targets/`.
//!
//! * [`check`]: what must hold for ANY input bytes given to the validator and decoder (validate and
//!   `Record::parse` agree, error offsets, R-4.5 / R-9.2 invariants, every decode path and API
//!   returns the reference bits, caller errors are reported).
//! * [`generate`]: a structured record generator driven by `arbitrary`: a valid base record built
//!   with `uc_format::write_record`, then field-aware mutations, CRC recomputed unless asked not to.
//!   It also predicts the validation verdict where the spec makes it obvious, as an oracle.
//! * [`capi`]: the C ABI (called through its `extern "C"` functions) against the Rust API.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod capi;
pub mod check;
pub mod generate;

/// Largest element count (and overlay factor size) that the targets decode whole.
pub const MAX_DECODE: u64 = 1 << 20;

/// Makes rayon's global pool single-threaded (the encoder and verifier use it): fuzzing runs one
/// process per core, and one thread per process keeps executions short and deterministic in time.
pub fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    });
}

/// Panics with the first element whose bits differ.
#[track_caller]
pub fn assert_same_bits(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    // One memcmp in the common case (cheaper than an instrumented loop).
    if as_bytes(a) == as_bytes(b) {
        return;
    }
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!(
            "{what}: element {i} differs: {:#010x} ({}) vs {:#010x} ({})",
            a[i].to_bits(),
            a[i],
            b[i].to_bits(),
            b[i]
        );
    }
}

fn as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every bit pattern is a valid u8; the length is in bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The exact binary32 value of a binary16 pattern, computed with f64 arithmetic, NOT with
/// the bit conversion that the decoder uses: an independent reference.
pub fn f16_value(h: u16) -> f32 {
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let mag = if exp == 0 {
        mant * 2f64.powi(-24)
    } else {
        (1024.0 + mant) * 2f64.powi(exp - 25)
    };
    let v = mag as f32; // exact: at most 11 significant bits, inside the binary32 range
    if h & 0x8000 != 0 { -v } else { v }
}
