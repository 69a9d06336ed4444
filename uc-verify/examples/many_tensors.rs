//! Scale check of the verifier: a valid pack with N tensors (default 240 000 verbatim F32 tensors of
//! 16 values and one record), written with uc-pack's PackWriter, then verified; prints the time of
//! each step and the peak RSS. Issue #14 measured 154 s for 240 k tensors before the index and
//! manifest-file checks were made linear.
//!
//! cargo run --release -p uc-verify --example many_tensors -- [N] [DIR]
use std::time::Instant;
use uc_pack::{Dtype, PackWriter, WriterOptions};

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(240_000);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/uc-many-tensors".into()));
    // VERIFY_ONLY=1: verify the pack a previous run left (KEEP=1), so that peak RSS is the
    // verifier's alone.
    if std::env::var_os("VERIFY_ONLY").is_none() {
        write(n, &dir);
    }
    let t = Instant::now();
    let r = uc_verify::verify_pack(&dir, &uc_verify::PackOptions::default()).expect("verify");
    println!(
        "verified={} ({} checks) in {:.1} s, peak RSS {:.0} MB",
        r.verified,
        r.checks.len(),
        t.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn write(n: usize, dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
    let t = Instant::now();
    let opts = WriterOptions {
        shard_size: std::env::var("SHARD")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1 << 20),
        ..WriterOptions::default()
    };
    let mut w = PackWriter::with_options(dir, opts).expect("writer");
    let data: Vec<u8> = (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect();
    for i in 0..n {
        w.add_verbatim(&format!("t.{i:07}.weight"), Dtype::F32, &[16], &data)
            .expect("add");
    }
    w.set_created_at("2024-01-01T00:00:00Z").expect("time");
    let s = w.finish().expect("finish");
    println!(
        "wrote {n} tensors in {} files in {:.1} s",
        s.safetensors_files.len(),
        t.elapsed().as_secs_f64()
    );
}
