//! GPU decode throughput against a buffer-to-buffer copy of the same size on the same device, in
//! the same run.
//!
//! cargo run --release -p uc-decode-wgpu --example gpu_bench -- --bits 4 --n 16777216 [--json] [--runs R]
//!     [--sub-block S --sub-bits Q]
//!
//! With `--sub-block S` (16 or 32) the record has v0.4 two-level scales (spec section 13) with
//! `Q`-bit sub-scales (`--sub-bits`, 1..=8, default 6); without it, a v0.3 record.
//!
//! decode_gbps = f32 output bytes per second of the best of R decodes; copy_gbps = bytes copied per
//! second by the best of R copies of an equally sized buffer; ratio = decode / copy. Times come
//! from GPU timestamp queries when the device supports them inside command encoders (`timing`:
//! "timestamps"), else from the wall clock around submit and wait (`timing`: "wall", which also
//! counts submission and synchronisation overhead). Before timing, the decoded values are checked
//! bit for bit against the CPU decoder.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;
use uc_decode::Record;
use uc_decode_wgpu::GpuDecoder;
use uc_format::num::f32_to_f16_bits;
use uc_format::{OverlayDtype, RecordParams, write_record, write_record_with_subscales};

struct Args {
    bits: u8,
    n: u64,
    json: bool,
    runs: usize,
    /// Sub-block size S (two-level scales), or None for a v0.3 record.
    sub_block: Option<u32>,
    sub_bits: u8,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bits: 4,
        n: 1 << 24,
        json: false,
        runs: 7,
        sub_block: None,
        sub_bits: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match k.as_str() {
            "--bits" => a.bits = val("--bits")?.parse().map_err(|e| format!("--bits: {e}"))?,
            "--n" => a.n = val("--n")?.parse().map_err(|e| format!("--n: {e}"))?,
            "--runs" => a.runs = val("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--sub-block" => a.sub_block = Some(val("--sub-block")?.parse().map_err(|e| format!("--sub-block: {e}"))?),
            "--sub-bits" => a.sub_bits = val("--sub-bits")?.parse().map_err(|e| format!("--sub-bits: {e}"))?,
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!(
                    "gpu_bench: uc record decode throughput on the GPU (wgpu) vs a buffer copy\n\n\
                     Options:\n  --bits B     code width 1..=8 (default 4)\n  --n N        weights (default 16777216)\n  \
                     --runs R     repetitions, best is kept (default 7)\n  \
                     --sub-block S  two-level scales (v0.4) with sub-blocks of S = 16 or 32\n  \
                     --sub-bits Q   sub-scale width 1..=8 with --sub-block (default 6)\n  \
                     --json       one JSON line"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if !(1..=8).contains(&a.bits) {
        return Err("--bits must be in 1..=8".into());
    }
    if !(1..=8).contains(&a.sub_bits) {
        return Err("--sub-bits must be in 1..=8".into());
    }
    if a.sub_block.is_some_and(|s| s != 16 && s != 32) {
        return Err("--sub-block must be 16 or 32".into());
    }
    if a.n == 0 || a.runs == 0 {
        return Err("--n and --runs must be positive".into());
    }
    Ok(a)
}

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Times one piece of GPU work, recorded by `record` between two timestamp indices.
struct Timer<'a> {
    gpu: &'a GpuDecoder,
    /// Query set, resolve buffer and read-back buffer when timestamps are usable.
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl<'a> Timer<'a> {
    fn new(gpu: &'a GpuDecoder) -> Self {
        let dev = gpu.device();
        let need = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let queries = dev.features().contains(need).then(|| {
            let qs = dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("bench timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bench resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bench read"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (qs, resolve, read)
        });
        Timer { gpu, queries }
    }

    fn kind(&self) -> &'static str {
        if self.queries.is_some() { "timestamps" } else { "wall" }
    }

    /// Seconds taken by the work `record` puts into an encoder.
    fn time(&self, record: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<f64, String> {
        let dev = self.gpu.device();
        let mut enc = dev.create_command_encoder(&Default::default());
        if let Some((qs, _, _)) = &self.queries {
            enc.write_timestamp(qs, 0);
        }
        record(&mut enc);
        if let Some((qs, resolve, read)) = &self.queries {
            enc.write_timestamp(qs, 1);
            enc.resolve_query_set(qs, 0..2, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
        }
        let t = Instant::now();
        self.gpu.queue().submit([enc.finish()]);
        dev.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("waiting for the device: {e}"))?;
        let wall = t.elapsed().as_secs_f64();
        let Some((_, _, read)) = &self.queries else {
            return Ok(wall);
        };
        let (tx, rx) = mpsc::channel();
        read.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        dev.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("waiting for the device: {e}"))?;
        rx.recv().map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let ticks = {
            let v = read.get_mapped_range(..).map_err(|e| e.to_string())?;
            let t0 = u64::from_le_bytes(v[0..8].try_into().expect("8 bytes"));
            let t1 = u64::from_le_bytes(v[8..16].try_into().expect("8 bytes"));
            t1.wrapping_sub(t0)
        };
        read.unmap();
        Ok(ticks as f64 * f64::from(self.gpu.queue().get_timestamp_period()) * 1e-9)
    }
}

fn run(a: &Args) -> Result<(), String> {
    let gpu = GpuDecoder::new_default().map_err(|e| e.to_string())?;
    let adapter = gpu
        .adapter_info()
        .map(|i| format!("{} ({:?})", i.name, i.backend))
        .unwrap_or_default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(a.bits));
    let params = match a.sub_block {
        None => RecordParams::new(a.bits, &[a.n], 0, OverlayDtype::None),
        Some(s) => RecordParams::with_subscales_bits(a.bits, &[a.n], 0, OverlayDtype::None, s, a.sub_bits),
    }
    .map_err(|e| e.to_string())?;
    let layout = params.layout().map_err(|e| e.to_string())?;
    let k = 1usize << a.bits;
    let grid: Vec<f32> = (0..k).map(|i| (i as f32 + 0.5) / k as f32 * 2.0 - 1.0).collect();
    let scales: Vec<u16> = (0..layout.n_scales)
        .map(|_| f32_to_f16_bits(0.001 + rng.unit() * 0.1))
        .collect();
    let codes: Vec<u8> = (0..a.n)
        .map(|_| (rng.next() >> 56) as u8 & (k as u8).wrapping_sub(1))
        .collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    if a.sub_block.is_some() {
        let max = (1u64 << a.sub_bits) - 1;
        let subs: Vec<u8> = (0..layout.n_subscales).map(|_| (1 + rng.next() % max) as u8).collect();
        write_record_with_subscales(&params, &grid, &scales, &subs, &codes, &[], &[], &mut buf)
    } else {
        write_record(&params, &grid, &scales, &codes, &[], &[], &mut buf)
    }
    .map_err(|e| e.to_string())?;
    drop(codes);
    let rec = Record::parse(&buf).map_err(|e| e.to_string())?;

    // Correctness first: the GPU's bits are the CPU's.
    let g = gpu.upload(&rec).map_err(|e| e.to_string())?;
    let out = gpu.decode(&g).map_err(|e| e.to_string())?;
    let got = gpu.read_f32(&out, a.n).map_err(|e| e.to_string())?;
    let mut want = vec![0f32; a.n as usize];
    rec.decode_into(&mut want).map_err(|e| e.to_string())?;
    if got.iter().zip(&want).any(|(x, y)| x.to_bits() != y.to_bits()) {
        return Err("GPU output differs from the CPU decoder".into());
    }
    drop((got, want));

    let bytes = a.n * 4;
    let src = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench copy src"),
        size: bytes,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let dst = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench copy dst"),
        size: bytes,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let timer = Timer::new(&gpu);
    let mut t_dec = f64::INFINITY;
    let mut t_cpy = f64::INFINITY;
    // One untimed round of each (first-use costs), then the best of R.
    for i in 0..=a.runs {
        let mut err = Ok(());
        let d = timer.time(|enc| err = gpu.encode_decode(enc, &g, 0, a.n, &out, None))?;
        err.map_err(|e| e.to_string())?;
        let c = timer.time(|enc| enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes))?;
        if i > 0 {
            t_dec = t_dec.min(d);
            t_cpy = t_cpy.min(c);
        }
    }
    let decode_gbps = bytes as f64 / t_dec / 1e9;
    let copy_gbps = bytes as f64 / t_cpy / 1e9;
    let ratio = decode_gbps / copy_gbps;
    if a.json {
        println!(
            "{{\"bits\":{},\"n\":{},\"sub_block\":{},\"sub_bits\":{},\"adapter\":{:?},\"decode_gbps\":{:.3},\"copy_gbps\":{:.3},\"ratio\":{:.3},\"timing\":\"{}\"}}",
            a.bits,
            a.n,
            a.sub_block.unwrap_or(0),
            if a.sub_block.is_some() { a.sub_bits } else { 0 },
            adapter,
            decode_gbps,
            copy_gbps,
            ratio,
            timer.kind()
        );
    } else {
        println!(
            "bits {}  n {}{}  adapter {}  decode {:8.3} GB/s ({:.3} Gweights/s)  copy {:8.3} GB/s  ratio {:.3}  ({})",
            a.bits,
            a.n,
            a.sub_block
                .map_or(String::new(), |s| format!("  S {s} q {}", a.sub_bits)),
            adapter,
            decode_gbps,
            decode_gbps / 4.0,
            copy_gbps,
            ratio,
            timer.kind()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gpu_bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu_bench: {e}");
            ExitCode::from(1)
        }
    }
}
