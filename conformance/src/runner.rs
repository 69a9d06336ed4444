//! Runs vectors through an external decoder program (protocol: conformance/README.md).
//!
//! The decoder is started as `sh -c "<command> <mode>"` with the record bytes on stdin, where
//! `<mode>` is `decode`, `overlay` or `merged`. On success it exits 0 and writes little-endian f32
//! values to stdout; on an invalid record it exits 1 and writes one line `<error_class> <offset>`.

use crate::vectors::{Expect, Vector};
use crate::{f32_bytes, f32_from_bytes};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Shell command of the decoder; the mode is appended as the last argument.
    pub decoder: String,
    /// Per-invocation time limit.
    pub timeout: Duration,
    /// Compare error offsets as well as classes (spec: SHOULD match).
    pub check_offsets: bool,
    /// Also check `merged` mode: bit for bit on vectors without an overlay (`W = W_base` exactly,
    /// ), within the tolerance of the README on the others.
    pub check_merged: bool,
    /// Compare `merged` output bit for bit on overlay vectors too (the reference order of, sign
    /// of zero included), for decoders that claim to follow it.
    pub exact_merged: bool,
}

/// Outcome of one vector.
#[derive(Debug, Clone)]
pub struct VectorResult {
    /// Vector name.
    pub name: String,
    /// "positive" or "negative".
    pub kind: &'static str,
    /// Whether the decoder behaved as required.
    pub passed: bool,
    /// Number of decoder invocations.
    pub cases: usize,
    /// What was checked, or the first failure.
    pub detail: String,
}

/// What one decoder invocation did.
struct Outcome {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    timed_out: bool,
}

const MAX_OUTPUT: u64 = 1 << 30;

fn invoke(opts: &RunOptions, mode: &str, input: &[u8]) -> Result<Outcome, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{} {mode}", opts.decoder))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start decoder: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let input = input.to_vec();
    // A decoder may exit before reading everything (e.g. on bad magic): ignore broken pipes.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut out_pipe).take(MAX_OUTPUT).read_to_end(&mut buf);
        buf
    });
    let mut err_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut err_pipe).take(1 << 16).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if start.elapsed() > opts.timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().map_err(|e| e.to_string())?;
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        status: status.code(),
        stdout,
        stderr,
        timed_out,
    })
}

fn describe(o: &Outcome) -> String {
    if o.timed_out {
        return "timed out".into();
    }
    let err = o.stderr.lines().next().unwrap_or("").trim();
    match o.status {
        Some(c) => format!(
            "exit {c}{}",
            if err.is_empty() {
                String::new()
            } else {
                format!(" ({err})")
            }
        ),
        None => "killed by a signal (crash?)".into(),
    }
}

fn compare_exact(mode: &str, got: &[u8], want: &[f32]) -> Result<(), String> {
    let want_b = f32_bytes(want);
    if got == want_b.as_slice() {
        return Ok(());
    }
    if got.len() != want_b.len() {
        return Err(format!(
            "{mode}: {} bytes of output, expected {}",
            got.len(),
            want_b.len()
        ));
    }
    let g = f32_from_bytes(got);
    let i = g
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
        .unwrap_or(0);
    Err(format!(
        "{mode}: value {i} is {:e} ({:#010x}), expected {:e} ({:#010x})",
        g[i],
        g[i].to_bits(),
        want[i],
        want[i].to_bits()
    ))
}

/// Tolerance of merged values (conformance/README.md): with `r` the rank,
/// `|got - want| <= (r + 2) * 2^-24 * (|W_base| + sum_k |U[i,k] V[k,j]|) + r * 2^-126`.
/// Where the expected value is not finite (an overflow, R-8.5), the same infinity is required, or any
/// NaN for a NaN.
fn compare_merged(got: &[u8], want: &[f32], w_base: &[f32], overlay: &[f32]) -> Result<(), String> {
    if got.len() != want.len() * 4 {
        return Err(format!(
            "merged: {} bytes of output, expected {}",
            got.len(),
            want.len() * 4
        ));
    }
    let g = f32_from_bytes(got);
    // overlay = U [rows, r] ++ V [r, cols]; rows*r + r*cols = overlay.len(), rows*cols = n.
    let n = want.len();
    let len = overlay.len();
    let (rows, r) = (1..=len)
        .filter(|r| len % *r == 0)
        .flat_map(|r| {
            (1..=n)
                .filter(move |rows| n % *rows == 0 && rows * r + r * (n / rows) == len)
                .map(move |rows| (rows, r))
        })
        .next()
        .ok_or("merged: cannot infer overlay shape")?;
    let cols = n / rows;
    let (u, v) = overlay.split_at(rows * r);
    for i in 0..rows {
        for j in 0..cols {
            let idx = i * cols + j;
            if !want[idx].is_finite() {
                let same = if want[idx].is_nan() {
                    g[idx].is_nan()
                } else {
                    g[idx].to_bits() == want[idx].to_bits()
                };
                if !same {
                    return Err(format!("merged: value {idx} is {:e}, expected {:e}", g[idx], want[idx]));
                }
                continue;
            }
            let mag: f64 = f64::from(w_base[idx].abs())
                + (0..r)
                    .map(|k| f64::from(u[i * r + k]).abs() * f64::from(v[k * cols + j]).abs())
                    .sum::<f64>();
            let tol = (r as f64 + 2.0) * 2f64.powi(-24) * mag + r as f64 * 2f64.powi(-126);
            let d = (f64::from(g[idx]) - f64::from(want[idx])).abs();
            if d.is_nan() || d > tol {
                return Err(format!(
                    "merged: value {idx} is {:e}, expected {:e} (tolerance {tol:e})",
                    g[idx], want[idx]
                ));
            }
        }
    }
    Ok(())
}

fn expect_error(o: &Outcome, class: &str, offset: u64, opts: &RunOptions) -> Result<(), String> {
    if o.status != Some(1) || o.timed_out {
        return Err(format!("expected exit 1 with `{class} {offset}`, got {}", describe(o)));
    }
    let line = String::from_utf8_lossy(&o.stdout);
    let mut parts = line.trim_end_matches('\n').split(' ');
    let (got_class, got_off) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if got_class != class {
        return Err(format!("expected error {class}, decoder said {:?}", line.trim_end()));
    }
    if opts.check_offsets && got_off != offset.to_string() {
        return Err(format!(
            "expected {class} at offset {offset}, decoder said offset {got_off:?}"
        ));
    }
    Ok(())
}

/// Runs one vector.
pub fn run_vector(v: &Vector, opts: &RunOptions) -> VectorResult {
    let mut cases = 0;
    let result = |kind: &'static str, r: Result<String, String>, cases: usize| VectorResult {
        name: v.name.clone(),
        kind,
        passed: r.is_ok(),
        cases,
        detail: r.unwrap_or_else(|e| e),
    };
    match &v.expect {
        Expect::Valid {
            w_base,
            overlay,
            merged,
        } => {
            let r = (|| {
                cases += 1;
                let o = invoke(opts, "decode", &v.record)?;
                if o.status != Some(0) || o.timed_out {
                    let said = String::from_utf8_lossy(&o.stdout[..o.stdout.len().min(80)])
                        .trim()
                        .to_string();
                    return Err(format!("decode: expected exit 0, got {} {said}", describe(&o)));
                }
                compare_exact("decode", &o.stdout, w_base)?;
                let mut checked = format!("{} values bit-exact", w_base.len());
                if overlay.is_empty() && opts.check_merged {
                    // No overlay: the merged weight is W_base exactly, -0 included.
                    cases += 1;
                    let o = invoke(opts, "merged", &v.record)?;
                    if o.status != Some(0) || o.timed_out {
                        return Err(format!("merged: expected exit 0, got {}", describe(&o)));
                    }
                    compare_exact("merged", &o.stdout, w_base)?;
                    checked += ", merged = W_base bit-exact";
                }
                if !overlay.is_empty() {
                    cases += 1;
                    let o = invoke(opts, "overlay", &v.record)?;
                    if o.status != Some(0) {
                        return Err(format!("overlay: expected exit 0, got {}", describe(&o)));
                    }
                    compare_exact("overlay", &o.stdout, overlay)?;
                    checked += &format!(", {} overlay values bit-exact", overlay.len());
                    if opts.check_merged {
                        cases += 1;
                        let o = invoke(opts, "merged", &v.record)?;
                        if o.status != Some(0) {
                            return Err(format!("merged: expected exit 0, got {}", describe(&o)));
                        }
                        if opts.exact_merged {
                            compare_exact("merged", &o.stdout, merged)?;
                            checked += ", merged bit-exact";
                        } else {
                            compare_merged(&o.stdout, merged, w_base, overlay)?;
                            checked += ", merged within tolerance";
                        }
                    }
                }
                Ok(checked)
            })();
            result("positive", r, cases)
        }
        Expect::Invalid { error, offset } => {
            let r = invoke(opts, "decode", &v.record)
                .and_then(|o| expect_error(&o, error.name(), *offset, opts))
                .map(|_| format!("{} at {offset}", error.name()));
            result("negative", r, 1)
        }
        Expect::EveryPrefixTruncated => {
            let r = (|| {
                for len in 0..v.record.len() {
                    cases += 1;
                    let o = invoke(opts, "decode", &v.record[..len])?;
                    expect_error(&o, "truncated", len as u64, opts)
                        .map_err(|e| format!("prefix of {len} bytes: {e}"))?;
                }
                Ok(format!("all {} prefixes truncated", v.record.len()))
            })();
            result("negative", r, cases)
        }
    }
}

/// Checks a vector against our own decoder in process (no external program): used by the
/// generator to refuse an inconsistent vector, and by the tests for every decode path.
pub fn check_in_process(v: &Vector, path: uc_decode::Path) -> Result<(), String> {
    use uc_decode::Record;
    match &v.expect {
        Expect::Valid {
            w_base,
            overlay,
            merged,
        } => {
            let rec = Record::parse(&v.record).map_err(|e| format!("rejected a valid record: {e}"))?;
            let mut w = vec![0f32; w_base.len()];
            rec.decode_with(path, &mut w).map_err(|e| e.to_string())?;
            compare_exact("decode", &f32_bytes(&w), w_base)?;
            let r = rec.overlay_rank() as usize;
            let mut u = vec![0f32; rec.rows() as usize * r];
            let mut vv = vec![0f32; r * rec.cols() as usize];
            rec.overlay_u_into(&mut u)
                .and_then(|_| rec.overlay_v_into(&mut vv))
                .map_err(|e| e.to_string())?;
            compare_exact("overlay", &f32_bytes(&[u, vv].concat()), overlay)?;
            rec.merge_overlay_into(&mut w).map_err(|e| e.to_string())?;
            // Our merge follows the reference order exactly, so it must be bit-exact; without an
            // overlay it must leave W_base untouched.
            let want = if merged.is_empty() { w_base } else { merged };
            compare_exact("merged", &f32_bytes(&w), want)?;
            // The streaming merge gives the same bits.
            let streamed: Vec<f32> = rec.merged_blocks().flat_map(|b| b.as_slice().to_vec()).collect();
            compare_exact("merged_blocks", &f32_bytes(&streamed), want)?;
            Ok(())
        }
        Expect::Invalid { error, offset } => match Record::parse(&v.record) {
            Ok(_) => Err(format!("accepted an invalid record (expected {})", error.name())),
            Err(e) if e.kind == *error && e.offset == *offset => Ok(()),
            Err(e) => Err(format!(
                "expected {} at {offset}, got {} at {}",
                error.name(),
                e.kind.name(),
                e.offset
            )),
        },
        Expect::EveryPrefixTruncated => {
            Record::parse(&v.record).map_err(|e| format!("the full record must be valid: {e}"))?;
            for len in 0..v.record.len() {
                match Record::parse(&v.record[..len]) {
                    Err(e) if e.kind == uc_format::ErrorKind::Truncated && e.offset == len as u64 => {}
                    other => return Err(format!("prefix of {len} bytes: {other:?}")),
                }
            }
            Ok(())
        }
    }
}
