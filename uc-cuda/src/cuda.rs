//! The kernels on a CUDA device, through cudarc: the driver and NVRTC are loaded at run time (a
//! machine without them gets [`CudaError`]s that say what is missing, never a panic), the kernels
//! are compiled by NVRTC for the device's architecture with [`crate::NVRTC_OPTIONS`], and each
//! tensor is uploaded once, worked on by the kernels and freed when its [`CudaKernels`] drops.

use crate::{
    KERNEL_SOURCE, KERNELS, NVRTC_OPTIONS, check_mids, check_product, check_search, check_sub, check_train, check_unit,
    check_units,
};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use std::fmt;
use std::sync::Arc;
use uc_encode::gsq::{
    EncodeError, GsqEngine, GsqKernels, GsqOptions, GsqParts, Importance, ScaleSearch, SubScales, quantize_parts_on,
};
use uc_encode::svd::{LowRank, SvdKernels, low_rank_on};

/// Why the CUDA path failed: a missing library, a driver call, NVRTC, or device memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaError(pub String);

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CudaError {}

fn drv(what: &str) -> impl Fn(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError(format!("{what}: {e}"))
}

/// Whether the CUDA driver and NVRTC libraries can be loaded (cudarc panics when it uses a library
/// that is absent, so every entry point checks this first).
pub fn libraries() -> Result<(), CudaError> {
    // SAFETY: these only try to load the libraries by name (libloading), which runs their
    // initialisers; they have no preconditions.
    let (driver, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    if !driver {
        return Err(CudaError(
            "the CUDA driver library (libcuda.so.1) cannot be loaded".into(),
        ));
    }
    if !nvrtc {
        return Err(CudaError(
            "NVRTC (libnvrtc.so.12) cannot be loaded: install it (PyPI nvidia-cuda-nvrtc-cu12, or the CUDA toolkit) \
             and put its lib directory on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    Ok(())
}

/// Compiles the kernels for `arch` (e.g. `compute_90`) with [`NVRTC_OPTIONS`]: what
/// [`CudaGsq::open`] does for its device, and what CI runs (with ptxas after it) on machines
/// without a GPU. Needs only NVRTC, not the driver.
pub fn compile(arch: &str) -> Result<String, CudaError> {
    // SAFETY: as in `libraries`.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError("NVRTC (libnvrtc.so.12) cannot be loaded".into()));
    }
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    let opts = CompileOptions {
        options,
        name: Some("gsq.cu".into()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(CompileError::CompileError { log, .. }) => {
            Err(CudaError(format!("NVRTC failed on gsq.cu:\n{}", log.to_string_lossy())))
        }
        Err(e) => Err(CudaError(format!("NVRTC: {e:?}"))),
    }
}

/// The first line of a PTX file written by [`ptx_file`]: what it was compiled from and for.
fn ptx_header(arch: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(KERNEL_SOURCE.as_bytes());
    for o in NVRTC_OPTIONS {
        h.update(b"\0");
        h.update(o.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("// uc-cuda gsq.cu sha256={hex} arch={arch}")
}

/// The kernels compiled for `arch` as a PTX file's text, with a first line that names the
/// source's SHA-256 (with [`NVRTC_OPTIONS`]) and the architecture: for machines without NVRTC,
/// where `UC_CUDA_PTX` names such a file (`scripts/gpu-check.sh` compiles it here and carries it).
pub fn ptx_file(arch: &str) -> Result<String, CudaError> {
    Ok(format!("{}\n{}", ptx_header(arch), compile(arch)?))
}

/// Reads a [`ptx_file`] for a device of compute capability `cap`: it must come from this build's
/// kernel source and options, for an architecture the device runs (PTX of compute_XY runs on
/// devices of capability XY and later).
fn read_ptx(path: &std::path::Path, cap: (i32, i32)) -> Result<String, CudaError> {
    let text = std::fs::read_to_string(path).map_err(|e| CudaError(format!("UC_CUDA_PTX {}: {e}", path.display())))?;
    let first = text.lines().next().unwrap_or("");
    let arch = first.rsplit_once(" arch=").map(|(_, a)| a).unwrap_or("");
    if first != ptx_header(arch) {
        return Err(CudaError(format!(
            "UC_CUDA_PTX {}: not the PTX of this build's kernels (its first line is {first:?}; make it with \
             scripts/gpu-check.sh --build from this checkout)",
            path.display()
        )));
    }
    let v: i32 = arch
        .strip_prefix("compute_")
        .and_then(|v| v.parse().ok())
        .unwrap_or(i32::MAX);
    if v > cap.0 * 10 + cap.1 {
        return Err(CudaError(format!(
            "UC_CUDA_PTX {}: compiled for {arch}, the device is of compute capability {}.{}",
            path.display(),
            cap.0,
            cap.1
        )));
    }
    Ok(text)
}

struct Functions {
    absmax: CudaFunction,
    train_keys: CudaFunction,
    assign: CudaFunction,
    refine_v03: CudaFunction,
    refine_two_level: CudaFunction,
    r_times: CudaFunction,
    rt_times: CudaFunction,
}

/// One CUDA device with the kernels loaded.
pub struct CudaGsq {
    stream: Arc<CudaStream>,
    f: Functions,
    /// The device's name, as the driver reports it.
    pub name: String,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
    /// Total device memory in bytes.
    pub total_mem: usize,
}

impl fmt::Debug for CudaGsq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaGsq")
            .field("name", &self.name)
            .field("capability", &self.capability)
            .field("total_mem", &self.total_mem)
            .finish()
    }
}

/// Threads per block of every launch. Launch shape does not change any result (each work item is
/// independent); it is fixed so that runs are alike.
const THREADS: u32 = 256;

fn launch_config(items: usize) -> LaunchConfig {
    let blocks = items.div_ceil(THREADS as usize).clamp(1, 65535 * 16) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaGsq {
    /// Opens CUDA device `ordinal` and compiles and loads the kernels for it.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        libraries()?;
        let ctx = CudaContext::new(ordinal).map_err(drv(&format!("opening cuda:{ordinal}")))?;
        let name = ctx.name().map_err(drv("cuDeviceGetName"))?;
        let capability = ctx.compute_capability().map_err(drv("compute capability"))?;
        let total_mem = ctx.total_mem().map_err(drv("cuDeviceTotalMem"))?;
        let arch = format!("compute_{}{}", capability.0, capability.1);
        let ptx = match std::env::var_os("UC_CUDA_PTX") {
            Some(p) => read_ptx(std::path::Path::new(&p), capability)?,
            None => compile(&arch)?,
        };
        let module = ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(drv("loading the kernels' PTX"))?;
        let get = |n: &str| module.load_function(n).map_err(drv(n));
        debug_assert_eq!(KERNELS.len(), 7);
        let f = Functions {
            absmax: get("uc_absmax")?,
            train_keys: get("uc_train_keys")?,
            assign: get("uc_assign")?,
            refine_v03: get("uc_refine_v03")?,
            refine_two_level: get("uc_refine_two_level")?,
            r_times: get("uc_r_times")?,
            rt_times: get("uc_rt_times")?,
        };
        Ok(CudaGsq {
            stream: ctx.default_stream(),
            f,
            name,
            capability,
            total_mem,
        })
    }

    /// Free and total device memory now, in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize), CudaError> {
        self.stream.context().mem_get_info().map_err(drv("cuMemGetInfo"))
    }

    /// Uploads one `[m, n]` residual for the overlay's products; refuses one that, with the
    /// products' f64 inputs and outputs at the SVD's largest width (rank 64 + 8), does not fit.
    pub fn svd(&self, r: &[f32], m: usize, n: usize) -> Result<CudaSvd<'_>, CudaError> {
        let need = r.len() as u128 * 4 + (m + n) as u128 * 72 * 8 * 2 + (1 << 20);
        let (free, total) = self.mem_info()?;
        if need > free as u128 {
            return Err(CudaError(format!(
                "a {m} x {n} residual needs about {} MiB of device memory; {} has {} MiB free of {} MiB",
                need >> 20,
                self.name,
                free >> 20,
                total >> 20
            )));
        }
        let d = self.stream.clone_htod(r).map_err(drv("uploading the residual"))?;
        Ok(CudaSvd {
            dev: self,
            r: d,
            m,
            n,
            len: r.len(),
        })
    }

    /// Uploads one tensor (and its importance) for the kernels. Refuses, with the figures, a tensor
    /// whose working set (the weights, a code and a training key per weight, and the scales) does
    /// not fit in the free device memory.
    pub fn kernels(&self, data: &[f32], imp: Option<&Importance>) -> Result<CudaKernels<'_>, CudaError> {
        let n = data.len();
        let need = n as u128 * (4 + 1 + 8) + (n as u128 / 16 + 1) * 8 + (1 << 20);
        let (free, total) = self.mem_info()?;
        if need > free as u128 {
            return Err(CudaError(format!(
                "a tensor of {n} weights needs about {} MiB of device memory; {} has {} MiB free of {} MiB",
                need >> 20,
                self.name,
                free >> 20,
                total >> 20
            )));
        }
        let s = &self.stream;
        let data_d = s.clone_htod(data).map_err(drv("uploading the tensor"))?;
        let imp = imp.filter(|i| !i.w.is_empty());
        let (imp_d, cols) = match imp {
            Some(i) => (
                Some(s.clone_htod(&i.w).map_err(drv("uploading the importance"))?),
                i.w.len() as u64,
            ),
            None => (None, 1),
        };
        Ok(CudaKernels {
            dev: self,
            data: data_d,
            n,
            imp: imp_d,
            cols,
        })
    }
}

/// A [`ScaleSearch`]'s grid, midpoints and code table on the device.
type SearchOnDevice = (CudaSlice<f32>, CudaSlice<f32>, CudaSlice<u16>);

/// [`GsqKernels`] of one tensor on a [`CudaGsq`] device; the device memory is freed on drop.
pub struct CudaKernels<'a> {
    dev: &'a CudaGsq,
    data: CudaSlice<f32>,
    n: usize,
    imp: Option<CudaSlice<f32>>,
    cols: u64,
}

impl CudaKernels<'_> {
    fn up<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        v: &[T],
        what: &str,
    ) -> Result<CudaSlice<T>, CudaError> {
        // A zero-length buffer is not a valid allocation; kernels never read past their lengths.
        if v.is_empty() {
            return self.zeros(1, what);
        }
        self.dev.stream.clone_htod(v).map_err(drv(what))
    }

    fn zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
        what: &str,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.dev.stream.alloc_zeros(len.max(1)).map_err(drv(what))
    }

    fn down<T: cudarc::driver::DeviceRepr>(
        &self,
        d: &CudaSlice<T>,
        len: usize,
        what: &str,
    ) -> Result<Vec<T>, CudaError> {
        let mut v = self.dev.stream.clone_dtoh(d).map_err(drv(what))?;
        v.truncate(len);
        Ok(v)
    }

    /// Uploads a scale search that [`check_search`] accepted.
    fn search(&self, s: &ScaleSearch) -> Result<SearchOnDevice, CudaError> {
        Ok((
            self.up(&s.grid, "grid")?,
            self.up(&s.mids, "midpoints")?,
            self.up(&s.table, "code table")?,
        ))
    }
}

type Launched = Option<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>;

fn launch(name: &str, r: Result<Launched, cudarc::driver::DriverError>) -> Result<(), CudaError> {
    r.map(|_| ()).map_err(|e| CudaError(format!("launching {name}: {e}")))
}

impl GsqKernels for CudaKernels<'_> {
    type Error = CudaError;

    fn absmax(&mut self, unit: usize) -> Result<Vec<f32>, CudaError> {
        let n = self.n;
        check_unit(unit).map_err(CudaError)?;
        let units = n.div_ceil(unit);
        let mut out = self.zeros::<f32>(units, "absmax")?;
        let (n64, unit32) = (n as u64, unit as u32);
        let mut b = self.dev.stream.launch_builder(&self.dev.f.absmax);
        b.arg(&self.data).arg(&n64).arg(&unit32).arg(&mut out);
        // SAFETY: the argument list matches uc_absmax's signature; `out` has one entry per unit.
        launch("uc_absmax", unsafe { b.launch(launch_config(units)) })?;
        self.down(&out, units, "absmax")
    }

    fn train_keys(&mut self, eff: &[f32], unit: usize, m: usize) -> Result<Vec<u64>, CudaError> {
        let n = self.n;
        check_units(n, unit, eff.len()).map_err(CudaError)?;
        check_train(n, m).map_err(CudaError)?;
        let eff_d = self.up(eff, "scales")?;
        let mut keys = self.zeros::<u64>(m, "training keys")?;
        let (n64, unit32, m64, zero) = (n as u64, unit as u32, m as u64, 0u64);
        let mut b = self.dev.stream.launch_builder(&self.dev.f.train_keys);
        b.arg(&self.data).arg(&n64).arg(&eff_d).arg(&unit32).arg(&m64);
        match &self.imp {
            Some(i) => b.arg(i),
            None => b.arg(&zero),
        };
        b.arg(&self.cols).arg(&mut keys);
        // SAFETY: matches uc_train_keys; a null importance pointer is the kernel's "none".
        launch("uc_train_keys", unsafe { b.launch(launch_config(m)) })?;
        self.down(&keys, m, "training keys")
    }

    fn refine_v03(&mut self, absmax: &[f32], scales: &[u16], search: &ScaleSearch) -> Result<Vec<u16>, CudaError> {
        let n = self.n;
        let blocks = n.div_ceil(64);
        check_search(search, absmax.len(), blocks).map_err(CudaError)?;
        if scales.len() != blocks {
            return Err(CudaError(format!("{} scales for {blocks} blocks", scales.len())));
        }
        let (grid, mids, table) = self.search(search)?;
        let (am, cur) = (self.up(absmax, "absmax")?, self.up(scales, "scales")?);
        let mut out = self.zeros::<u16>(blocks, "scales")?;
        let (n64, nmids, zero) = (n as u64, search.mids.len() as u32, 0u64);
        let mut b = self.dev.stream.launch_builder(&self.dev.f.refine_v03);
        b.arg(&self.data)
            .arg(&n64)
            .arg(&am)
            .arg(&cur)
            .arg(&grid)
            .arg(&mids)
            .arg(&nmids)
            .arg(&table);
        b.arg(&search.lo)
            .arg(&search.inv_width)
            .arg(&search.inv_gmax)
            .arg(&search.gmax);
        match &self.imp {
            Some(i) => b.arg(i),
            None => b.arg(&zero),
        };
        b.arg(&self.cols).arg(&mut out);
        // SAFETY: matches uc_refine_v03; every array has the length the kernel reads.
        launch("uc_refine_v03", unsafe { b.launch(launch_config(blocks)) })?;
        self.down(&out, blocks, "scales")
    }

    fn refine_two_level(
        &mut self,
        absmax: &[f32],
        sub: SubScales,
        search: &ScaleSearch,
    ) -> Result<(Vec<u16>, Vec<u8>), CudaError> {
        let n = self.n;
        let unit = sub.block as usize;
        check_units(n, unit, absmax.len()).map_err(CudaError)?;
        check_sub(sub).map_err(CudaError)?;
        check_search(search, absmax.len(), n.div_ceil(unit)).map_err(CudaError)?;
        let (grid, mids, table) = self.search(search)?;
        let am = self.up(absmax, "absmax")?;
        let (units, blocks) = (absmax.len(), n.div_ceil(256));
        let mut f16 = self.zeros::<u16>(blocks, "block scales")?;
        let mut subs = self.zeros::<u8>(units, "sub-scales")?;
        let sub_max = sub.max();
        let (n64, unit32, nmids, zero) = (n as u64, unit as u32, search.mids.len() as u32, 0u64);
        let mut b = self.dev.stream.launch_builder(&self.dev.f.refine_two_level);
        b.arg(&self.data)
            .arg(&n64)
            .arg(&am)
            .arg(&unit32)
            .arg(&sub_max)
            .arg(&grid)
            .arg(&mids)
            .arg(&nmids);
        b.arg(&table)
            .arg(&search.lo)
            .arg(&search.inv_width)
            .arg(&search.inv_gmax);
        match &self.imp {
            Some(i) => b.arg(i),
            None => b.arg(&zero),
        };
        b.arg(&self.cols).arg(&mut f16).arg(&mut subs);
        // SAFETY: matches uc_refine_two_level; block scales are written at t / per < blocks.
        launch("uc_refine_two_level", unsafe { b.launch(launch_config(units)) })?;
        Ok((
            self.down(&f16, blocks, "block scales")?,
            self.down(&subs, units, "sub-scales")?,
        ))
    }

    fn assign(&mut self, eff: &[f32], unit: usize, mids: &[f32]) -> Result<Vec<u8>, CudaError> {
        let n = self.n;
        check_units(n, unit, eff.len()).map_err(CudaError)?;
        check_mids(mids.len()).map_err(CudaError)?;
        let (eff_d, mids_d) = (self.up(eff, "scales")?, self.up(mids, "midpoints")?);
        let mut codes = self.zeros::<u8>(n, "codes")?;
        let (n64, unit32, nmids) = (n as u64, unit as u32, mids.len() as u32);
        let mut b = self.dev.stream.launch_builder(&self.dev.f.assign);
        b.arg(&self.data)
            .arg(&n64)
            .arg(&eff_d)
            .arg(&unit32)
            .arg(&mids_d)
            .arg(&nmids)
            .arg(&mut codes);
        // SAFETY: matches uc_assign; `codes` has one entry per element.
        launch("uc_assign", unsafe { b.launch(launch_config(n)) })?;
        self.down(&codes, n, "codes")
    }
}

/// The [`GsqEngine`] of `uc compress --device cuda:N`: one tensor at a time on the device (the
/// device's memory holds one tensor's working set; tensors are serialised by a lock).
pub struct CudaEngine {
    dev: std::sync::Mutex<CudaGsq>,
    label: String,
}

impl fmt::Debug for CudaEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl CudaEngine {
    /// Opens `cuda:ordinal` (see [`CudaGsq::open`]).
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        let dev = CudaGsq::open(ordinal)?;
        let label = format!("cuda:{ordinal} ({})", dev.name);
        Ok(CudaEngine {
            dev: std::sync::Mutex::new(dev),
            label,
        })
    }
}

impl GsqEngine for CudaEngine {
    fn device(&self) -> String {
        self.label.clone()
    }

    fn quantize(&self, data: &[f32], opts: &GsqOptions, imp: Option<&Importance>) -> Result<GsqParts, EncodeError> {
        let dev = self
            .dev
            .lock()
            .map_err(|_| EncodeError::Device("the CUDA device lock is poisoned".into()))?;
        let mut k = dev.kernels(data, imp).map_err(|e| EncodeError::Device(e.0))?;
        quantize_parts_on(&mut k, data.len(), opts).map_err(|e| EncodeError::Device(e.0))
    }

    fn low_rank(&self, r: &[f32], m: usize, n: usize, rank: usize, seed: u64) -> Result<LowRank, EncodeError> {
        if rank.min(m).min(n) == 0 {
            return Ok(uc_encode::svd::low_rank(r, m, n, rank, seed)); // rank 0: no product to run
        }
        let dev = self
            .dev
            .lock()
            .map_err(|_| EncodeError::Device("the CUDA device lock is poisoned".into()))?;
        let mut k = dev.svd(r, m, n).map_err(|e| EncodeError::Device(e.0))?;
        low_rank_on(&mut k, m, n, rank, seed).map_err(|e| EncodeError::Device(e.0))
    }
}

/// [`SvdKernels`] of one residual on a [`CudaGsq`] device.
pub struct CudaSvd<'a> {
    dev: &'a CudaGsq,
    r: CudaSlice<f32>,
    m: usize,
    n: usize,
    len: usize,
}

impl CudaSvd<'_> {
    fn product(
        &mut self,
        f: &CudaFunction,
        name: &str,
        x: &[f64],
        rows_in: usize,
        rows_out: usize,
        k: usize,
    ) -> Result<Vec<f64>, CudaError> {
        check_product(x.len(), rows_in, k, self.m, self.n, self.len).map_err(CudaError)?;
        let s = &self.dev.stream;
        let x_d = s.clone_htod(x).map_err(drv(name))?;
        let mut y = s.alloc_zeros::<f64>((rows_out * k).max(1)).map_err(drv(name))?;
        let (m64, n64, k64) = (self.m as u64, self.n as u64, k as u64);
        let mut b = s.launch_builder(f);
        b.arg(&self.r).arg(&m64).arg(&n64).arg(&x_d).arg(&k64).arg(&mut y);
        // SAFETY: matches uc_r_times / uc_rt_times; the input has rows_in·k values and the output
        // rows_out·k (checked above).
        launch(name, unsafe { b.launch(launch_config(rows_out * k)) })?;
        let mut v = s.clone_dtoh(&y).map_err(drv(name))?;
        v.truncate(rows_out * k);
        Ok(v)
    }
}

impl SvdKernels for CudaSvd<'_> {
    type Error = CudaError;

    fn r_times(&mut self, x: &[f64], k: usize) -> Result<Vec<f64>, CudaError> {
        let (dev, n, m) = (self.dev, self.n, self.m);
        self.product(&dev.f.r_times, "uc_r_times", x, n, m, k)
    }

    fn rt_times(&mut self, q: &[f64], k: usize) -> Result<Vec<f64>, CudaError> {
        let (dev, n, m) = (self.dev, self.n, self.m);
        self.product(&dev.f.rt_times, "uc_rt_times", q, m, n, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precompiled_ptx_must_name_this_source_and_a_runnable_arch() {
        let dir = std::env::temp_dir().join(format!("uc-cuda-ptx-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.ptx");
        std::fs::write(&f, format!("{}\n.version 8.0\n", ptx_header("compute_80"))).unwrap();
        assert!(read_ptx(&f, (9, 0)).unwrap().contains(".version 8.0"));
        assert!(read_ptx(&f, (8, 0)).is_ok());
        let e = read_ptx(&f, (7, 5)).unwrap_err().0;
        assert!(e.contains("compiled for compute_80") && e.contains("7.5"), "{e}");
        std::fs::write(&f, "// uc-cuda gsq.cu sha256=00 arch=compute_80\n").unwrap();
        assert!(
            read_ptx(&f, (9, 0))
                .unwrap_err()
                .0
                .contains("not the PTX of this build's kernels")
        );
        assert!(
            read_ptx(&dir.join("absent.ptx"), (9, 0))
                .unwrap_err()
                .0
                .contains("absent.ptx")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
