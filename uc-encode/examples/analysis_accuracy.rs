//! How close the sampled analysis of `uc compress` comes to the exact one, tensor by tensor.
//!
//! cargo run --release -p uc-encode --example analysis_accuracy -- MODEL_DIR [--bpw F] [--filter S]
//!
//! For every tensor that `uc compress` would quantize within the budget (default policy, outer
//! tensors excluded), it runs [`candidates`] (every width on the whole tensor) and
//! [`sampled_candidates`] with the CLI's defaults (two-level scales 16/6, bits 2..=8, ranks
//! {0, 8, 16, 32, 64}, seed 0), checks that both give the same choices at the same cost, and prints
//! the ratio estimated / exact `err2` of each width (its rank-0 and rank-64 candidates), then the
//! time of each analysis and the spread of the ratios over all candidates.

use std::process::ExitCode;
use std::time::Instant;
use uc_encode::compress::seed_for;
use uc_encode::policy::{DEFAULT_BITS, DEFAULT_RANKS, is_quantized};
use uc_encode::source::SourceModel;
use uc_encode::{SubScales, candidates, sampled_candidates};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("analysis_accuracy: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut dir = None;
    let mut bpw = 4.5f64;
    let mut filter = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bpw" => bpw = args.next().and_then(|v| v.parse().ok()).ok_or("--bpw needs a number")?,
            "--filter" => filter = args.next().ok_or("--filter needs a string")?,
            _ if dir.is_none() => dir = Some(std::path::PathBuf::from(a)),
            _ => {
                return Err(format!(
                    "usage: analysis_accuracy MODEL_DIR [--bpw F] [--filter S] (got {a:?})"
                ));
            }
        }
    }
    let dir = dir.ok_or("usage: analysis_accuracy MODEL_DIR [--bpw F] [--filter S]")?;
    let src = SourceModel::open(&dir).map_err(|e| e.to_string())?;
    let sub = Some(SubScales::DEFAULT);
    let (mut t_exact, mut t_sampled) = (0f64, 0f64);
    let mut ratios: Vec<f64> = Vec::new();
    for t in &src.tensors {
        if !is_quantized(t, &[], false) || !t.name.contains(&filter) {
            continue;
        }
        let data = src.read_f32(t).map_err(|e| e.to_string())?;
        let seed = seed_for(0, &t.name);
        let t0 = Instant::now();
        let exact = candidates(&data, &t.shape, &DEFAULT_BITS, &DEFAULT_RANKS, seed, sub).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let sampled = sampled_candidates(&data, &t.shape, &DEFAULT_BITS, &DEFAULT_RANKS, seed, sub, bpw)
            .map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        t_exact += (t1 - t0).as_secs_f64();
        t_sampled += (t2 - t1).as_secs_f64();
        if exact.len() != sampled.len() {
            return Err(format!(
                "{}: {} exact candidates, {} sampled",
                t.name,
                exact.len(),
                sampled.len()
            ));
        }
        let mut line = format!("{} {:?}", t.name, t.shape);
        for (e, s) in exact.iter().zip(&sampled) {
            if (e.bits, e.rank, e.cost_bits) != (s.bits, s.rank, s.cost_bits) {
                return Err(format!("{}: {e:?} and {s:?} differ in choice or cost", t.name));
            }
            let r = if e.err2 > 0.0 { s.err2 / e.err2 } else { 1.0 };
            ratios.push(r);
            if e.rank == 0 {
                line += &format!(" | b{} {r:.3}", e.bits);
            } else if e.rank == 64 {
                line += &format!(" {r:.3}");
            }
        }
        println!("{line}");
    }
    if ratios.is_empty() {
        return Err("no tensor to analyse".into());
    }
    let dev: Vec<f64> = ratios.iter().map(|r| (r - 1.0).abs()).collect();
    let mean = dev.iter().sum::<f64>() / dev.len() as f64;
    let max = dev.iter().cloned().fold(0.0, f64::max);
    let within5 = dev.iter().filter(|&&d| d <= 0.05).count();
    println!(
        "analysis time: exact {t_exact:.1} s, sampled {t_sampled:.1} s ({:.2}x); estimated/exact err2 over {} candidates: mean |r-1| {mean:.3}, max {max:.3}, within 5%: {within5}",
        t_sampled / t_exact,
        ratios.len()
    );
    Ok(())
}
