//! Integration tests of the `uc` command line: `uc compress`, `uc unpack` and `uc inspect`, run as
//! a separate process on tiny models written here (a few tensors of a few thousand weights).
//!
//! Every run sets `SOURCE_DATE_EPOCH`, so two runs of the same command write the same bytes.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use uc_decode::Record;
use uc_format::num::{f32_to_bf16_bits, f32_to_f16_bits};
use uc_pack::safetensors::{Dtype, Header, parse_header};

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Reading packs and unpacked models.

struct StFile {
    bytes: Vec<u8>,
    header: Header,
}

impl StFile {
    fn read(path: &Path) -> StFile {
        let bytes = std::fs::read(path).unwrap();
        let header = parse_header(&bytes, bytes.len() as u64).unwrap();
        StFile { bytes, header }
    }

    fn data(&self, name: &str) -> &[u8] {
        let t = self.header.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
        let b = self.header.file_offset(t) as usize;
        &self.bytes[b..b + t.len() as usize]
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        assert_eq!(self.header.tensor(name).unwrap().dtype, Dtype::F32);
        self.data(name)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn u16s(&self, name: &str) -> Vec<u16> {
        self.data(name)
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// Names of the tensors other than padding, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .header
            .tensors
            .iter()
            .filter(|t| !t.is_padding())
            .map(|t| t.name.clone())
            .collect();
        v.sort();
        v
    }
}

/// `W_base` of a record (and with the overlay merged), by the reference decoder.
fn decode(record: &[u8], merge: bool) -> Vec<f32> {
    let rec = Record::parse(record).unwrap();
    let mut v = vec![0f32; rec.len() as usize];
    rec.decode_into(&mut v).unwrap();
    if merge {
        rec.merge_overlay_into(&mut v).unwrap();
    }
    v
}

fn rel_l2(reference: &[f32], x: &[f32]) -> f64 {
    assert_eq!(reference.len(), x.len());
    let (mut e, mut n) = (0f64, 0f64);
    for (&a, &b) in reference.iter().zip(x) {
        e += (f64::from(a) - f64::from(b)).powi(2);
        n += f64::from(a).powi(2);
    }
    (e / n).sqrt()
}

fn verify(pack: &Path) -> uc_verify::PackReport {
    let r = uc_verify::verify_pack(pack, &uc_verify::PackOptions::default()).unwrap();
    assert!(r.verified, "{:?}", r.failures().collect::<Vec<_>>());
    r
}

// ---------------------------------------------------------------------------------------------
// 1. Determinism.

#[test]
fn same_command_and_any_thread_count_give_byte_identical_packs() {
    let s = Scratch::new("determinism");
    let src = s.join("tiny");
    tiny_model(&src);
    let run = |dir: &str, threads: &str| {
        let out = s.join(dir).join("pack");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        ok(uc(&[
            "compress",
            p(&src),
            "--output-dir",
            p(&out),
            "--bits",
            "4",
            "--rank",
            "4",
            "--threads",
            threads,
        ]));
        out
    };
    let a = run("a", "2");
    let b = run("b", "2");
    let c = run("c", "1");
    assert_same_pack(&a, &b);
    assert_same_pack(&a, &c);
    // The time stamp is SOURCE_DATE_EPOCH's.
    let m: Value = serde_json::from_slice(&std::fs::read(a.join("ultracompress.json")).unwrap()).unwrap();
    assert_eq!(m["created_at"], "2023-11-14T22:13:20Z");
}

// ---------------------------------------------------------------------------------------------
// 2. Resume after a crash: the test hook, then a real SIGKILL.

/// `uc compress` with `UC_TEST_CRASH_AT=k`; asserts that it aborted at the hook.
#[cfg(unix)]
fn compress_crashing_at(k: u64, args: &[&str]) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let o = uc_cmd(args).env("UC_TEST_CRASH_AT", k.to_string()).output().unwrap();
    if o.status.success() {
        return false;
    }
    let e = stderr(&o);
    assert_eq!(
        o.status.signal(),
        Some(6),
        "k={k}: expected SIGABRT, got {}:\n{e}",
        o.status
    );
    assert!(e.contains(&format!("UC_TEST_CRASH_AT={k}: aborting")), "{e}");
    true
}

#[cfg(unix)]
#[test]
fn a_run_aborted_at_any_journal_event_resumes_to_the_same_bytes() {
    let s = Scratch::new("crash-hook");
    let src = s.join("tiny");
    tiny_model(&src);
    let base = s.join("base").join("pack");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "compress",
            p(&src),
            "--output-dir",
            p(out),
            "--bits",
            "4",
            "--rank",
            "0",
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let v = json_of(&ok(uc(&args(&base))));
    assert_eq!(v["resumed_steps"], 0);
    // Events: job.json (2), per tensor the record and its meta (4 each), install.json (2).
    let last = 2 + 4 * TINY_QUANTIZED.len() as u64 + 2;
    for k in [1, 2, 3, 5, 6, 8, 13, last - 1, last, last + 1] {
        let parent = s.join(&format!("k{k}"));
        std::fs::create_dir_all(&parent).unwrap();
        let out = parent.join("pack");
        let a = args(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let crashed = compress_crashing_at(k, &a);
        assert_eq!(crashed, k <= last, "k={k}: the run has {last} journal events");
        if !crashed {
            assert_same_pack(&base, &out);
            assert_eq!(names_in(&parent), ["pack"], "k={k}");
            continue;
        }
        // Nothing at the final path; only the work directory beside it.
        assert!(!out.exists(), "k={k}: a crashed run left {}", out.display());
        assert_eq!(names_in(&parent), [".pack.uc-work"], "k={k}");
        if k >= last - 1 {
            // Stopped just before the rename into place: the pack is complete (and was verified)
            // in the work directory.
            assert_same_pack(&base, &parent.join(".pack.uc-work").join("pack"));
        }
        let v = json_of(&ok(uc(&a)));
        // Tensors whose record and meta were both renamed into the journal are resumed.
        let complete = ((k - 2.min(k)) / 4).min(TINY_QUANTIZED.len() as u64);
        assert_eq!(v["resumed_steps"], complete, "k={k}");
        assert_same_pack(&base, &out);
        assert_eq!(names_in(&parent), ["pack"], "k={k}: stray files beside the pack");
    }
}

#[cfg(unix)]
#[test]
fn the_allocator_path_is_deterministic_and_resumable() {
    let s = Scratch::new("allocator");
    let src = s.join("small");
    small_model(&src);
    let args = |out: &Path, threads: &str| -> Vec<String> {
        [
            "compress",
            p(&src),
            "--output-dir",
            p(out),
            "--bpw",
            "4.5",
            "--threads",
            threads,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let out_of = |tag: &str| {
        let d = s.join(tag);
        std::fs::create_dir_all(&d).unwrap();
        d.join("pack")
    };
    let base = out_of("t2");
    let v = json_of(&ok(uc(&args(&base, "2"))));
    let bpw_records = v["bpw_records"].as_f64().unwrap();
    assert!(bpw_records <= 4.5 && bpw_records > 3.5, "{v}");
    assert_eq!(v["tensors_quantized"], 2);
    verify(&base);
    let one = out_of("t1");
    ok(uc(&args(&one, "1")));
    assert_same_pack(&base, &one);

    // Events: job.json (2), two candidate files (2 each), two records with metas (4 each), install (2).
    for (k, resumed) in [(4u64, 1u64), (10, 3)] {
        let out = out_of(&format!("k{k}"));
        let a = args(&out, "2");
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(compress_crashing_at(k, &a), "k={k}");
        assert!(!out.exists());
        let v = json_of(&ok(uc(&a)));
        assert_eq!(v["resumed_steps"], resumed, "k={k}");
        assert_same_pack(&base, &out);
        assert_eq!(names_in(out.parent().unwrap()), ["pack"]);
    }
}

/// Size-weighted mean squared relative error of the quantized tensors of a `--json` summary (the
/// allocator's objective) and their bits per weight.
fn objective_and_bpw(v: &Value) -> (f64, f64) {
    let (mut e, mut bits, mut n) = (0f64, 0f64, 0f64);
    for t in v["tensors"].as_array().unwrap() {
        if t["bits"].is_null() {
            continue;
        }
        let k: f64 = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap())
            .product();
        e += k * t["rel_l2"].as_f64().unwrap().powi(2);
        bits += 8.0 * t["bytes"].as_f64().unwrap();
        n += k;
    }
    (e / n, bits / n)
}

#[cfg(unix)]
#[test]
fn the_sampled_analysis_is_deterministic_close_to_the_exact_one_and_keeps_its_own_journal() {
    let s = Scratch::new("sampled");
    let src = s.join("model");
    sampled_model(&src);
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["compress", p(&src), "--output-dir", p(out), "--bpw", "3.5", "--json"]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let out_of = |tag: &str| {
        let d = s.join(tag);
        std::fs::create_dir_all(&d).unwrap();
        d.join("pack")
    };
    // Default analysis: any thread count, the same bytes, within the budget.
    let base = out_of("t2");
    let sampled = json_of(&ok(uc(&args(&base, &["--threads", "2"]))));
    let one = out_of("t1");
    ok(uc(&args(&one, &["--threads", "1", "--analysis", "sampled"])));
    assert_same_pack(&base, &one);
    verify(&base);
    // The exact analysis: also within the budget; the sampled one's error is at most a few
    // percent above it.
    let exact = json_of(&ok(uc(&args(&out_of("exact"), &["--analysis", "exact"]))));
    let (es, bs) = objective_and_bpw(&sampled);
    let (ee, be) = objective_and_bpw(&exact);
    assert!(bs <= 3.5 && be <= 3.5 && bs > 3.3, "{bs} {be}");
    assert!(es <= ee * 1.05, "sampled {es} vs exact {ee}");

    // Killed after the first tensor's candidates (events: job.json 2, each candidate file 2), or
    // after both candidate files and the first record file but before its metadata: the rerun
    // resumes what is complete and writes the same bytes.
    for (k, resumed) in [(4u64, 1u64), (8, 2)] {
        let out = out_of(&format!("k{k}"));
        let a = args(&out, &[]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(compress_crashing_at(k, &a), "k={k}");
        let v = json_of(&ok(uc(&a)));
        assert_eq!(v["resumed_steps"], resumed, "k={k}");
        assert_same_pack(&base, &out);
    }

    // A journal of the exact analysis is another job for the sampled one: refused, not misread.
    // Events: job.json (2), the first tensor's candidates (2).
    let out = out_of("journal");
    let exact_args = args(&out, &["--analysis", "exact"]);
    let exact_args: Vec<&str> = exact_args.iter().map(String::as_str).collect();
    assert!(compress_crashing_at(4, &exact_args));
    let e = fails(uc(&args(&out, &[])));
    assert!(e.contains("other inputs or options"), "{e}");
    let v = json_of(&ok(uc(&exact_args)));
    assert_eq!(v["resumed_steps"], 1);
    assert_eq!(v["tensors"], exact["tensors"]);
}

#[cfg(unix)]
#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_bytes() {
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new("sigkill");
    let src = s.join("medium");
    let mut r = Rng(7);
    let mut tensors: Vec<SrcTensor> = (0..6)
        .map(|i| matrix(&mut r, &format!("layers.{i}.mlp.weight"), Dtype::F32, 256, 192))
        .collect();
    tensors.push(vector(&mut r, "norm.weight", 256));
    write_model(&src, &tensors, 256);
    let args = |out: &Path| -> Vec<String> {
        [
            "compress",
            p(&src),
            "--output-dir",
            p(out),
            "--bits",
            "3",
            "--rank",
            "4",
        ]
        .map(String::from)
        .to_vec()
    };
    let base = s.join("base").join("pack");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    let t0 = std::time::Instant::now();
    ok(uc(&args(&base)));
    let full = t0.elapsed();

    // Kill points: fixed delays (wherever the run happens to be then), and the moment a given
    // journal file appears (the job just started; mid-way through the encoding; the last record
    // done, so the kill lands while the pack is written, verified or installed).
    let points: [(&str, u64); 5] = [
        ("", 30),
        ("", 250),
        ("job.json", 0),
        ("rec-000002.ucr", 0),
        ("rec-000005.json", 0),
    ];
    for (i, (file, ms)) in points.into_iter().enumerate() {
        let what = format!("kill after {ms} ms / {file:?} (uninterrupted: {full:?})");
        let parent = s.join(&format!("kill{i}"));
        std::fs::create_dir_all(&parent).unwrap();
        let out = parent.join("pack");
        let work = parent.join(".pack.uc-work");
        let mut child = uc_cmd(&args(&out))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if file.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        } else {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !work.join(file).exists() && child.try_wait().unwrap().is_none() {
                assert!(std::time::Instant::now() < deadline, "{what}: never appeared");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // Whatever the moment, the final path holds nothing or the complete pack.
        if out.exists() {
            assert_same_pack(&base, &out);
        }
        if out.exists() && !work.exists() {
            // It had finished (or was killed after its last step).
            assert!(file.is_empty(), "{what}: the run was not interrupted");
            continue;
        }
        assert_eq!(status.signal(), Some(9), "{what}: {status}");
        let journal = if work.exists() { names_in(&work) } else { Vec::new() };
        if !file.is_empty() {
            assert!(journal.iter().any(|n| n == "job.json"), "{what}: {journal:?}");
        }
        // The resumed run takes every record whose record and meta files were both journaled.
        let journaled = journal
            .iter()
            .filter(|n| n.starts_with("rec-") && n.ends_with(".json"))
            .count();
        let mut a = args(&out);
        a.push("--json".into());
        let v = json_of(&ok(uc(&a)));
        assert_eq!(v["resumed_steps"], journaled, "{what}: {journal:?}");
        assert_same_pack(&base, &out);
        assert_eq!(names_in(&parent), ["pack"], "{what}: stray files beside the pack");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Existing output, --fresh, a journal of other options.

#[cfg(unix)]
#[test]
fn an_existing_output_is_kept_unless_fresh_and_a_foreign_journal_is_refused() {
    let s = Scratch::new("existing");
    let src = s.join("small");
    small_model(&src);
    let out = s.join("out").join("pack");
    let run = |out: &Path, bits: &str, extra: &[&str]| {
        let mut a = vec![
            "compress",
            p(&src),
            "--output-dir",
            p(out),
            "--bits",
            bits,
            "--rank",
            "0",
        ];
        a.extend_from_slice(extra);
        uc(&a)
    };
    // The parent directory is created.
    ok(run(&out, "4", &[]));
    let before = dir_files(&out);

    let e = fails(run(&out, "3", &[]));
    assert!(
        e.contains(p(&out)) && e.contains("already exists") && e.contains("--fresh"),
        "{e}"
    );
    assert_eq!(dir_files(&out), before, "the old pack was touched");
    assert_eq!(names_in(out.parent().unwrap()), ["pack"]);

    ok(run(&out, "3", &["--fresh"]));
    assert_ne!(dir_files(&out), before);
    verify(&out);
    let v = json_of(&ok(uc(&["inspect", p(&out), "--json"])));
    assert!(
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["bits"].is_null() || t["bits"] == 3)
    );
    assert_eq!(names_in(out.parent().unwrap()), ["pack"]);

    // A journal left by a run with other options.
    let out2 = s.join("out2").join("pack");
    std::fs::create_dir_all(out2.parent().unwrap()).unwrap();
    let a4: Vec<&str> = vec![
        "compress",
        p(&src),
        "--output-dir",
        p(&out2),
        "--bits",
        "4",
        "--rank",
        "0",
    ];
    assert!(compress_crashing_at(6, &a4));
    let e = fails(run(&out2, "3", &[]));
    assert!(
        e.contains(".pack.uc-work") && e.contains("unfinished run") && e.contains("rerun") && e.contains("--fresh"),
        "{e}"
    );
    assert!(!out2.exists());
    ok(run(&out2, "3", &["--fresh"]));
    assert_eq!(names_in(out2.parent().unwrap()), ["pack"]);

    // A run killed after the pack was renamed into place but before its journal was removed: the
    // same command completes it (instead of refusing the existing output); another one refuses.
    let out3 = s.join("out3").join("pack");
    std::fs::create_dir_all(out3.parent().unwrap()).unwrap();
    let a3: Vec<&str> = vec![
        "compress",
        p(&src),
        "--output-dir",
        p(&out3),
        "--bits",
        "3",
        "--rank",
        "0",
    ];
    assert!(compress_crashing_at(12, &a3)); // install.json renamed: the next step is the rename
    let work = out3.parent().unwrap().join(".pack.uc-work");
    std::fs::rename(work.join("pack"), &out3).unwrap();
    let e = fails(run(&out3, "4", &[]));
    assert!(e.contains("already exists"), "{e}");
    let mut a3j = a3.clone();
    a3j.push("--json");
    let v = json_of(&ok(uc(&a3j)));
    assert_eq!(v["resumed_steps"], 2);
    assert_same_pack(&out, &out3);
    assert_eq!(names_in(out3.parent().unwrap()), ["pack"]);
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input.

#[test]
fn bad_input_gets_exit_2_and_a_message_naming_the_file_or_tensor() {
    let s = Scratch::new("bad-input");
    let out = s.join("out").join("pack");
    let compress = |src: &Path, extra: &[&str]| {
        let mut a = vec!["compress", p(src), "--output-dir", p(&out)];
        a.extend_from_slice(extra);
        uc(&a)
    };
    // Neither the pack nor a journal (the parent directory may have been created).
    let nothing_written = || {
        assert!(!out.exists());
        if s.join("out").exists() {
            assert!(names_in(&s.join("out")).is_empty(), "{:?}", names_in(&s.join("out")));
        }
    };
    let forced = ["--bits", "4", "--rank", "0"];

    // A directory that does not exist.
    let e = fails(compress(&s.join("nope"), &forced));
    assert!(e.contains("nope") && e.contains("no such directory"), "{e}");
    nothing_written();

    // A model hub id.
    let o = uc_cmd(&["compress", "org/model", "--bits", "4"])
        .current_dir(&s.0)
        .output()
        .unwrap();
    let e = fails(o);
    assert!(
        e.contains("\"org/model\"") && e.contains("offline") && e.contains("local"),
        "{e}"
    );
    assert!(!s.join("models").exists());

    // No safetensors.
    let empty = s.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("config.json"), br#"{"hidden_size": 64}"#).unwrap();
    let e = fails(compress(&empty, &forced));
    assert!(e.contains(p(&empty)) && e.contains("model.safetensors"), "{e}");
    nothing_written();

    // A corrupt safetensors header.
    let corrupt = s.join("corrupt");
    small_model(&corrupt);
    let st = corrupt.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    bytes[8..16].copy_from_slice(b"{\"a\": [1");
    std::fs::write(&st, &bytes).unwrap();
    let e = fails(compress(&corrupt, &forced));
    assert!(e.contains(p(&st)), "{e}");
    nothing_written();

    // A NaN in a tensor to quantize: named with its index; no journal is left.
    let nan = s.join("nan");
    let mut t = tiny_tensors();
    let up = t
        .iter_mut()
        .find(|t| t.name == "model.layers.0.mlp.up_proj.weight")
        .unwrap();
    up.bytes[4 * 1234..4 * 1235].copy_from_slice(&f32::NAN.to_le_bytes());
    write_model(&nan, &t, 128);
    let e = fails(compress(&nan, &forced));
    assert!(
        e.contains("tensor model.layers.0.mlp.up_proj.weight: weight 1234 is NaN"),
        "{e}"
    );
    nothing_written();

    // The shapes disagree with config.json.
    let mism = s.join("mismatch");
    write_model(&mism, &tiny_tensors(), 100);
    let e = fails(compress(&mism, &forced));
    assert!(
        e.contains("tensor model.layers.0.mlp.down_proj.weight") && e.contains("hidden size 100"),
        "{e}"
    );
    nothing_written();

    // The output under a regular file: nothing there, the file untouched.
    let good = s.join("good");
    small_model(&good);
    let file = s.join("a-file");
    std::fs::write(&file, b"keep me").unwrap();
    let under = file.join("pack");
    let e = fails(uc(&["compress", p(&good), "--output-dir", p(&under), "--bits", "4"]));
    assert!(e.contains(p(&file)), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A read-only parent (where permissions are enforced: not for root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = s.join("read-only");
        std::fs::create_dir_all(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let e = fails(uc(&[
                "compress",
                p(&good),
                "--output-dir",
                p(&ro.join("pack")),
                "--bits",
                "4",
            ]));
            assert!(e.contains(p(&ro)), "{e}");
            assert!(names_in(&ro).is_empty());
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // A device this build cannot encode on: the driver is probed first, so the message says what
    // is missing (on a machine without the driver, exactly that); a malformed name is a usage error.
    let e = fails(compress(&good, &["--device", "cuda:0"]));
    assert!(e.contains("--device cuda:0") && e.contains("cpu"), "{e}");
    let devices = json_of(&ok(uc(&["compress", "--list-devices", "--json"])));
    if devices["cuda"]["driver"].is_null() {
        assert!(e.contains("no CUDA driver found"), "{e}");
    }
    // The device is parsed by clap into a typed value: a usage error (exit 2) before any work.
    let o = compress(&good, &["--device", "gpu0"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("invalid value 'gpu0'") && e.contains("expected cpu or cuda:N"),
        "{e}"
    );
    nothing_written();

    // An impossible budget: the message gives the smallest achievable figure, which is exactly the
    // bpw of the cheapest encoding (2 bits, no overlay).
    let e = fails(compress(&good, &["--bpw", "1.0", "--rank", "0"]));
    let min: f64 = e
        .split("takes ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no minimum in: {e}"));
    assert!(e.contains("1.000 bits per weight cannot be met"), "{e}");
    nothing_written();
    let cheapest = s.join("cheapest").join("pack");
    let v = json_of(&ok(uc(&[
        "compress",
        p(&good),
        "--output-dir",
        p(&cheapest),
        "--bits",
        "2",
        "--rank",
        "0",
        "--json",
    ])));
    assert_eq!(
        format!("{min:.3}"),
        format!("{:.3}", v["bpw_records"].as_f64().unwrap())
    );
    // No journal was kept: a new budget needs no --fresh.
    ok(compress(&good, &["--bpw", "3", "--rank", "0"]));
    verify(&out);
}

// ---------------------------------------------------------------------------------------------
// 5. Unpack.

#[test]
fn unpack_round_trips_and_refuses_bad_packs() {
    let s = Scratch::new("unpack");
    let src = s.join("tiny");
    let tensors = tiny_model(&src);
    let pack = s.join("pack");
    ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "4",
    ]));
    let packed = StFile::read(&pack.join("model.safetensors"));
    let unpack = |out: &Path, extra: &[&str]| {
        let mut a = vec!["unpack", p(&pack), "--output-dir", p(out)];
        a.extend_from_slice(extra);
        uc(&a)
    };

    // f32: verbatim tensors byte-identical, records exactly the reference decode, close to the source.
    let out = s.join("f32");
    let v = json_of(&ok(unpack(&out, &["--json"])));
    assert_eq!(v["decoded"], 4);
    assert_eq!(v["copied"], 5);
    assert_eq!(v["digests_checked"], 4);
    let f = StFile::read(&out.join("model.safetensors"));
    let mut want: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    want.sort();
    assert_eq!(f.names(), want);
    let merged_dir = s.join("merged");
    ok(unpack(&merged_dir, &["--merge-overlay"]));
    let merged = StFile::read(&merged_dir.join("model.safetensors"));
    for t in &tensors {
        let info = f.header.tensor(&t.name).unwrap();
        assert_eq!(info.shape, t.shape, "{}", t.name);
        if !TINY_QUANTIZED.contains(&t.name.as_str()) {
            assert_eq!(info.dtype, t.dtype, "{}", t.name);
            assert!(f.data(&t.name) == t.bytes.as_slice(), "{} is not verbatim", t.name);
            assert!(merged.data(&t.name) == t.bytes.as_slice());
            continue;
        }
        let record = packed.data(&t.name);
        let base = f.f32s(&t.name);
        let want = decode(record, false);
        assert!(
            base.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: not the reference decode",
            t.name
        );
        let e_base = rel_l2(&t.values, &base);
        assert!(e_base < 0.1, "{}: rel_l2 {e_base}", t.name);
        // --merge-overlay: exactly W_base + U·V in the reference order, and closer to the source.
        let m = merged.f32s(&t.name);
        let want_m = decode(record, true);
        assert!(m.iter().zip(&want_m).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(
            m.iter().zip(&base).any(|(a, b)| a != b),
            "{}: overlay changed nothing",
            t.name
        );
        let e_merged = rel_l2(&t.values, &m);
        assert!(e_merged < e_base, "{}: merged {e_merged} vs base {e_base}", t.name);
    }
    for extra in ["config.json", "tokenizer.json", "LICENSE"] {
        assert_eq!(
            std::fs::read(out.join(extra)).unwrap(),
            std::fs::read(src.join(extra)).unwrap()
        );
    }
    assert!(!out.join("ultracompress.json").exists());

    // f16 and bf16: the f32 decode rounded to nearest even.
    for (dtype, st, conv) in [
        ("f16", Dtype::F16, f32_to_f16_bits as fn(f32) -> u16),
        ("bf16", Dtype::Bf16, f32_to_bf16_bits as fn(f32) -> u16),
    ] {
        let o = s.join(dtype);
        ok(unpack(&o, &["--dtype", dtype]));
        let g = StFile::read(&o.join("model.safetensors"));
        for name in TINY_QUANTIZED {
            assert_eq!(g.header.tensor(name).unwrap().dtype, st);
            let want: Vec<u16> = f.f32s(name).iter().map(|&x| conv(x)).collect();
            assert_eq!(g.u16s(name), want, "{dtype} {name}");
        }
        assert_eq!(g.header.tensor("model.embed_tokens.weight").unwrap().dtype, Dtype::Bf16);
        assert_eq!(g.header.tensor("model.norm.weight").unwrap().dtype, Dtype::F32);
    }

    // An existing output is refused without --fresh, replaced with it.
    let before = dir_files(&out);
    let e = fails(unpack(&out, &["--dtype", "f16"]));
    assert!(e.contains(p(&out)) && e.contains("--fresh"), "{e}");
    assert_eq!(dir_files(&out), before);
    ok(unpack(&out, &["--dtype", "f16", "--fresh"]));
    assert_eq!(
        StFile::read(&out.join("model.safetensors"))
            .header
            .tensor(TINY_QUANTIZED[0])
            .unwrap()
            .dtype,
        Dtype::F16
    );

    // A temporary directory left by a killed unpack (a process id no process can have) is removed.
    let stale = s.join(".f32b.tmp-4194999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"partial").unwrap();
    ok(unpack(&s.join("f32b"), &[]));
    assert!(!stale.exists());

    // A byte flipped inside a record: refused, naming file and tensor; no output at all.
    let bad = s.join("bad-pack");
    std::fs::create_dir_all(&bad).unwrap();
    for (name, bytes) in dir_files(&pack) {
        std::fs::write(bad.join(name), bytes).unwrap();
    }
    let target = TINY_QUANTIZED[1];
    let info = packed.header.tensor(target).unwrap();
    let mut bytes = packed.bytes.clone();
    bytes[(packed.header.file_offset(info) + info.len() / 2) as usize] ^= 0x10;
    std::fs::write(bad.join("model.safetensors"), bytes).unwrap();
    let bad_out = s.join("from-bad");
    let o = uc(&["unpack", p(&bad), "--output-dir", p(&bad_out)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(target) && e.contains("model.safetensors") && !e.contains("panicked"),
        "{e}"
    );
    assert!(!bad_out.exists());
    assert!(
        !names_in(&s.0).iter().any(|n| n.starts_with(".from-bad")),
        "{:?}",
        names_in(&s.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 6, 7. compress --json, inspect --json, verification.

#[test]
fn compress_json_inspect_json_and_the_pack_verifies() {
    let s = Scratch::new("inspect");
    let src = s.join("tiny");
    let tensors = tiny_model(&src);
    let pack = s.join("pack");
    let v = json_of(&ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "4",
        "--json",
    ])));
    assert_eq!(v["tensors_quantized"], 4);
    assert_eq!(v["tensors_verbatim"], 5);
    assert_eq!(v["resumed_steps"], 0);
    let bpw = v["bpw"].as_f64().unwrap();
    assert!(bpw > 4.0 && bpw < 6.0, "{v}");
    let mean = v["mean_rel_l2"].as_f64().unwrap();
    assert!(mean > 0.0 && mean < 0.1, "{v}");
    let checks = v["verification_checks_passed"].as_u64().unwrap();
    assert!(checks > 0, "{v}");
    assert_eq!(v["tensors"].as_array().unwrap().len(), tensors.len());

    // uc-verify (the library) verifies the pack, with as many checks as the run reported.
    let report = verify(&pack);
    assert_eq!(report.checks.iter().filter(|c| c.ok).count() as u64, checks);

    // inspect --json: every tensor; bits and rank for records, the stored dtype for the others.
    let i = json_of(&ok(uc(&["inspect", p(&pack), "--json"])));
    let rows = i["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), tensors.len());
    for t in &tensors {
        let r = rows
            .iter()
            .find(|r| r["name"] == t.name.as_str())
            .unwrap_or_else(|| panic!("{} not listed", t.name));
        assert_eq!(r["shape"], json!(t.shape), "{}", t.name);
        assert_eq!(r["file"], "model.safetensors");
        if TINY_QUANTIZED.contains(&t.name.as_str()) {
            assert_eq!(r["dtype"], "uc", "{}", t.name);
            assert_eq!(r["bits"], 4);
            assert_eq!(r["rank"], 4);
            let rel = r["rel_l2"].as_f64().unwrap();
            assert!(rel > 0.0 && rel < 0.1);
        } else {
            assert_eq!(r["dtype"], t.dtype.name(), "{}", t.name);
            assert!(r["bits"].is_null() && r["rel_l2"].is_null(), "{r}");
            assert_eq!(r["bytes"], t.bytes.len());
        }
    }
    // The I32 matrix was kept verbatim, not refused.
    let ints = rows
        .iter()
        .find(|r| r["name"] == "model.layers.0.self_attn.rel_bucket")
        .unwrap();
    assert_eq!(ints["dtype"], "I32");
    let m = &i["manifest"];
    // The default two-level scales are a v0.4 feature (spec R-13.6).
    assert_eq!(m["format_version"], "0.4");
    assert_eq!(m["method"], "gsq");
    assert_eq!(m["model_id"], "pack");
    assert_eq!(m["base_model"], "tiny");
    let mut listed: Vec<&str> = m["tensors"].as_object().unwrap().keys().map(String::as_str).collect();
    listed.sort();
    assert_eq!(listed, TINY_QUANTIZED);
    for name in TINY_QUANTIZED {
        assert_eq!(m["tensors"][name]["bits"], 4);
        assert_eq!(m["tensors"][name]["rank"], 4);
        assert_eq!(m["tensors"][name]["recon_sha256"].as_str().unwrap().len(), 64);
    }
    for f in ["model.safetensors", "config.json", "tokenizer.json", "LICENSE"] {
        assert!(m["files"][f]["sha256"].is_string(), "{f} missing from the manifest");
    }

    // The text forms list every tensor too.
    let text = ok(uc(&["inspect", p(&pack)]));
    for t in &tensors {
        assert!(text.contains(&t.name), "{text}");
    }
}

/// `uc … | head`: a reader that closes early is not an error (exit 0, no panic).
#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let s = Scratch::new("pipe");
    let src = s.join("small");
    small_model(&src);
    let pack = s.join("pack");
    let closed_pipe = || {
        // `true` exits without reading: once it is gone, its stdin pipe has no reader left.
        let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let stdin = reader.stdin.take().unwrap();
        assert!(reader.wait().unwrap().success());
        Stdio::from(stdin)
    };
    let compress: Vec<&str> = vec![
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ];
    let o = uc_cmd(&compress).stdout(closed_pipe()).output().unwrap();
    assert!(o.status.success(), "{}: {}", o.status, stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    verify(&pack);
    for args in [vec!["inspect", p(&pack)], vec!["inspect", p(&pack), "--json"]] {
        let o = uc_cmd(&args).stdout(closed_pipe()).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}: {}", o.status, stderr(&o));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    }
    // Like `| head -1`: read one line, then close.
    let mut child = uc_cmd(&["inspect", p(&pack)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("model_id"), "{line}");
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}: {}",
        o.status,
        stderr(&o)
    );
}

/// `uc compress --list-devices` needs no source and lists the CPU (with the features the decoder's
/// SIMD paths use) and the CUDA driver's answer, as text and as JSON.
#[test]
fn list_devices_shows_the_cpu_and_the_cuda_probe() {
    let text = ok(uc(&["compress", "--list-devices"]));
    assert!(text.starts_with("cpu "), "{text}");
    assert!(text.contains("\ncuda"), "{text}");
    let v = json_of(&ok(uc(&["compress", "--list-devices", "--json"])));
    assert_eq!(v["cpu"]["device"], "cpu", "{v}");
    assert_eq!(v["cpu"]["encoder"], true, "{v}");
    assert!(v["cpu"]["threads"].as_u64().unwrap() >= 1, "{v}");
    let cuda = &v["cuda"];
    assert!(cuda["devices"].is_array(), "{v}");
    // Exactly one of: a driver version, or an error that says why there is none.
    assert_ne!(cuda["driver"].is_null(), cuda["error"].is_null(), "{v}");
    for d in cuda["devices"].as_array().unwrap() {
        assert!(d["device"].as_str().unwrap().starts_with("cuda:"), "{v}");
        assert_eq!(d["encoder"], false, "{v}");
    }
    // Without --list-devices the source is required.
    let o = uc(&["compress"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("SOURCE"), "{}", stderr(&o));
}
