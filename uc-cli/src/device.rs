//! Compute devices for `uc compress --device` and `--list-devices`: the CPU, and NVIDIA GPUs
//! found through the CUDA driver.
//!
//! The CUDA driver (`libcuda.so.1`, `nvcuda.dll`) is loaded at run time, never linked, so the `uc`
//! binary builds and runs on machines without it. Loading it is the only unsafe code of this crate:
//! six driver API entry points with their documented C signatures, each called with valid
//! pointers to locals. No CUDA context is created by the probe: it tells whether a device exists,
//! so `--device cuda:N` can say precisely what is missing before the CUDA encoder (uc-cuda,
//! feature `cuda`) opens the device.
#![allow(unsafe_code)] // dynamic loading of the CUDA driver API (see the module docs)

use std::ffi::{c_char, c_int, c_uint};

/// A CUDA device as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDevice {
    /// Device ordinal (the `N` of `cuda:N`).
    pub ordinal: i32,
    /// Device name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total device memory in bytes.
    pub total_mem: u64,
}

/// What probing the CUDA driver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaProbe {
    /// No driver library could be loaded (the loader's message for each name tried).
    NoDriver(String),
    /// The library loaded but a call failed (`cuInit` without a device returns an error too).
    DriverError(String),
    /// The driver answered: its version (e.g. 12040 for 12.4) and its devices.
    Found {
        /// `cuDriverGetVersion`.
        driver_version: i32,
        /// Every device, in ordinal order.
        devices: Vec<CudaDevice>,
    },
}

/// A `cuDriverGetVersion` number as `major.minor` (12040 → `12.4`).
pub fn driver_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

/// The file names tried, in order, for the CUDA driver library.
pub const CUDA_DRIVER_NAMES: &[&str] = if cfg!(windows) {
    &["nvcuda.dll"]
} else if cfg!(target_os = "macos") {
    &[]
} else {
    &["libcuda.so.1", "libcuda.so"]
};

type CuInit = unsafe extern "C" fn(c_uint) -> c_int;
type CuOut = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;

/// Loads the CUDA driver and lists its devices. Never panics; creates no context.
pub fn probe_cuda() -> CudaProbe {
    let mut tried = Vec::new();
    for name in CUDA_DRIVER_NAMES {
        // SAFETY: loading the NVIDIA driver library runs its initialisers, which have no
        // preconditions on the caller.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => return query(&lib),
            Err(e) => tried.push(e.to_string()),
        }
    }
    if tried.is_empty() {
        tried.push("there is no CUDA driver for this operating system".into());
    }
    CudaProbe::NoDriver(tried.join("; "))
}

fn query(lib: &libloading::Library) -> CudaProbe {
    let call = |what: &str, rc: c_int| -> Result<(), String> {
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("{what} returned CUDA error {rc}"))
        }
    };
    let r = (|| -> Result<CudaProbe, String> {
        // SAFETY: each symbol is looked up by its driver API name and typed with the signature the
        // CUDA driver API documents for it (CUresult = int, CUdevice = int).
        let (init, version, count, get, get_name, total_mem) = unsafe {
            let sym = |e: libloading::Error| e.to_string();
            (
                lib.get::<CuInit>(b"cuInit\0").map_err(sym)?,
                lib.get::<CuOut>(b"cuDriverGetVersion\0").map_err(sym)?,
                lib.get::<CuOut>(b"cuDeviceGetCount\0").map_err(sym)?,
                lib.get::<CuDeviceGet>(b"cuDeviceGet\0").map_err(sym)?,
                lib.get::<CuDeviceGetName>(b"cuDeviceGetName\0").map_err(sym)?,
                lib.get::<CuDeviceTotalMem>(b"cuDeviceTotalMem_v2\0").map_err(sym)?,
            )
        };
        let (mut v, mut n) = (0 as c_int, 0 as c_int);
        // SAFETY: flags 0 is the only valid value; the out-pointers point to live locals.
        unsafe {
            call("cuInit", init(0))?;
            call("cuDriverGetVersion", version(&mut v))?;
            call("cuDeviceGetCount", count(&mut n))?;
        }
        let mut devices = Vec::new();
        for ordinal in 0..n.max(0) {
            let (mut dev, mut mem) = (0 as c_int, 0usize);
            let mut buf = [0 as c_char; 256];
            // SAFETY: `ordinal` < the device count; the name buffer's length is passed with it and
            // the driver writes a NUL-terminated string of at most that length.
            unsafe {
                call("cuDeviceGet", get(&mut dev, ordinal))?;
                call("cuDeviceGetName", get_name(buf.as_mut_ptr(), buf.len() as c_int, dev))?;
                call("cuDeviceTotalMem_v2", total_mem(&mut mem, dev))?;
            }
            let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            devices.push(CudaDevice {
                ordinal,
                name: String::from_utf8_lossy(&bytes).into_owned(),
                total_mem: mem as u64,
            });
        }
        Ok(CudaProbe::Found {
            driver_version: v,
            devices,
        })
    })();
    r.unwrap_or_else(CudaProbe::DriverError)
}

/// A `--device` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// CUDA device `N`.
    Cuda(i32),
}

impl Device {
    /// Parses `cpu` or `cuda:N` (`cuda` alone is `cuda:0`).
    pub fn parse(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Device::Cuda)
                .ok_or_else(|| format!("--device {s}: expected cpu or cuda:N (N = 0, 1, ...)")),
        }
    }
}

/// The GSQ engine of `--device`: `None` for the CPU; for `cuda:N` the driver is probed first, so
/// the error says what is missing (the driver, the device `N`, NVRTC, or, in a build without the
/// `cuda` feature, the CUDA encoder itself), and then the device is opened and the kernels are
/// compiled for it. Never a silent fallback to the CPU.
pub fn open_encoder(device: Device) -> Result<Option<std::sync::Arc<dyn uc_encode::gsq::GsqEngine>>, String> {
    let Device::Cuda(n) = device else { return Ok(None) };
    match probe_cuda() {
        CudaProbe::NoDriver(why) => Err(format!(
            "--device cuda:{n}: no CUDA driver found ({why}); the CUDA encoder needs an NVIDIA GPU and its driver, use --device cpu"
        )),
        CudaProbe::DriverError(why) => Err(format!("--device cuda:{n}: the CUDA driver failed: {why}")),
        CudaProbe::Found { devices, .. } => match devices.iter().find(|d| d.ordinal == n) {
            None => Err(format!(
                "--device cuda:{n}: the CUDA driver reports {} device(s) (see uc compress --list-devices)",
                devices.len()
            )),
            Some(d) => open_cuda(n, &d.name),
        },
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(n: i32, name: &str) -> Result<Option<std::sync::Arc<dyn uc_encode::gsq::GsqEngine>>, String> {
    match uc_cuda::cuda::CudaEngine::open(n as usize) {
        Ok(e) => Ok(Some(std::sync::Arc::new(e))),
        Err(e) => Err(format!("--device cuda:{n} ({name}): {e}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: i32, name: &str) -> Result<Option<std::sync::Arc<dyn uc_encode::gsq::GsqEngine>>, String> {
    Err(format!(
        "--device cuda:{n}: found {name} but this build of uc has no CUDA encoder (built without the cuda feature); use --device cpu"
    ))
}

/// Whether this build has the CUDA encoder (`--list-devices` says so).
pub const CUDA_ENCODER: bool = cfg!(feature = "cuda");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(Device::parse("cpu"), Ok(Device::Cpu));
        assert_eq!(Device::parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(Device::parse("cuda:3"), Ok(Device::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", ""] {
            assert!(Device::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(driver_version_string(12040), "12.4");
        assert_eq!(driver_version_string(13000), "13.0");
    }

    /// The probe agrees with whether the driver library can be loaded at all, and a CUDA device is
    /// never accepted by a build without the CUDA encoder.
    #[test]
    fn the_probe_and_the_device_check_agree() {
        let loadable = CUDA_DRIVER_NAMES
            .iter()
            // SAFETY: as in `probe_cuda`.
            .any(|n| unsafe { libloading::Library::new(n) }.is_ok());
        let probe = probe_cuda();
        assert_eq!(!matches!(probe, CudaProbe::NoDriver(_)), loadable, "{probe:?}");
        match (probe, open_encoder(Device::Cuda(0))) {
            (CudaProbe::NoDriver(_), Err(err)) => assert!(err.contains("no CUDA driver found"), "{err}"),
            (CudaProbe::DriverError(_), Err(err)) => assert!(err.contains("the CUDA driver failed"), "{err}"),
            (CudaProbe::Found { .. }, Err(err)) => assert!(err.contains("cuda:0"), "{err}"),
            (CudaProbe::Found { .. }, Ok(e)) => assert!(CUDA_ENCODER && e.is_some()),
            (p, Ok(_)) => panic!("a CUDA engine opened although the probe says {p:?}"),
        }
        assert!(matches!(open_encoder(Device::Cpu), Ok(None)));
    }
}
