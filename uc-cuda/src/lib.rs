//! The GSQ encoder's data-parallel steps ([`uc_encode::gsq::GsqKernels`]) as CUDA kernels.
//!
//! The kernels (`kernels/gsq.cu`, [`KERNEL_SOURCE`]) are one source with two builds:
//!
//! - **CUDA** (feature `cuda`, module [`cuda`]): compiled at run time by NVRTC with
//!   [`NVRTC_OPTIONS`] for the device's architecture and launched through cudarc, which loads the
//!   CUDA driver and NVRTC dynamically: the crate builds, and its tests run, without CUDA.
//! - **host** (module [`host`], always built): the same functions compiled by the system C
//!   compiler, each kernel a loop over its thread indices. The tests compare this build byte for
//!   byte with the Rust CPU encoder ([`uc_encode::gsq::CpuKernels`]), which is the proof, on a
//!   machine without a GPU, that the kernels compute what the CPU computes; the GPU run of
//!   `scripts/gpu-check.sh` confirms it on the device.
//!
//! Both builds round every binary32 and binary64 product and sum once (no fused multiply-add:
//! `--fmad=false`, `-ffp-contract=off`), divide and take square roots with IEEE rounding, and keep
//! subnormals. Each work item (an element, a 64-element block, a sub-block) reads only its inputs
//! and writes only its outputs in a fixed order, so the result does not depend on the launch shape
//! or the thread count. The steps whose result depends on the order of a long reduction (the sort
//! of the training keys, whose result is unique anyway, and the Lloyd iterations over f64 prefix
//! sums) run on the host for both devices ([`uc_encode::gsq::quantize_parts_on`]).
#![deny(missing_docs)]

pub mod cases;
pub mod host;

#[cfg(feature = "cuda")]
pub mod cuda;

use uc_encode::gsq::{ScaleSearch, SubScales};

/// The kernels' source, as NVRTC compiles it.
pub const KERNEL_SOURCE: &str = include_str!("../kernels/gsq.cu");

/// NVRTC options of every compilation of [`KERNEL_SOURCE`] (the architecture is added per
/// device): no fused multiply-add, IEEE division and square root, no flush of subnormals.
pub const NVRTC_OPTIONS: &[&str] = &["--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false"];

/// The kernels' entry points (the `extern "C"` names in [`KERNEL_SOURCE`]).
pub const KERNELS: &[&str] = &[
    "uc_absmax",
    "uc_train_keys",
    "uc_assign",
    "uc_refine_v03",
    "uc_refine_two_level",
];

// The checks below guard every implementation of the kernels (host build and CUDA) alike: each
// names what is wrong, and the kernels read only within the lengths they accept.

/// A unit (elements sharing one effective scale) of 16, 32 or 64 elements.
pub(crate) fn check_unit(unit: usize) -> Result<(), String> {
    if !(unit == 16 || unit == 32 || unit == 64) {
        return Err(format!("unit of {unit} elements (16, 32 or 64 expected)"));
    }
    Ok(())
}

/// One effective scale per unit of `unit` elements in `n`.
pub(crate) fn check_units(n: usize, unit: usize, eff_len: usize) -> Result<(), String> {
    check_unit(unit)?;
    if eff_len != n.div_ceil(unit) {
        return Err(format!(
            "{eff_len} scales for {n} elements in units of {unit} (expected {})",
            n.div_ceil(unit)
        ));
    }
    Ok(())
}

/// What every scale search relies on: a grid of at most 256 values with its midpoints and a full
/// table whose codes stay within the grid, and one absmax per unit.
pub(crate) fn check_search(search: &ScaleSearch, absmax: usize, units: usize) -> Result<(), String> {
    if search.grid.is_empty() || search.grid.len() > 256 || search.mids.len() + 1 != search.grid.len() {
        return Err(format!(
            "a grid of {} values with {} midpoints",
            search.grid.len(),
            search.mids.len()
        ));
    }
    if search.table.len() != ScaleSearch::BINS || search.table.iter().any(|&c| usize::from(c) > search.mids.len()) {
        return Err("a code-finder table of the wrong size or with codes beyond the grid".into());
    }
    if absmax != units {
        return Err(format!("{absmax} block maxima for {units} units"));
    }
    Ok(())
}

/// Two-level scales the kernels take: sub-scales of 1..=8 bits per 16 or 32 elements.
pub(crate) fn check_sub(sub: SubScales) -> Result<(), String> {
    if !(1..=8).contains(&sub.bits) || !(sub.block == 16 || sub.block == 32) {
        return Err(format!("sub-scales of {} bits per {} elements", sub.bits, sub.block));
    }
    Ok(())
}

/// At most 255 midpoints (a grid of at most 256 values).
pub(crate) fn check_mids(len: usize) -> Result<(), String> {
    if len > 255 {
        return Err(format!("{len} midpoints (a grid of at most 256 values)"));
    }
    Ok(())
}

/// The overlay's products need `x` (or `q`) of `rows · k` values and outputs that fit.
pub(crate) fn check_product(len: usize, rows: usize, k: usize, m: usize, n: usize, r_len: usize) -> Result<(), String> {
    if m.checked_mul(n) != Some(r_len) {
        return Err(format!("a residual of {r_len} values for {m} x {n}"));
    }
    if k == 0 || rows.checked_mul(k) != Some(len) {
        return Err(format!("{len} values for {rows} rows of {k}"));
    }
    Ok(())
}

/// The training-key index `t · n / m` must not overflow 64 bits in the kernels.
pub(crate) fn check_train(n: usize, m: usize) -> Result<(), String> {
    if m > n || (m as u128) * (n as u128) >= 1u128 << 64 {
        return Err(format!(
            "{m} training values of {n} elements: beyond the kernels' 64-bit index"
        ));
    }
    Ok(())
}
