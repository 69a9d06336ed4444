//! The kernels on a CUDA device, through cudarc: the driver and NVRTC are loaded at run time (a
//! machine without them gets [`CudaError`]s that say what is missing, never a panic), the kernels
//! are compiled by NVRTC for the device's architecture with [`crate::NVRTC_OPTIONS`], and each
//! tensor is uploaded once, worked on by the kernels and freed when its [`CudaKernels`] drops.

use crate::{KERNEL_SOURCE, KERNELS, NVRTC_OPTIONS, check_train, check_units};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use std::fmt;
use std::sync::Arc;
use uc_encode::gsq::{
    EncodeError, GsqEngine, GsqKernels, GsqOptions, GsqParts, Importance, ScaleSearch, SubScales, quantize_parts_on,
};

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

struct Functions {
    absmax: CudaFunction,
    train_keys: CudaFunction,
    assign: CudaFunction,
    refine_v03: CudaFunction,
    refine_two_level: CudaFunction,
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
        let ptx = compile(&arch)?;
        let module = ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(drv("loading the kernels' PTX"))?;
        let get = |n: &str| module.load_function(n).map_err(drv(n));
        debug_assert_eq!(KERNELS.len(), 5);
        let f = Functions {
            absmax: get("uc_absmax")?,
            train_keys: get("uc_train_keys")?,
            assign: get("uc_assign")?,
            refine_v03: get("uc_refine_v03")?,
            refine_two_level: get("uc_refine_two_level")?,
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

    fn search(&self, s: &ScaleSearch) -> Result<SearchOnDevice, CudaError> {
        if s.grid.is_empty()
            || s.grid.len() > 256
            || s.mids.len() + 1 != s.grid.len()
            || s.table.len() != ScaleSearch::BINS
        {
            return Err(CudaError(format!("a scale search over {} grid values", s.grid.len())));
        }
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
        check_units(n, unit, n.div_ceil(unit.max(1))).map_err(CudaError)?;
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
        if absmax.len() != blocks || scales.len() != blocks {
            return Err(CudaError(format!(
                "{} maxima and {} scales for {blocks} blocks",
                absmax.len(),
                scales.len()
            )));
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
        if !(1..=8).contains(&sub.bits) || unit > 32 {
            return Err(CudaError(format!(
                "sub-scales of {} bits per {unit} elements",
                sub.bits
            )));
        }
        let (grid, mids, table) = self.search(search)?;
        let am = self.up(absmax, "absmax")?;
        let (units, blocks) = (absmax.len(), n.div_ceil(256));
        let mut f16 = self.zeros::<u16>(blocks, "block scales")?;
        let mut subs = self.zeros::<u8>(units, "sub-scales")?;
        let sub_max = f32::from(((1u16 << sub.bits) - 1) as u8);
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
        if mids.len() > 255 {
            return Err(CudaError(format!("{} midpoints", mids.len())));
        }
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
}
