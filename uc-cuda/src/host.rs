//! The host build of the CUDA kernels: `kernels/gsq.cu` compiled by the system C compiler
//! (build.rs), each kernel a loop over its thread indices on one CPU thread.
//!
//! It exists to prove the kernels' arithmetic on machines without a GPU: [`HostKernels`]
//! implements [`GsqKernels`] through it, and the tests require its packs to be the bytes of the
//! Rust CPU encoder's. It is not a fast encoder (one thread).
#![allow(unsafe_code)] // calls into the kernels' C build; each call's bounds are checked first

use crate::{check_mids, check_product, check_search, check_sub, check_train, check_unit, check_units};
use uc_encode::gsq::{
    EncodeError, GsqEngine, GsqKernels, GsqOptions, GsqParts, Importance, ScaleSearch, SubScales, quantize_parts_on,
};
use uc_encode::svd::{LowRank, SvdKernels, low_rank_on};

mod ffi {
    unsafe extern "C" {
        pub fn uc_absmax(data: *const f32, n: u64, unit: u32, out: *mut f32);
        pub fn uc_train_keys(
            data: *const f32,
            n: u64,
            eff: *const f32,
            unit: u32,
            m: u64,
            imp: *const f32,
            cols: u64,
            keys: *mut u64,
        );
        pub fn uc_r_times(r: *const f32, m: u64, n: u64, x: *const f64, k: u64, y: *mut f64);
        pub fn uc_rt_times(r: *const f32, m: u64, n: u64, q: *const f64, k: u64, z: *mut f64);
        pub fn uc_assign(
            data: *const f32,
            n: u64,
            eff: *const f32,
            unit: u32,
            mids: *const f32,
            nmids: u32,
            codes: *mut u8,
        );
        pub fn uc_refine_v03(
            data: *const f32,
            n: u64,
            absmax: *const f32,
            cur: *const u16,
            grid: *const f32,
            mids: *const f32,
            nmids: u32,
            table: *const u16,
            lo: f32,
            inv_width: f32,
            inv_gmax: f32,
            gmax: f32,
            imp: *const f32,
            cols: u64,
            out: *mut u16,
        );
        pub fn uc_refine_two_level(
            data: *const f32,
            n: u64,
            absmax: *const f32,
            unit: u32,
            sub_max: f32,
            grid: *const f32,
            mids: *const f32,
            nmids: u32,
            table: *const u16,
            lo: f32,
            inv_width: f32,
            inv_gmax: f32,
            imp: *const f32,
            cols: u64,
            block_scales: *mut u16,
            subs: *mut u8,
        );
    }
}

/// [`GsqKernels`] through the kernels' host build, for one tensor.
#[derive(Debug, Clone, Copy)]
pub struct HostKernels<'a> {
    /// The tensor's weights.
    pub data: &'a [f32],
    /// Per-column importance (non-empty), if any.
    pub imp: Option<&'a Importance>,
}

impl HostKernels<'_> {
    fn imp_ptr(&self) -> (*const f32, u64) {
        match self.imp {
            Some(i) if !i.w.is_empty() => (i.w.as_ptr(), i.w.len() as u64),
            _ => (std::ptr::null(), 1),
        }
    }
}

impl GsqKernels for HostKernels<'_> {
    type Error = String;

    fn absmax(&mut self, unit: usize) -> Result<Vec<f32>, String> {
        let n = self.data.len();
        check_unit(unit)?;
        let mut out = vec![0f32; n.div_ceil(unit)];
        // SAFETY: `data` holds n values and `out` one per unit of `unit` (checked above).
        unsafe { ffi::uc_absmax(self.data.as_ptr(), n as u64, unit as u32, out.as_mut_ptr()) };
        Ok(out)
    }

    fn train_keys(&mut self, eff: &[f32], unit: usize, m: usize) -> Result<Vec<u64>, String> {
        let n = self.data.len();
        check_units(n, unit, eff.len())?;
        check_train(n, m)?;
        let (imp, cols) = self.imp_ptr();
        let mut keys = vec![0u64; m];
        // SAFETY: eff has one scale per unit, index t·n/m < n for t < m ≤ n, the importance has
        // `cols` entries (read at i mod cols), keys has m entries.
        unsafe {
            ffi::uc_train_keys(
                self.data.as_ptr(),
                n as u64,
                eff.as_ptr(),
                unit as u32,
                m as u64,
                imp,
                cols,
                keys.as_mut_ptr(),
            )
        };
        Ok(keys)
    }

    fn refine_v03(&mut self, absmax: &[f32], scales: &[u16], search: &ScaleSearch) -> Result<Vec<u16>, String> {
        let n = self.data.len();
        let blocks = n.div_ceil(64);
        check_search(search, absmax.len(), blocks)?;
        if scales.len() != blocks {
            return Err(format!("{} scales for {blocks} blocks", scales.len()));
        }
        let (imp, cols) = self.imp_ptr();
        let mut out = vec![0u16; blocks];
        // SAFETY: every array has the length the kernel reads (checked above); codes from the
        // table and the walk stay below the grid's length.
        unsafe {
            ffi::uc_refine_v03(
                self.data.as_ptr(),
                n as u64,
                absmax.as_ptr(),
                scales.as_ptr(),
                search.grid.as_ptr(),
                search.mids.as_ptr(),
                search.mids.len() as u32,
                search.table.as_ptr(),
                search.lo,
                search.inv_width,
                search.inv_gmax,
                search.gmax,
                imp,
                cols,
                out.as_mut_ptr(),
            )
        };
        Ok(out)
    }

    fn refine_two_level(
        &mut self,
        absmax: &[f32],
        sub: SubScales,
        search: &ScaleSearch,
    ) -> Result<(Vec<u16>, Vec<u8>), String> {
        let n = self.data.len();
        let unit = sub.block as usize;
        check_units(n, unit, absmax.len())?;
        check_sub(sub)?;
        check_search(search, absmax.len(), n.div_ceil(unit))?;
        let (imp, cols) = self.imp_ptr();
        let mut f16 = vec![0u16; n.div_ceil(256)];
        let mut subs = vec![0u8; absmax.len()];
        let sub_max = sub.max();
        // SAFETY: lengths checked above; block scales are written at index unit·t/256 < n/256.
        unsafe {
            ffi::uc_refine_two_level(
                self.data.as_ptr(),
                n as u64,
                absmax.as_ptr(),
                unit as u32,
                sub_max,
                search.grid.as_ptr(),
                search.mids.as_ptr(),
                search.mids.len() as u32,
                search.table.as_ptr(),
                search.lo,
                search.inv_width,
                search.inv_gmax,
                imp,
                cols,
                f16.as_mut_ptr(),
                subs.as_mut_ptr(),
            )
        };
        Ok((f16, subs))
    }

    fn assign(&mut self, eff: &[f32], unit: usize, mids: &[f32]) -> Result<Vec<u8>, String> {
        let n = self.data.len();
        check_units(n, unit, eff.len())?;
        check_mids(mids.len())?;
        let mut codes = vec![0u8; n];
        // SAFETY: eff has one scale per unit, mids its stated length, codes one per element.
        unsafe {
            ffi::uc_assign(
                self.data.as_ptr(),
                n as u64,
                eff.as_ptr(),
                unit as u32,
                mids.as_ptr(),
                mids.len() as u32,
                codes.as_mut_ptr(),
            )
        };
        Ok(codes)
    }
}

/// A [`GsqEngine`] on the kernels' host build: `uc_encode::compress` through it must write the
/// CPU's bytes (the tests' end-to-end proof); one thread, for tests only.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostEngine;

impl GsqEngine for HostEngine {
    fn device(&self) -> String {
        "host build of the CUDA kernels".into()
    }

    fn quantize(&self, data: &[f32], opts: &GsqOptions, imp: Option<&Importance>) -> Result<GsqParts, EncodeError> {
        let imp = imp.filter(|i| !i.w.is_empty());
        quantize_parts_on(&mut HostKernels { data, imp }, data.len(), opts).map_err(EncodeError::Device)
    }

    fn low_rank(&self, r: &[f32], m: usize, n: usize, rank: usize, seed: u64) -> Result<LowRank, EncodeError> {
        low_rank_on(&mut HostSvd { r, m, n }, m, n, rank, seed).map_err(EncodeError::Device)
    }
}

/// [`SvdKernels`] through the kernels' host build.
#[derive(Debug, Clone, Copy)]
pub struct HostSvd<'a> {
    /// The residual, `[m, n]` row-major.
    pub r: &'a [f32],
    /// Rows.
    pub m: usize,
    /// Columns.
    pub n: usize,
}

impl SvdKernels for HostSvd<'_> {
    type Error = String;

    fn r_times(&mut self, x: &[f64], k: usize) -> Result<Vec<f64>, String> {
        check_product(x.len(), self.n, k, self.m, self.n, self.r.len())?;
        let mut y = vec![0f64; self.m * k];
        // SAFETY: r is m·n, x is n·k, y is m·k (checked above).
        unsafe {
            ffi::uc_r_times(
                self.r.as_ptr(),
                self.m as u64,
                self.n as u64,
                x.as_ptr(),
                k as u64,
                y.as_mut_ptr(),
            )
        };
        Ok(y)
    }

    fn rt_times(&mut self, q: &[f64], k: usize) -> Result<Vec<f64>, String> {
        check_product(q.len(), self.m, k, self.m, self.n, self.r.len())?;
        let mut z = vec![0f64; self.n * k];
        // SAFETY: r is m·n, q is m·k, z is n·k (checked above).
        unsafe {
            ffi::uc_rt_times(
                self.r.as_ptr(),
                self.m as u64,
                self.n as u64,
                q.as_ptr(),
                k as u64,
                z.as_mut_ptr(),
            )
        };
        Ok(z)
    }
}
