//! The harness shared by the `uc` integration tests: scratch directories, running `uc`, reading
//! directories, and tiny models written here.
#![allow(dead_code)] // each test binary uses a part

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use uc_format::num::{f32_to_bf16_bits, f32_to_f16_bits};
use uc_pack::safetensors::Dtype;

pub const UC: &str = env!("CARGO_BIN_EXE_uc");
pub const EPOCH: &str = "1700000000";

// ---------------------------------------------------------------------------------------------
// Scratch directories, processes, files.

/// A fresh directory under cargo's test scratch area, removed when the test passes (kept for a
/// look when it fails).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uc-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch directory kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `uc <args>` with a fixed time stamp and without the test hook or progress output.
pub fn uc_cmd<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut c = Command::new(UC);
    c.args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("UC_TEST_CRASH_AT")
        .env_remove("UC_PROGRESS")
        .stdin(Stdio::null());
    c
}

pub fn uc<S: AsRef<OsStr>>(args: &[S]) -> Output {
    uc_cmd(args).output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success; returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "uc failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Asserts exit code 2 and a one-line `uc: error:` message; returns stderr.
pub fn fails(o: Output) -> String {
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, got {}:\n{e}", o.status);
    assert!(e.contains("uc: error: "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

pub fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file under `dir` (relative path → bytes).
pub fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts that two packs hold the same files with the same bytes.
pub fn assert_same_pack(a: &Path, b: &Path) {
    let (fa, fb) = (dir_files(a), dir_files(b));
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    assert!(fa.len() >= 3, "{:?}", fa.keys());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Names in a directory, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Tiny models.

/// xorshift64*: deterministic test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn unit(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A weight matrix: a rank-3 component plus uniform noise (so an overlay has something to catch).
pub fn weights(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let a: Vec<f32> = (0..rows * 3).map(|_| rng.unit()).collect();
    let b: Vec<f32> = (0..3 * cols).map(|_| rng.unit()).collect();
    (0..rows * cols)
        .map(|idx| {
            let (i, j) = (idx / cols, idx % cols);
            let low: f32 = (0..3).map(|t| a[i * 3 + t] * b[t * cols + j]).sum();
            0.02 * low + 0.02 * rng.unit()
        })
        .collect()
}

#[derive(Clone)]
pub struct SrcTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// The exact values (what the safetensors bytes decode to), for float tensors.
    pub values: Vec<f32>,
    pub bytes: Vec<u8>,
}

pub fn float_tensor(name: &str, dtype: Dtype, shape: &[u64], v: Vec<f32>) -> SrcTensor {
    let (bytes, values): (Vec<u8>, Vec<f32>) = match dtype {
        Dtype::F32 => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), v),
        Dtype::F16 => {
            let h: Vec<u16> = v.iter().map(|&x| f32_to_f16_bits(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|&x| uc_format::num::f16_to_f32(x)).collect(),
            )
        }
        Dtype::Bf16 => {
            let h: Vec<u16> = v.iter().map(|&x| f32_to_bf16_bits(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|&x| f32::from_bits(u32::from(x) << 16)).collect(),
            )
        }
        d => panic!("not a float dtype: {d:?}"),
    };
    SrcTensor {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        values,
        bytes,
    }
}

pub fn matrix(rng: &mut Rng, name: &str, dtype: Dtype, rows: u64, cols: u64) -> SrcTensor {
    float_tensor(name, dtype, &[rows, cols], weights(rng, rows as usize, cols as usize))
}

pub fn vector(rng: &mut Rng, name: &str, n: u64) -> SrcTensor {
    float_tensor(name, Dtype::F32, &[n], (0..n).map(|_| 1.0 + 0.1 * rng.unit()).collect())
}

/// Writes a plain safetensors file: 8-byte LE header length, JSON header, data (tensors in name order).
pub fn write_safetensors(path: &Path, tensors: &[SrcTensor]) {
    let mut sorted: Vec<&SrcTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut data = Vec::new();
    for t in &sorted {
        let b = data.len();
        data.extend_from_slice(&t.bytes);
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [b, data.len()]}),
        );
    }
    let mut text = Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(text.as_bytes());
    file.extend_from_slice(&data);
    std::fs::write(path, file).unwrap();
}

/// A model directory: model.safetensors, config.json (with `hidden_size`), tokenizer.json, LICENSE.
pub fn write_model(dir: &Path, tensors: &[SrcTensor], hidden: u64) {
    std::fs::create_dir_all(dir).unwrap();
    write_safetensors(&dir.join("model.safetensors"), tensors);
    let config = json!({"hidden_size": hidden, "model_type": "uc-test", "num_hidden_layers": 1});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), br#"{"version": "1.0"}"#).unwrap();
    std::fs::write(dir.join("LICENSE"), b"test license\n").unwrap();
}

/// The main test model (hidden size 128): four quantized weights of F32, F16 and BF16, and five
/// tensors kept verbatim (the embedding by size: 24 x 128 is below the 4096 weights at which
/// tensors are quantized; norms by name, biases as 1-D, an I32 matrix by dtype). Quantized
/// embeddings are exercised by the calibration tests' Llama model.
pub fn tiny_tensors() -> Vec<SrcTensor> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut v = vec![
        matrix(&mut r, "model.embed_tokens.weight", Dtype::Bf16, 24, 128),
        vector(&mut r, "model.layers.0.input_layernorm.weight", 128),
        matrix(&mut r, "model.layers.0.mlp.down_proj.weight", Dtype::F32, 128, 256),
        matrix(&mut r, "model.layers.0.mlp.up_proj.weight", Dtype::F32, 256, 128),
        vector(&mut r, "model.layers.0.mlp.up_proj.bias", 256),
        matrix(&mut r, "model.layers.0.self_attn.o_proj.weight", Dtype::F16, 64, 128),
        matrix(&mut r, "model.layers.0.self_attn.q_proj.weight", Dtype::Bf16, 128, 128),
        vector(&mut r, "model.norm.weight", 128),
    ];
    // A 2-D integer tensor large enough to be quantized were it a float: kept verbatim.
    let ints: Vec<u8> = (0..64 * 128i32).flat_map(|i| (i % 97 - 48).to_le_bytes()).collect();
    v.push(SrcTensor {
        name: "model.layers.0.self_attn.rel_bucket".into(),
        dtype: Dtype::I32,
        shape: vec![64, 128],
        values: Vec::new(),
        bytes: ints,
    });
    v
}

/// Names of the tiny model's quantized tensors, sorted.
pub const TINY_QUANTIZED: [&str; 4] = [
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.self_attn.q_proj.weight",
];

pub fn tiny_model(dir: &Path) -> Vec<SrcTensor> {
    let t = tiny_tensors();
    write_model(dir, &t, 128);
    t
}

/// A smaller model (hidden size 64, two quantized weights) for the runs of the allocator, whose
/// analysis tries every (bits, rank) pair.
pub fn small_model(dir: &Path) {
    let mut r = Rng(42);
    write_model(
        dir,
        &[
            matrix(&mut r, "layers.0.mlp.w_in.weight", Dtype::F32, 128, 64),
            matrix(&mut r, "layers.0.mlp.w_out.weight", Dtype::F32, 64, 128),
            vector(&mut r, "layers.0.norm.weight", 64),
        ],
        64,
    );
}

/// A model whose two weights (1024 x 64 and 64 x 1024, hidden size 64) have enough rows for the
/// default analysis to measure the widths other than the reference on a row sample.
pub fn sampled_model(dir: &Path) {
    let mut r = Rng(7);
    write_model(
        dir,
        &[
            matrix(&mut r, "layers.0.mlp.w_in.weight", Dtype::F32, 1024, 64),
            matrix(&mut r, "layers.0.mlp.w_out.weight", Dtype::F32, 64, 1024),
            vector(&mut r, "layers.0.norm.weight", 64),
        ],
        64,
    );
}

// ---------------------------------------------------------------------------------------------
// Measured runs: exit code, wall time and peak memory of the child.

/// What a measured run took.
pub struct Measured {
    /// The process output (stderr without the measurement line).
    pub out: Output,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident set of the child, kB (GNU time's %M).
    pub max_rss_kb: u64,
}

/// Runs `cmd` under GNU time (`/usr/bin/time`, Debian package `time`, installed by .ci/run) and
/// returns its output, wall time and peak RSS. Panics when GNU time is missing: a bound that is not
/// measured is not checked.
pub fn measured(cmd: &Command) -> Measured {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "/usr/bin/time (Debian package `time`) is needed to measure peak memory"
    );
    let mut c = Command::new(time);
    c.arg("-f")
        .arg("UC_TEST_MAXRSS_KB=%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c.stdin(Stdio::null());
    let start = std::time::Instant::now();
    let mut out = c.output().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let (rest, line) = err.trim_end().rsplit_once('\n').unwrap_or(("", err.trim_end()));
    let max_rss_kb = line
        .trim()
        .strip_prefix("UC_TEST_MAXRSS_KB=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak-memory line from GNU time in:\n{err}"));
    out.stderr = rest.as_bytes().to_vec();
    Measured {
        out,
        seconds,
        max_rss_kb,
    }
}

impl Measured {
    /// Asserts the exit code and the time and memory bounds; returns stderr.
    pub fn expect(&self, code: i32, max_seconds: f64, max_rss_mb: u64) -> String {
        let e = String::from_utf8_lossy(&self.out.stderr).into_owned();
        assert_eq!(self.out.status.code(), Some(code), "exit {}:\n{e}", self.out.status);
        assert!(
            self.seconds < max_seconds,
            "took {:.1} s (bound {max_seconds} s):\n{e}",
            self.seconds
        );
        assert!(
            self.max_rss_kb < max_rss_mb * 1024,
            "peak RSS {} kB (bound {max_rss_mb} MB):\n{e}",
            self.max_rss_kb
        );
        assert!(!e.contains("panicked"), "{e}");
        e
    }
}

/// Every file and directory under `dir`, with each file's bytes and each link's target: what a
/// user would lose.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, Some(target.to_string_lossy().as_bytes().to_vec()));
            } else if t.is_dir() {
                out.insert(format!("{rel}/"), None);
                walk(base, &path, out);
            } else if !t.is_file() {
                // A FIFO, socket or device: recorded by kind, never opened (it could block).
                out.insert(rel, Some(format!("{t:?}").into_bytes()));
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
