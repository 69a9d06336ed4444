//! CUDA against the CPU encoder, byte for byte, on the device (`scripts/gpu-check.sh` step 1):
//! every tensor of `uc_cuda::cases::synthetic` at 1..=8 bits in every layout with and without
//! importance, and every 2-D tensor of each model directory given, at 3, 4 and 6 bits; each case's
//! grid, scales, sub-scales, codes and record compared. Prints one JSON line; exit 1 on a difference.
//! `identity [--device N] [MODEL_DIR ...]`
use std::time::Instant;
use uc_cuda::cuda::CudaEngine;
use uc_encode::gsq::{CpuEngine, GsqEngine, GsqOptions, GsqParts, SubScales};

/// (bits, layout, with importance).
type Case = (u8, Option<SubScales>, bool);

fn key(p: &GsqParts, bits: u8, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = p.grid.iter().flat_map(|g| g.to_bits().to_le_bytes()).collect();
    v.extend(p.scales.iter().flat_map(|s| s.to_le_bytes()));
    v.extend_from_slice(&p.subscales);
    v.extend_from_slice(&p.codes);
    v.extend(
        p.record(bits, &[n as u64], 0, uc_format::OverlayDtype::None, &[], &[])
            .unwrap_or_default(),
    );
    v
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut ordinal = 0usize;
    if let Some(i) = args.iter().position(|a| a == "--device") {
        ordinal = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("error: --device N");
            std::process::exit(2)
        });
        args.drain(i..i + 2);
    }
    let cuda = CudaEngine::open(ordinal).unwrap_or_else(|e| {
        eprintln!("error: cuda:{ordinal}: {e}");
        std::process::exit(2)
    });
    let mut cases: Vec<(String, Vec<f32>, usize, Vec<Case>)> = Vec::new();
    for (name, data, cols) in uc_cuda::cases::synthetic() {
        let mut c = Vec::new();
        for layout in uc_cuda::cases::layouts() {
            for bits in 1..=8 {
                for imp in [false, true] {
                    c.push((bits, layout, imp));
                }
            }
        }
        cases.push((name, data, cols, c));
    }
    for dir in &args {
        let src = uc_encode::source::SourceModel::open(std::path::Path::new(dir)).unwrap_or_else(|e| {
            eprintln!("error: {dir}: {e}");
            std::process::exit(2)
        });
        for t in src.tensors.iter().filter(|t| t.shape.len() == 2 && t.numel() >= 4096) {
            let data = src.read_f32(t).unwrap_or_else(|e| {
                eprintln!("error: {dir}: {}: {e}", t.name);
                std::process::exit(2)
            });
            let d = Some(SubScales::DEFAULT);
            cases.push((
                format!("{dir}:{}", t.name),
                data,
                t.shape[1] as usize,
                vec![(3, d, true), (4, None, false), (6, d, false)],
            ));
        }
    }
    let (mut compared, mut weights) = (0usize, 0u64);
    let (mut t_cpu, mut t_cuda) = (0f64, 0f64);
    for (name, data, cols, c) in &cases {
        let imp_v = uc_cuda::cases::importance(*cols);
        for &(bits, layout, with_imp) in c {
            let imp = with_imp.then_some(&imp_v);
            let opts = GsqOptions::new(bits).with_subscales(layout);
            let t0 = Instant::now();
            let a = CpuEngine
                .quantize(data, &opts, imp)
                .expect("the CPU engine does not fail");
            let t1 = Instant::now();
            let b = cuda.quantize(data, &opts, imp).unwrap_or_else(|e| {
                eprintln!("error: {name}, {bits} bits: {e}");
                std::process::exit(1)
            });
            t_cuda += t1.elapsed().as_secs_f64();
            t_cpu += (t1 - t0).as_secs_f64();
            if key(&a, bits, data.len()) != key(&b, bits, data.len()) || a.iters != b.iters {
                println!(
                    "{{\"identical\":false,\"case\":{:?},\"bits\":{bits},\"layout\":{:?},\"importance\":{with_imp}}}",
                    name,
                    format!("{layout:?}")
                );
                std::process::exit(1);
            }
            compared += 1;
            weights += data.len() as u64;
        }
    }
    println!(
        "{{\"identical\":true,\"device\":{:?},\"cases\":{compared},\"weights\":{weights},\"cpu_seconds\":{t_cpu:.3},\"cuda_seconds\":{t_cuda:.3}}}",
        cuda.device()
    );
}
