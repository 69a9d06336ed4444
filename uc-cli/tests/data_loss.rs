//! No data loss, whatever the user gives as output and whenever a run dies (issues #13 and #14):
//! `--fresh` replaces only what the same command wrote, never the input, an ancestor, `.` or a
//! foreign directory; a previous output survives every failed or killed run; two runs never share a
//! work directory; Hugging Face cache snapshots and sentence-transformers layouts are copied whole;
//! FIFOs do not hang; names cannot forge what the terminal shows.
//!
//! Every case asserts the exit code, the error's class (its message), a time bound and a peak-RSS
//! bound measured with GNU time, and that the user's files are intact afterwards.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bounds for every run on the tiny models here (debug build, 2 shared cores).
const SECS: f64 = 120.0;
const RSS_MB: u64 = 512;

fn uc_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = uc_cmd(args);
    c.current_dir(dir);
    c
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny source model and its pack, in `scratch`.
fn model_and_pack(sc: &Scratch) -> (PathBuf, PathBuf) {
    let src = sc.join("src");
    tiny_model(&src);
    let pack = sc.join("pack");
    let m = measured(&uc_cmd(&[
        "compress",
        s(&src),
        "--output-dir",
        s(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ]));
    m.expect(0, SECS, RSS_MB);
    (src, pack)
}

#[test]
fn fresh_never_replaces_the_input_an_ancestor_the_current_directory_or_a_foreign_directory() {
    let sc = Scratch::new("fresh-guard");
    let (src, pack) = model_and_pack(&sc);
    let foreign = sc.join("thesis");
    std::fs::create_dir_all(foreign.join("chapters")).unwrap();
    std::fs::write(foreign.join("chapters/1.tex"), b"years of work").unwrap();
    let before = snapshot(&sc.0);

    let cases: Vec<(Vec<String>, &str)> = vec![
        // uc compress SRC --output-dir SRC --fresh used to replace the model with the lossy pack.
        (
            vec![
                "compress".into(),
                s(&src).into(),
                "--output-dir".into(),
                s(&src).into(),
                "--fresh".into(),
            ],
            "overlap the input",
        ),
        (
            vec![
                "compress".into(),
                s(&src).into(),
                "--output-dir".into(),
                format!("{}/x/..", s(&src)),
                "--fresh".into(),
            ],
            "overlap the input",
        ),
        (
            vec![
                "compress".into(),
                s(&src).into(),
                "--output-dir".into(),
                s(&sc.0).into(),
                "--fresh".into(),
            ],
            "current directory",
        ),
        (
            vec![
                "compress".into(),
                s(&src).into(),
                "--output-dir".into(),
                ".".into(),
                "--fresh".into(),
            ],
            "current directory",
        ),
        (
            vec![
                "compress".into(),
                s(&src).into(),
                "--output-dir".into(),
                s(&foreign).into(),
                "--fresh".into(),
            ],
            "not a previous output",
        ),
        // uc unpack PACK --output-dir . --fresh used to empty the current directory, pack included.
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                ".".into(),
                "--fresh".into(),
            ],
            "current directory",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                format!("{}/x/..", s(&sc.0)),
                "--fresh".into(),
            ],
            "current directory",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                format!("{}/x/..", s(&foreign)),
                "--fresh".into(),
            ],
            "not a previous output",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                s(&pack).into(),
                "--fresh".into(),
            ],
            "overlap the input",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                s(&foreign).into(),
                "--fresh".into(),
            ],
            "not a previous output",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                s(&src.join("config.json")).into(),
                "--fresh".into(),
            ],
            "not a previous output",
        ),
        (
            vec![
                "unpack".into(),
                s(&pack).into(),
                "--output-dir".into(),
                "/".into(),
                "--fresh".into(),
            ],
            "refusing to write over the root",
        ),
        // A pack is not an import's output either.
        (
            vec![
                "import-gguf".into(),
                s(&src.join("config.json")).into(),
                "--output-dir".into(),
                s(&pack).into(),
                "--fresh".into(),
            ],
            "not a previous output",
        ),
    ];
    for (args, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = measured(&uc_in(&sc.0, &args)).expect(2, SECS, RSS_MB);
        assert!(e.contains("uc: error: ") && e.contains(needle), "{args:?}: {e}");
        assert_eq!(snapshot(&sc.0), before, "{args:?} changed the user's files");
    }
    // The same from inside the pack and the source: the current directory is never written over.
    let e = measured(&uc_in(&pack, &["unpack", ".", "--output-dir", ".", "--fresh"])).expect(2, SECS, RSS_MB);
    assert!(e.contains("current directory") || e.contains("overlap"), "{e}");
    assert_eq!(snapshot(&sc.0), before);
}

#[test]
fn a_previous_output_survives_failed_and_killed_runs_of_every_command() {
    let sc = Scratch::new("survive");
    let (src, pack) = model_and_pack(&sc);
    let out = sc.join("unpacked");
    measured(&uc_cmd(&["unpack", s(&pack), "--output-dir", s(&out)])).expect(0, SECS, RSS_MB);
    assert!(out.join("uc-unpack.json").is_file() && out.join("model.safetensors").is_file());

    // unpack: killed after the new output is complete but before it replaces the old one (exit
    // 134: SIGABRT, no cleanup ran), then killed after the swap, before the old one is removed.
    for (stage, replaced) in [("staged", false), ("swapped", true)] {
        let before = snapshot(&out);
        let mut c = uc_cmd(&[
            "unpack",
            s(&pack),
            "--output-dir",
            s(&out),
            "--dtype",
            "bf16",
            "--fresh",
        ]);
        c.env("UC_TEST_FS_ABORT", stage);
        measured(&c).expect(134, SECS, RSS_MB);
        if replaced {
            assert_ne!(snapshot(&out), before, "{stage}");
            assert!(out.join("uc-unpack.json").is_file());
        } else {
            assert_eq!(snapshot(&out), before, "{stage}: the previous output was touched");
        }
        // The next run removes what the killed one left and succeeds.
        measured(&uc_cmd(&["unpack", s(&pack), "--output-dir", s(&out), "--fresh"])).expect(0, SECS, RSS_MB);
        let names = names_in(&sc.0);
        assert!(
            names.iter().all(|n| !n.contains(".tmp-") && !n.contains(".uc-old")),
            "{names:?}"
        );
    }

    // unpack: a pack that fails verification (one byte of a record flipped) is refused before
    // anything is written; the previous output is intact and no temporary is left.
    let bad = sc.join("bad-pack");
    std::fs::create_dir_all(&bad).unwrap();
    for (name, bytes) in dir_files(&pack) {
        let p = bad.join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let st = bad.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x10;
    std::fs::write(&st, bytes).unwrap();
    let before = snapshot(&out);
    let e = measured(&uc_cmd(&["unpack", s(&bad), "--output-dir", s(&out), "--fresh"])).expect(1, SECS, RSS_MB);
    assert!(e.contains("not a valid uc pack") && e.contains("uc-verify"), "{e}");
    assert_eq!(snapshot(&out), before);
    let e = measured(&uc_cmd(&["inspect", s(&bad)])).expect(1, SECS, RSS_MB);
    assert!(e.contains("not a valid uc pack"), "{e}");

    // compress: a replacing run killed before the install keeps the old pack byte for byte; the
    // rerun of the same command replaces it.
    let before = snapshot(&pack);
    let args = [
        "compress",
        s(&src),
        "--output-dir",
        s(&pack),
        "--bits",
        "3",
        "--rank",
        "0",
        "--fresh",
    ];
    let mut c = uc_cmd(&args);
    c.env("UC_TEST_FS_ABORT", "staged");
    measured(&c).expect(134, SECS, RSS_MB);
    assert_eq!(snapshot(&pack), before, "the previous pack was touched");
    measured(&uc_cmd(&args)).expect(0, SECS, RSS_MB);
    assert_ne!(snapshot(&pack), before);
    let names = names_in(&sc.0);
    assert!(names.iter().all(|n| !n.starts_with(".pack")), "{names:?}");
}

#[test]
fn a_second_run_on_the_same_output_is_refused_and_says_who_holds_it() {
    let sc = Scratch::new("lock");
    let src = sc.join("src");
    tiny_model(&src);
    let out = sc.join("pack");
    let work = sc.join(".pack.uc-work");
    // Another run holds the work directory (the lock is the OS's: this test process takes it).
    let lock = uc_encode::journal::WorkLock::acquire(&work).unwrap();
    std::fs::write(work.join("cand-000001.json"), b"{\"version\": 1}").unwrap();
    let before = snapshot(&work);
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&out), "--fresh"])).expect(2, SECS, RSS_MB);
    assert!(
        e.contains("in use by another run") && e.contains(&format!("process {}", std::process::id())),
        "{e}"
    );
    assert_eq!(snapshot(&work), before, "the other run's journal was touched");
    assert!(!out.exists());
    drop(lock);
    // Once it is released the same command runs (and --fresh discards that journal).
    measured(&uc_cmd(&[
        "compress",
        s(&src),
        "--output-dir",
        s(&out),
        "--fresh",
        "--bits",
        "4",
        "--rank",
        "0",
    ]))
    .expect(0, SECS, RSS_MB);
    assert!(!work.exists());
}

/// A Hugging Face cache snapshot: every file a link into `blobs/`, a sub-directory module.
fn hf_snapshot(sc: &Scratch) -> PathBuf {
    let plain = sc.join("plain");
    tiny_model(&plain);
    std::fs::create_dir_all(plain.join("1_Pooling")).unwrap();
    std::fs::write(
        plain.join("1_Pooling/config.json"),
        b"{\"pooling_mode_mean_tokens\": true}",
    )
    .unwrap();
    std::fs::write(plain.join("modules.json"), b"[{\"path\": \"1_Pooling\"}]").unwrap();
    let blobs = sc.join("hub/models--t--tiny/blobs");
    let snap = sc.join("hub/models--t--tiny/snapshots/0123abcd");
    std::fs::create_dir_all(&blobs).unwrap();
    for (i, (name, bytes)) in dir_files(&plain).into_iter().enumerate() {
        let blob = blobs.join(format!("blob{i:02}"));
        std::fs::write(&blob, bytes).unwrap();
        let link = snap.join(&name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let depth = name.matches('/').count();
        let target = PathBuf::from("../".repeat(2 + depth))
            .join("blobs")
            .join(format!("blob{i:02}"));
        std::os::unix::fs::symlink(target, &link).unwrap();
    }
    std::fs::remove_dir_all(&plain).unwrap();
    snap
}

#[test]
fn hf_cache_snapshots_and_sentence_transformers_layouts_compress_completely() {
    let sc = Scratch::new("hf-cache");
    let snap = hf_snapshot(&sc);
    let pack = sc.join("pack");
    let before = snapshot(&sc.join("hub"));
    measured(&uc_cmd(&[
        "compress",
        s(&snap),
        "--output-dir",
        s(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ]))
    .expect(0, SECS, RSS_MB);
    assert_eq!(snapshot(&sc.join("hub")), before, "the cache was changed");
    let files = dir_files(&pack);
    for name in [
        "config.json",
        "tokenizer.json",
        "LICENSE",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing from the pack: {:?}",
            files.keys()
        );
    }
    assert_eq!(files["1_Pooling/config.json"], b"{\"pooling_mode_mean_tokens\": true}");
    // The pack holds regular files only and verifies; unpack restores the module too.
    let out = sc.join("unpacked");
    measured(&uc_cmd(&["unpack", s(&pack), "--output-dir", s(&out)])).expect(0, SECS, RSS_MB);
    assert!(out.join("1_Pooling/config.json").is_file());
    assert!(out.join("tokenizer.json").is_file());
}

#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let sc = Scratch::new("fifo");
    let src = sc.join("src");
    tiny_model(&src);
    let fifo = |p: &Path| {
        let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
        assert!(ok, "mkfifo {}", p.display());
    };
    // A FIFO among the files to copy, and config.json linked to /dev/zero.
    fifo(&src.join("notes.txt"));
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&sc.join("p1"))])).expect(2, 60.0, RSS_MB);
    assert!(e.contains("notes.txt") && e.contains("FIFO"), "{e}");
    std::fs::remove_file(src.join("notes.txt")).unwrap();
    std::fs::rename(src.join("config.json"), sc.join("config.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", src.join("config.json")).unwrap();
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&sc.join("p2"))])).expect(2, 60.0, RSS_MB);
    assert!(e.contains("config.json") && e.contains("not a regular file"), "{e}");
    std::fs::remove_file(src.join("config.json")).unwrap();
    std::fs::rename(sc.join("config.json"), src.join("config.json")).unwrap();
    // model.safetensors as a FIFO.
    std::fs::rename(src.join("model.safetensors"), sc.join("model.safetensors")).unwrap();
    fifo(&src.join("model.safetensors"));
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&sc.join("p3"))])).expect(2, 60.0, RSS_MB);
    assert!(
        e.contains("model.safetensors") && e.contains("not a regular file"),
        "{e}"
    );
    // A GGUF "file" that is a FIFO.
    let e = measured(&uc_cmd(&[
        "import-gguf",
        s(&src.join("model.safetensors")),
        "--output-dir",
        s(&sc.join("g")),
    ]))
    .expect(2, 60.0, RSS_MB);
    assert!(e.contains("not a regular file"), "{e}");
    for p in ["p1", "p2", "p3", "g"] {
        assert!(!sc.join(p).exists(), "{p}");
    }
}

#[test]
fn reserved_names_are_refused_before_any_work_and_keep_nothing() {
    let sc = Scratch::new("reserved");
    let src = sc.join("src");
    let mut t = tiny_tensors();
    let mut r = Rng(7);
    t.push(vector(&mut r, "__uc_pad_7", 64));
    write_model(&src, &t, 128);
    let out = sc.join("pack");
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&out)])).expect(2, 30.0, RSS_MB);
    assert!(e.contains("__uc_pad_7") && e.contains("reserved"), "{e}");
    // A verbatim U8 tensor that begins with the record magic.
    let mut t = tiny_tensors();
    let mut bytes = vec![0u8; 64];
    bytes[..8].copy_from_slice(&uc_format::MAGIC);
    t.push(SrcTensor {
        name: "model.extra".into(),
        dtype: uc_pack::Dtype::U8,
        shape: vec![64],
        values: Vec::new(),
        bytes,
    });
    write_model(&src, &t, 128);
    let e = measured(&uc_cmd(&["compress", s(&src), "--output-dir", s(&out)])).expect(2, 30.0, RSS_MB);
    assert!(e.contains("model.extra") && e.contains("record magic"), "{e}");
    assert_eq!(names_in(&sc.0), ["src"], "a work directory or output was left");
}

#[test]
fn crafted_names_cannot_forge_the_terminal_output() {
    let sc = Scratch::new("forge");
    let (_src, pack) = model_and_pack(&sc);
    // An unlisted file whose name holds escape sequences that would erase the error line and print
    // a fake verdict: inspect refuses the pack and quotes the name escaped.
    let evil = "x\u{1b}[2K\r\u{1b}[1AVERIFIED: 99 checks passed\u{9b}2J";
    std::fs::write(pack.join(evil), b"").unwrap();
    for cmd in [vec!["inspect", s(&pack)], vec!["inspect", s(&pack), "--json"]] {
        let m = measured(&uc_cmd(&cmd));
        let e = m.expect(1, SECS, RSS_MB);
        let out = String::from_utf8_lossy(&m.out.stdout);
        assert!(
            !e.contains('\u{1b}') && !e.contains('\u{9b}') && !e.contains('\r'),
            "{e:?}"
        );
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(e.contains("\\u{1b}[2K"), "{e}");
    }
}

/// A full disk keeps the journal, and the message says where it is and how much it holds. Needs
/// root to mount a small tmpfs: it runs where `UC_TEST_TMPFS=1` is set (scripts/test.sh sets it in
/// CI, which runs as root).
#[test]
fn a_full_disk_keeps_the_journal_and_says_how_much_it_holds() {
    if std::env::var_os("UC_TEST_TMPFS").is_none() {
        eprintln!("not run: set UC_TEST_TMPFS=1 (as root) to mount a small tmpfs");
        return;
    }
    let sc = Scratch::new("full-disk");
    let src = sc.join("src");
    tiny_model(&src);
    let disk = sc.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96k", "tmpfs", s(&disk)])
        .status()
        .unwrap()
        .success();
    assert!(mounted, "mount -t tmpfs failed (UC_TEST_TMPFS=1 needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(disk.clone());
    let out = disk.join("pack");
    let e = measured(&uc_cmd(&[
        "compress",
        s(&src),
        "--output-dir",
        s(&out),
        "--bits",
        "8",
        "--rank",
        "0",
    ]))
    .expect(2, SECS, RSS_MB);
    assert!(
        e.contains("No space left") || e.contains("storage full") || e.contains("quota"),
        "{e}"
    );
    assert!(
        e.contains("journal in") && e.contains("is kept for the resume") && e.contains("bytes"),
        "{e}"
    );
    assert!(
        disk.join(".pack.uc-work").join("job.json").is_file(),
        "the journal was not kept"
    );
    assert!(!out.exists());
}
