//! # uc-decode-wgpu: portable GPU dequantization of uc pack v0.3 and v0.4 records
//!
//! Decodes [`uc_decode::Record`]s on any GPU that [wgpu] drives through Vulkan (compiled with the
//! Vulkan backend and the WGSL front end only), with the same bits as the CPU decoder:
//!
//! * [`GpuDecoder::decode`], [`GpuDecoder::decode_rows`], [`GpuDecoder::decode_range`]: `W_base`
//!   (spec R-7.1, or R-13.4 for a record with two-level scales) as an f32 storage buffer, **bit-identical** to [`uc_decode::Record::decode_into`]
//!   (sign of zero included) on every conforming device;
//! * [`GpuDecoder::overlay`]: the overlay factors `U` then `V` as f32, bit-identical (R-8.3);
//! * [`GpuDecoder::matvec`]: `y = W_base·x (+ U·(V·x))` straight from the packed record, without
//!   materialising `W`; a float result within [`matvec_error_bound`] (bit-exactness is promised for
//!   decoding, not for dot products, whose summation order differs between devices).
//!
//! ## Why the bits match
//!
//! Records are validated on the CPU first ([`uc_decode::Record::parse`]), which bounds the operands
//! so that every product `scale × grid` is an exact zero or a normal binary32 number (spec R-7.4).
//! The kernels (WGSL, in `src/shaders/`) then:
//!
//! * keep every buffer as raw `u32` bits and produce values with `bitcast`, never a conversion;
//! * convert binary16 scales (and f16 overlay factors) to binary32 with **integer operations**
//!   (spec R-7.5), never `unpack2x16float` or half-precision types, which may flush subnormals:
//!   a subnormal binary16 scale becomes its exact, normal binary32 value;
//! * compute `W_base` with ONE binary32 multiply, which WGSL requires to be correctly rounded
//!   (round to nearest even); its operands and result are zero or normal, so devices that flush
//!   subnormals agree. With two-level scales (spec section 13) the effective scale
//!   `f32(scale) × f32(sub)` is first computed in binary32, where it is exact (at most 19
//!   significant bits, zero or normal, R-13.4 and R-13.5), then multiplied by the grid value;
//! * take the sign of the product from the grid value's sign bit (scales are never negative, R-7.2),
//!   so `+0 × negative = -0` holds even on an implementation careless with signed zeros.
//!
//! The test `bit_exact_conformance` checks this on every positive conformance vector, every bit
//! width 1..=8 with codes straddling 32-bit words and partial last blocks, and a tensor large
//! enough for a 2-D (chunked) dispatch.
//!
//! ## Limits
//!
//! Every buffer must fit the device's `max_storage_buffer_binding_size` and `max_buffer_size`;
//! when one does not, [`GpuDecoder::upload`] and the decode calls return [`Error::TooLarge`] naming
//! the sizes (decode such a tensor by row ranges with [`GpuDecoder::decode_rows`]). Kernels index
//! elements with 32-bit integers, so a tensor must have fewer than 2^32 elements. Dispatches larger
//! than `max_compute_workgroups_per_dimension` workgroups use a 2-D grid of workgroups.
//!
//! ```no_run
//! let bytes = std::fs::read("weight.ucr").unwrap();
//! let rec = uc_decode::Record::parse(&bytes).unwrap();
//! let gpu = uc_decode_wgpu::GpuDecoder::new_default().unwrap();
//! let w: Vec<f32> = gpu.decode_to_vec(&rec).unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::ops::Range;
use std::sync::mpsc;

pub use uc_decode::{OverlayDtype, Record};
use wgpu::util::DeviceExt;

/// The WGSL sources. A kernel's shader module is `common.wgsl`, then `record.wgsl` for the kernels
/// that read codes, then the kernel's own file.
pub mod shaders {
    /// Helpers shared by every kernel: binary16/bfloat16 to binary32 bits, index arithmetic.
    pub const COMMON: &str = include_str!("shaders/common.wgsl");
    /// Bindings of the grid, scales and codes sections and the per-element decode.
    pub const RECORD: &str = include_str!("shaders/record.wgsl");
    /// The dequantization kernel (entry point `dequant`).
    pub const DEQUANT: &str = include_str!("shaders/dequant.wgsl");
    /// The overlay-factor kernel (entry point `overlay_f32`).
    pub const OVERLAY: &str = include_str!("shaders/overlay.wgsl");
    /// The matrix-vector kernels (entry points `overlay_vx` and `matvec`).
    pub const MATVEC: &str = include_str!("shaders/matvec.wgsl");

    /// Every shader module the library builds: its name, its entry points, and its source files
    /// (by file name) in concatenation order.
    pub const MODULES: [(&str, &[&str], &[&str]); 3] = [
        ("dequant", &["dequant"], &["common.wgsl", "record.wgsl", "dequant.wgsl"]),
        ("overlay", &["overlay_f32"], &["common.wgsl", "overlay.wgsl"]),
        (
            "matvec",
            &["overlay_vx", "matvec"],
            &["common.wgsl", "record.wgsl", "matvec.wgsl"],
        ),
    ];

    /// The source of a `.wgsl` file of `src/shaders/` by its file name.
    pub fn file(name: &str) -> Option<&'static str> {
        Some(match name {
            "common.wgsl" => COMMON,
            "record.wgsl" => RECORD,
            "dequant.wgsl" => DEQUANT,
            "overlay.wgsl" => OVERLAY,
            "matvec.wgsl" => MATVEC,
            _ => return None,
        })
    }

    /// The full source of the module named `name` (see [`MODULES`]).
    pub fn module_source(name: &str) -> Option<String> {
        let (_, _, files) = MODULES.iter().find(|m| m.0 == name)?;
        let mut s = String::new();
        for f in files.iter() {
            s.push_str(file(f)?);
            s.push('\n');
        }
        Some(s)
    }
}

/// Threads per workgroup of every kernel (the `@workgroup_size` of the WGSL files).
pub const WORKGROUP_SIZE: u32 = 256;

/// What can go wrong. Decoding a validated record cannot fail on its content; these are the
/// device, its limits, and the caller's requests.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter is available (no Vulkan driver, or no device).
    NoAdapter(String),
    /// The adapter refused to create a device.
    RequestDevice(String),
    /// The record bytes are invalid (spec R-9.1), from [`GpuDecoder::decode_to_vec_bytes`].
    Record(uc_decode::Error),
    /// A decode request outside the tensor (a row or element range).
    Request(uc_decode::DecodeError),
    /// A buffer does not fit the device's limits.
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Its size in bytes (or, for `element count`, in elements).
        size: u64,
        /// The device's limit.
        limit: u64,
        /// The name of the limit (a field of `wgpu::Limits`, or `u32 element index`).
        limit_name: &'static str,
    },
    /// An input has the wrong length (e.g. `x` of [`GpuDecoder::matvec`]).
    InputLength {
        /// Required number of values.
        expected: u64,
        /// Number given.
        got: usize,
    },
    /// The device lacks something a kernel needs (e.g. the matrix-vector kernel binds 7 storage
    /// buffers; WebGPU's minimum `max_storage_buffers_per_shader_stage` is 8, downlevel devices
    /// may offer 4).
    Unsupported(String),
    /// The device reported an error (out of memory, a lost device, a failed mapping).
    Gpu(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter(why) => write!(
                f,
                "no GPU adapter: {why} (install a Vulkan driver, e.g. Mesa's software rasterizer lavapipe: \
                 `apt-get install mesa-vulkan-drivers`, or decode on the CPU)"
            ),
            Error::RequestDevice(why) => write!(f, "the GPU adapter refused to create a device: {why}"),
            Error::Record(e) => write!(f, "invalid record: {e}"),
            Error::Request(e) => write!(f, "bad decode request: {e}"),
            Error::TooLarge {
                what,
                size,
                limit,
                limit_name,
            } => write!(
                f,
                "{what} needs {size} bytes, over the device's {limit_name} of {limit} \
                 (decode the tensor in row ranges, or use the CPU decoder)"
            ),
            Error::InputLength { expected, got } => {
                write!(f, "input holds {got} values, the request needs {expected}")
            }
            Error::Unsupported(why) => write!(f, "not supported by this device: {why}"),
            Error::Gpu(why) => write!(f, "GPU error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<uc_decode::DecodeError> for Error {
    fn from(e: uc_decode::DecodeError) -> Self {
        Error::Request(e)
    }
}

/// A record's sections in device memory, created by [`GpuDecoder::upload`].
#[derive(Debug)]
pub struct GpuRecord {
    grid: wgpu::Buffer,
    /// The scales section, then (two-level scales) the sub-scales section from word `sub_word`.
    scales: wgpu::Buffer,
    codes: wgpu::Buffer,
    overlay: wgpu::Buffer,
    n: u64,
    rows: u64,
    cols: u64,
    bits: u8,
    rank: u32,
    overlay_dtype: OverlayDtype,
    /// `log2(B)`: 6, or 8 with two-level scales.
    block_shift: u32,
    /// `log2(S)` (4 or 5) with two-level scales, 0 without.
    sub_shift: u32,
    /// Width `q` of a sub-scale in bits (1..=8) with two-level scales, 0 without.
    sub_bits: u32,
    /// Word index of the first sub-scale in `scales` (0 without two-level scales).
    sub_word: u32,
}

impl GpuRecord {
    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Always false: a valid record has at least one element.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of rows (dim 0).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Number of columns (product of dims 1..; 1 for a 1-D tensor).
    pub fn cols(&self) -> u64 {
        self.cols
    }

    /// Code width.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Overlay rank (0 when none).
    pub fn overlay_rank(&self) -> u32 {
        self.rank
    }

    /// Overlay dtype.
    pub fn overlay_dtype(&self) -> OverlayDtype {
        self.overlay_dtype
    }

    /// Block size `B` of the binary16 scales: 64, or 256 with two-level scales (spec R-13.3).
    pub fn block_size(&self) -> u32 {
        1 << self.block_shift
    }

    /// Sub-block size `S` of two-level scales (16 or 32), or `None` for a record without.
    pub fn sub_block(&self) -> Option<u32> {
        (self.sub_shift != 0).then(|| 1 << self.sub_shift)
    }

    /// Width `q` in bits (1..=8) of a sub-scale of two-level scales (spec R-13.2), or `None` for a
    /// record without.
    pub fn sub_bits(&self) -> Option<u32> {
        (self.sub_shift != 0).then_some(self.sub_bits)
    }

    /// Index of the `u32` word of [`GpuRecord::scales_buffer`] where the sub-scales start (0 for a
    /// record without two-level scales).
    pub fn subscales_word_offset(&self) -> u32 {
        self.sub_word
    }

    /// The grid: `2^bits` binary32 values.
    pub fn grid_buffer(&self) -> &wgpu::Buffer {
        &self.grid
    }

    /// The scales section, zero-padded to a multiple of 4 bytes; for a record with two-level scales,
    /// followed by the sub-scales section (`ceil(n / S)` integers of [`GpuRecord::sub_bits`] bits,
    /// packed LSB first as codes are, spec R-13.2), zero-padded to a multiple of 4
    /// bytes, from word [`GpuRecord::subscales_word_offset`] on (one binding holds both, so that
    /// decoding still binds 4 storage buffers).
    pub fn scales_buffer(&self) -> &wgpu::Buffer {
        &self.scales
    }

    /// The codes section (`8 * bits * n_blocks` bytes, a multiple of 8).
    pub fn codes_buffer(&self) -> &wgpu::Buffer {
        &self.codes
    }

    /// The overlay section zero-padded to a multiple of 4 bytes (4 zero bytes when there is none).
    pub fn overlay_buffer(&self) -> &wgpu::Buffer {
        &self.overlay
    }
}

/// Decodes records on one wgpu device.
#[derive(Debug)]
pub struct GpuDecoder {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_info: Option<wgpu::AdapterInfo>,
    limits: wgpu::Limits,
    max_groups_per_dim: u32,
    dequant_layout: wgpu::BindGroupLayout,
    overlay_layout: wgpu::BindGroupLayout,
    dequant: wgpu::ComputePipeline,
    overlay: wgpu::ComputePipeline,
    /// The layout and the `overlay_vx` and `matvec` pipelines; `None` when the device allows fewer
    /// than 7 storage buffers per stage.
    matvec: Option<(wgpu::BindGroupLayout, wgpu::ComputePipeline, wgpu::ComputePipeline)>,
}

/// Storage buffers the matrix-vector kernels bind in one stage.
const MATVEC_STORAGE_BUFFERS: u32 = 7;

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

const UNIFORM: wgpu::BufferBindingType = wgpu::BufferBindingType::Uniform;
const READ: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: true };
const READ_WRITE: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: false };

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn pad4(n: u64) -> u64 {
    n.div_ceil(4).max(1) * 4
}

/// Bound on `|y_gpu[i] − y[i]|` for [`GpuDecoder::matvec`], where `y[i]` is the exact value of
/// `Σ_j W_base[i,j]·x[j] (+ Σ_k U[i,k]·Σ_j V[k,j]·x[j])` with the record's exact values.
///
/// Each workgroup sums a row: thread `l` accumulates the columns `j ≡ l (mod 256)` in order
/// (at most `⌈cols/256⌉` additions), then a binary tree of 8 levels adds the 256 partial sums; the
/// overlay adds the same structure over `r` (for `U·t`) after `t = V·x`, and one final addition.
/// Every term therefore passes through at most `K = ⌈cols/256⌉ + ⌈r/256⌉ + 20` binary32 roundings,
/// and the standard bound for floating-point sums gives
///
/// ```text
/// |y_gpu[i] − y[i]| ≤ γ_K · M_i + 2^-126 · F_i,   γ_K = K·2^-24 / (1 − K·2^-24)
/// M_i = Σ_j |W_base[i,j]·x[j]| + Σ_k |U[i,k]| · Σ_j |V[k,j]·x[j]|
/// ```
///
/// (`r` = 0 when the overlay is not merged). `F_i` covers devices that flush subnormal numbers to
/// zero (WGSL allows it): each flushed result or operand changes the sum by less than `2^-126`
/// times the magnitude of the other operand (1 for a sum), so pass
///
/// ```text
/// F_i = 4·(cols + r + 4) + Σ_j (|W_base[i,j]| + |x[j]|)
///       + Σ_k |U[i,k]|·(1 + Σ_j (|V[k,j]| + |x[j]|)) + Σ_k |t[k]|,   t = V·x
/// ```
///
/// (it may be 0 for a device that does not flush subnormals). Fused multiply-adds, which a driver
/// may use, only tighten the bound. The function returns `γ_K·magnitude + 2^-126·flush_magnitude`.
pub fn matvec_error_bound(cols: u64, rank: u32, magnitude: f64, flush_magnitude: f64) -> f64 {
    let k = cols.div_ceil(u64::from(WORKGROUP_SIZE)) + u64::from(rank).div_ceil(u64::from(WORKGROUP_SIZE)) + 20;
    let ku = k as f64 * f64::powi(2.0, -24);
    ku / (1.0 - ku) * magnitude + f64::powi(2.0, -126) * flush_magnitude
}

impl GpuDecoder {
    /// A decoder on a device the caller created (a runtime that brings its own). Uses the device's
    /// limits as they are; compiles the kernels.
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self, Error> {
        Self::with_info(device, queue, None)
    }

    /// A decoder on the first high-performance adapter wgpu finds (the `WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` environment variables apply), with every limit
    /// the adapter supports and, when available, timestamp queries. Returns [`Error::NoAdapter`]
    /// when there is no GPU or no Vulkan driver.
    pub fn new_default() -> Result<Self, Error> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let opts = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
            ..Default::default()
        };
        let adapter = pollster::block_on(instance.request_adapter(&opts))
            .map_err(|e| Error::NoAdapter(format!("wgpu found no adapter ({e})")))?;
        let info = adapter.get_info();
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let desc = wgpu::DeviceDescriptor {
            label: Some("uc-decode-wgpu"),
            required_features: adapter.features() & wanted,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::RequestDevice(format!("{} ({:?}): {e}", info.name, info.backend)))?;
        Self::with_info(device, queue, Some(info))
    }

    fn with_info(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: Option<wgpu::AdapterInfo>,
    ) -> Result<Self, Error> {
        let limits = device.limits();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = |name: &str| {
            let src = shaders::module_source(name).unwrap_or_default();
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let (m_dequant, m_overlay, m_matvec) = (module("dequant"), module("overlay"), module("matvec"));
        let bgl = |label: &str, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries,
            })
        };
        let dequant_layout = bgl(
            "uc dequant",
            &[
                layout_entry(0, UNIFORM),
                layout_entry(1, READ),
                layout_entry(2, READ),
                layout_entry(3, READ),
                layout_entry(4, READ_WRITE),
            ],
        );
        let overlay_layout = bgl(
            "uc overlay",
            &[
                layout_entry(0, UNIFORM),
                layout_entry(1, READ),
                layout_entry(2, READ_WRITE),
            ],
        );
        let matvec_ok = limits.max_storage_buffers_per_shader_stage >= MATVEC_STORAGE_BUFFERS;
        let matvec_entries = [
            layout_entry(0, UNIFORM),
            layout_entry(1, READ),
            layout_entry(2, READ),
            layout_entry(3, READ),
            layout_entry(4, READ),
            layout_entry(5, READ),
            layout_entry(6, READ_WRITE),
            layout_entry(7, READ_WRITE),
        ];
        let pipeline = |layout: &wgpu::BindGroupLayout, module: &wgpu::ShaderModule, entry: &str| {
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let dequant = pipeline(&dequant_layout, &m_dequant, "dequant");
        let overlay = pipeline(&overlay_layout, &m_overlay, "overlay_f32");
        let matvec = matvec_ok.then(|| {
            let layout = bgl("uc matvec", &matvec_entries);
            let vx = pipeline(&layout, &m_matvec, "overlay_vx");
            let mv = pipeline(&layout, &m_matvec, "matvec");
            (layout, vx, mv)
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("creating the kernels failed: {e}")));
        }
        Ok(GpuDecoder {
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension.max(1),
            device,
            queue,
            adapter_info,
            limits,
            dequant_layout,
            overlay_layout,
            dequant,
            overlay,
            matvec,
        })
    }

    /// Lowers the number of workgroups put along one dimension of a dispatch (normally the device's
    /// `max_compute_workgroups_per_dimension`), so that small tensors exercise the 2-D dispatch
    /// path. Clamped to `1..=` the device limit.
    pub fn with_max_workgroups_per_dimension(mut self, n: u32) -> Self {
        self.max_groups_per_dim = n.clamp(1, self.limits.max_compute_workgroups_per_dimension.max(1));
        self
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue work is submitted to.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter, when this decoder created the device ([`GpuDecoder::new_default`]).
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.adapter_info.as_ref()
    }

    /// The device limits this decoder checks buffers against.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    fn check_buffer(&self, what: &'static str, size: u64, binding: bool) -> Result<(), Error> {
        let checks = [
            (
                binding,
                self.limits.max_storage_buffer_binding_size,
                "max_storage_buffer_binding_size",
            ),
            (true, self.limits.max_buffer_size, "max_buffer_size"),
        ];
        for (on, limit, limit_name) in checks {
            if on && size > limit {
                return Err(Error::TooLarge {
                    what,
                    size,
                    limit,
                    limit_name,
                });
            }
        }
        Ok(())
    }

    /// Runs `f` inside an out-of-memory and a validation error scope and turns a captured error
    /// into [`Error::Gpu`].
    fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o.or(v) {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        out
    }

    fn storage_with(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer, Error> {
        let size = pad4(bytes.len() as u64);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        {
            // Memory mapped at creation is zero-filled, so the padding bytes are zero.
            let mut view = buf
                .get_mapped_range_mut(..)
                .map_err(|e| Error::Gpu(format!("mapping {label}: {e}")))?;
            view.slice(..bytes.len()).copy_from_slice(bytes);
        }
        buf.unmap();
        Ok(buf)
    }

    fn output(&self, label: &str, values: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: pad4(values * 4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("uc params"),
            contents: &u32_bytes(words),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// Workgroup grid for `groups` workgroups: 1-D when it fits one dimension, else 2-D (the
    /// kernels compute the linear index and skip the excess).
    fn grid_for(&self, groups: u64) -> Result<(u32, u32), Error> {
        let x = u64::from(self.max_groups_per_dim);
        if groups <= x {
            return Ok((groups as u32, 1));
        }
        let y = groups.div_ceil(x);
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        if y > max {
            return Err(Error::TooLarge {
                what: "dispatch (workgroups)",
                size: groups,
                limit: max * x,
                limit_name: "max_compute_workgroups_per_dimension squared",
            });
        }
        Ok((x as u32, y as u32))
    }

    /// Copies a validated record's sections into storage buffers (each zero-padded to a multiple of
    /// 4 bytes). Fails with [`Error::TooLarge`] when a section exceeds the device's limits or the
    /// tensor has 2^32 elements or more.
    pub fn upload(&self, rec: &Record<'_>) -> Result<GpuRecord, Error> {
        let n = rec.len();
        if n > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                what: "tensor (elements)",
                size: n,
                limit: u64::from(u32::MAX),
                limit_name: "u32 element index",
            });
        }
        let grid: Vec<u8> = rec.grid().iter().flat_map(|g| g.to_bits().to_le_bytes()).collect();
        // The scales, then (two-level scales) the sub-scales from the next whole word.
        let sub_word = if rec.sub_block().is_some() {
            pad4(rec.scales_bytes().len() as u64) / 4
        } else {
            0
        };
        let scales: std::borrow::Cow<'_, [u8]> = if rec.sub_block().is_some() {
            let mut v = rec.scales_bytes().to_vec();
            v.resize(sub_word as usize * 4, 0);
            v.extend_from_slice(rec.subscales_bytes());
            v.into()
        } else {
            rec.scales_bytes().into()
        };
        let sections: [(&'static str, &[u8]); 4] = [
            ("grid section", &grid),
            ("scales section", &scales),
            ("codes section", rec.codes_bytes()),
            ("overlay section", rec.overlay_bytes()),
        ];
        for (what, bytes) in sections {
            self.check_buffer(what, pad4(bytes.len() as u64), true)?;
        }
        self.scoped("uploading the record", || {
            Ok(GpuRecord {
                grid: self.storage_with("uc grid", &grid)?,
                scales: self.storage_with("uc scales", &scales)?,
                codes: self.storage_with("uc codes", rec.codes_bytes())?,
                overlay: self.storage_with("uc overlay", rec.overlay_bytes())?,
                n,
                rows: rec.rows(),
                cols: rec.cols(),
                bits: rec.bits(),
                rank: rec.overlay_rank(),
                overlay_dtype: rec.overlay_dtype(),
                block_shift: rec.block_size().trailing_zeros(),
                sub_shift: rec.sub_block().map_or(0, u32::trailing_zeros),
                sub_bits: if rec.sub_block().is_some() {
                    u32::from(rec.layout().params.sub_bits)
                } else {
                    0
                },
                sub_word: sub_word as u32,
            })
        })
    }

    /// Records the dequantization of elements `[start, start + count)` into `out` (f32 values at
    /// byte offset 0) in `encoder`, in one compute pass with optional timestamp writes. For runtimes
    /// that schedule their own work; [`GpuDecoder::decode_range`] submits it for you.
    pub fn encode_decode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        rec: &GpuRecord,
        start: u64,
        count: u64,
        out: &wgpu::Buffer,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), Error> {
        if start.checked_add(count).is_none_or(|end| end > rec.n) {
            return Err(Error::Request(uc_decode::DecodeError::OutOfRange {
                start,
                end: start.saturating_add(count),
                len: rec.n,
            }));
        }
        if out.size() < count * 4 {
            return Err(Error::Request(uc_decode::DecodeError::OutputLength {
                expected: count,
                got: (out.size() / 4) as usize,
            }));
        }
        let (gx, gy) = self.grid_for(count.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        let params = self.uniform(&[
            start as u32,
            count as u32,
            u32::from(rec.bits),
            rec.block_shift,
            rec.sub_shift,
            rec.sub_bits,
            rec.sub_word,
            0,
        ]);
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("uc dequant"),
            layout: &self.dequant_layout,
            entries: &[
                bind(0, &params),
                bind(1, &rec.grid),
                bind(2, &rec.scales),
                bind(3, &rec.codes),
                bind(4, out),
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("uc dequant"),
            timestamp_writes,
        });
        if count > 0 {
            pass.set_pipeline(&self.dequant);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        Ok(())
    }

    /// Decodes elements `[start, start + count)` (row-major flattening) into a new f32 storage
    /// buffer (usages STORAGE, COPY_SRC, COPY_DST; at least 4 bytes). The work is submitted; later
    /// work on the same queue sees the result.
    pub fn decode_range(&self, rec: &GpuRecord, start: u64, count: u64) -> Result<wgpu::Buffer, Error> {
        if start.checked_add(count).is_none_or(|end| end > rec.n) {
            return Err(Error::Request(uc_decode::DecodeError::OutOfRange {
                start,
                end: start.saturating_add(count),
                len: rec.n,
            }));
        }
        self.check_buffer("decoded f32 output", count.saturating_mul(4), true)?;
        self.scoped("decoding", || {
            let out = self.output("uc W_base", count);
            let mut enc = self.device.create_command_encoder(&Default::default());
            self.encode_decode(&mut enc, rec, start, count, &out, None)?;
            self.queue.submit([enc.finish()]);
            Ok(out)
        })
    }

    /// Decodes the whole tensor (`W_base`, spec R-7.1 or R-13.4) into a new f32 storage buffer of
    /// [`GpuRecord::len`] values, bit-identical to the CPU decoder.
    pub fn decode(&self, rec: &GpuRecord) -> Result<wgpu::Buffer, Error> {
        self.decode_range(rec, 0, rec.n)
    }

    /// Decodes rows `rows` (along dim 0) into a new f32 storage buffer of
    /// `rows.len() * cols` values.
    pub fn decode_rows(&self, rec: &GpuRecord, rows: Range<u64>) -> Result<wgpu::Buffer, Error> {
        if rows.start > rows.end || rows.end > rec.rows {
            return Err(Error::Request(uc_decode::DecodeError::OutOfRange {
                start: rows.start,
                end: rows.end,
                len: rec.rows,
            }));
        }
        self.decode_range(rec, rows.start * rec.cols, (rows.end - rows.start) * rec.cols)
    }

    /// The overlay factors as f32 (exact, spec R-8.3): `U` (`rows × r`, row-major) then `V`
    /// (`r × cols`), in a new storage buffer of `r·(rows + cols)` values; `None` when `r = 0`.
    pub fn overlay(&self, rec: &GpuRecord) -> Result<Option<wgpu::Buffer>, Error> {
        if rec.rank == 0 {
            return Ok(None);
        }
        let count = u64::from(rec.rank) * (rec.rows + rec.cols);
        self.check_buffer("overlay f32 output", count * 4, true)?;
        let dtype = match rec.overlay_dtype {
            OverlayDtype::Bf16 => 2,
            _ => 1,
        };
        let (gx, gy) = self.grid_for(count.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        self.scoped("decoding the overlay", || {
            let out = self.output("uc overlay f32", count);
            let params = self.uniform(&[0, count as u32, dtype, 0]);
            let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("uc overlay"),
                layout: &self.overlay_layout,
                entries: &[bind(0, &params), bind(1, &rec.overlay), bind(2, &out)],
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.overlay);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            self.queue.submit([enc.finish()]);
            Ok(Some(out))
        })
    }

    /// `y = W_base·x`, or `y = W_base·x + U·(V·x)` when `merge_overlay` and the record has an
    /// overlay, computed from the packed record without materialising `W` (`x` has `cols` values,
    /// `y` has `rows`). Within [`matvec_error_bound`] of the exact result; not bit-exact.
    pub fn matvec(&self, rec: &GpuRecord, x: &[f32], merge_overlay: bool) -> Result<Vec<f32>, Error> {
        if x.len() as u64 != rec.cols {
            return Err(Error::InputLength {
                expected: rec.cols,
                got: x.len(),
            });
        }
        let Some((matvec_layout, overlay_vx, matvec)) = &self.matvec else {
            return Err(Error::Unsupported(format!(
                "the matrix-vector kernel binds {MATVEC_STORAGE_BUFFERS} storage buffers, the device's \
                 max_storage_buffers_per_shader_stage is {}",
                self.limits.max_storage_buffers_per_shader_stage
            )));
        };
        let rank = if merge_overlay { rec.rank } else { 0 };
        self.check_buffer("matvec input x", rec.cols * 4, true)?;
        self.check_buffer("matvec output y", rec.rows * 4, true)?;
        let (rx, ry) = self.grid_for(rec.rows)?;
        let (kx, ky) = self.grid_for(u64::from(rank))?;
        let dtype = match rec.overlay_dtype {
            OverlayDtype::Bf16 => 2,
            _ => 1,
        };
        let y = self.scoped("matvec", || {
            let xb: Vec<u8> = x.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect();
            let xbuf = self.storage_with("uc x", &xb)?;
            let t = self.output("uc V·x", u64::from(rank));
            let y = self.output("uc y", rec.rows);
            let params = self.uniform(&[
                rec.rows as u32,
                rec.cols as u32,
                u32::from(rec.bits),
                rank,
                dtype,
                rec.block_shift,
                rec.sub_shift,
                rec.sub_word,
                rec.sub_bits,
                0,
                0,
                0,
            ]);
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("uc matvec"),
                layout: matvec_layout,
                entries: &[
                    bind(0, &params),
                    bind(1, &rec.grid),
                    bind(2, &rec.scales),
                    bind(3, &rec.codes),
                    bind(4, &rec.overlay),
                    bind(5, &xbuf),
                    bind(6, &t),
                    bind(7, &y),
                ],
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            if rank > 0 {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(overlay_vx);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(kx, ky, 1);
            }
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(matvec);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(rx, ry, 1);
            }
            self.queue.submit([enc.finish()]);
            Ok(y)
        })?;
        self.read_f32(&y, rec.rows)
    }

    /// Reads the first `count` f32 values of `buf` (which needs COPY_SRC usage) back to the host,
    /// waiting for the queue. The bits are returned as they are (sign of zero included).
    pub fn read_f32(&self, buf: &wgpu::Buffer, count: u64) -> Result<Vec<f32>, Error> {
        let bytes = count * 4;
        if bytes > buf.size() {
            return Err(Error::Request(uc_decode::DecodeError::OutputLength {
                expected: count,
                got: (buf.size() / 4) as usize,
            }));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        self.check_buffer("read-back staging buffer", bytes, false)?;
        let staging = self.scoped("reading back", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("uc read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes);
            self.queue.submit([enc.finish()]);
            Ok(staging)
        })?;
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Gpu("the read-back mapping was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("reading the read-back buffer: {e}")))?;
            view.chunks_exact(4)
                .map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        };
        staging.unmap();
        Ok(out)
    }

    /// Uploads, decodes and reads back a whole record: the GPU equivalent of
    /// [`uc_decode::Record::decode_into`], with the same bits.
    pub fn decode_to_vec(&self, rec: &Record<'_>) -> Result<Vec<f32>, Error> {
        let g = self.upload(rec)?;
        let out = self.decode(&g)?;
        self.read_f32(&out, g.n)
    }

    /// Validates `bytes` as a record on the CPU ([`Error::Record`] when invalid), then
    /// [`GpuDecoder::decode_to_vec`].
    pub fn decode_to_vec_bytes(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let rec = Record::parse(bytes).map_err(Error::Record)?;
        self.decode_to_vec(&rec)
    }

    /// Reads back the overlay factors (`U` then `V`) as f32; empty when `r = 0`.
    pub fn overlay_to_vec(&self, rec: &GpuRecord) -> Result<Vec<f32>, Error> {
        match self.overlay(rec)? {
            None => Ok(Vec::new()),
            Some(buf) => self.read_f32(&buf, u64::from(rec.rank) * (rec.rows + rec.cols)),
        }
    }
}

fn bind(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}
