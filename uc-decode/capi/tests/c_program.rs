//! `conformance/c/ucdec.c`, the external decoder written in C against the C ABI, compiled with the
//! system C compiler and linked against the static library that cargo built for this test run.
//! Its output must equal uc-decode's bit for bit, and its error lines `<name> <offset>` must equal
//! `Record::parse`'s errors.
//!
//! No C compiler is a test FAILURE, not a skip: set `CC` or install `cc` (gcc or clang).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use uc_decode::Record;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static library of this package that cargo built for this test run. Cargo builds the library
/// with all its crate types into `target/<profile>/deps/` (the directory of this test executable)
/// before it runs the tests; `cargo build` also copies it to `target/<profile>/`.
fn staticlib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a directory");
    let name = if cfg!(windows) {
        "uc_decode_capi.lib"
    } else {
        "libuc_decode_capi.a"
    };
    let candidates = [deps.join(name), deps.parent().map(|p| p.join(name)).unwrap_or_default()];
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("static library not found at {candidates:?}"))
        .clone()
}

/// Compiles ucdec once per test process; returns the binary.
fn ucdec() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let tmp = out_dir.join(format!("ucdec.{}.tmp", std::process::id()));
        let bin = out_dir.join("ucdec");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
        let mut cmd = Command::new(&cc);
        cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"])
            .arg("-I")
            .arg(root.join("uc-decode/capi/include"))
            .arg("-o")
            .arg(&tmp)
            .arg(root.join("conformance/c/ucdec.c"))
            .arg(staticlib());
        if cfg!(target_os = "macos") {
            cmd.args(["-lSystem", "-lc", "-lm"]);
        } else {
            // rustc --print native-static-libs for *-linux-gnu.
            cmd.args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"]);
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{cc}` ({e}). This test needs one: install gcc or clang, or set CC. \
                 It is a failure, not a skip, so that the C ABI is never left untested silently."
            )
        });
        assert!(
            out.status.success(),
            "compiling conformance/c/ucdec.c failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).expect("rename ucdec");
        bin
    })
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(ucdec())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ucdec");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // Write from another thread so that a large output cannot dead-lock against the input.
    let writer = std::thread::spawn(move || {
        // ucdec may exit before reading everything (it does not, but a broken pipe is not our test).
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for ucdec");
    writer.join().unwrap();
    out
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn decode_output_is_bit_identical() {
    for (label, bytes) in common::valid_records() {
        let rec = Record::parse(&bytes).unwrap();
        let mut want = vec![0f32; rec.len() as usize];
        rec.decode_into(&mut want).unwrap();
        let out = run(&["decode"], &bytes);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == le_bytes(&want), "{label}: decoded bytes differ");
        // Bytes after record_len are not part of the record.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xAB; 13]);
        assert_eq!(run(&["decode"], &padded).stdout, out.stdout, "{label}: trailing bytes");
    }
}

#[test]
fn overlay_output_is_u_then_v() {
    for (label, bytes) in common::valid_records() {
        let rec = Record::parse(&bytes).unwrap();
        let r = u64::from(rec.overlay_rank());
        let mut u = vec![0f32; (rec.rows() * r) as usize];
        let mut v = vec![0f32; (r * rec.cols()) as usize];
        rec.overlay_u_into(&mut u).unwrap();
        rec.overlay_v_into(&mut v).unwrap();
        let mut want = le_bytes(&u);
        want.extend(le_bytes(&v));
        let out = run(&["overlay"], &bytes);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == want, "{label}: overlay bytes differ");
        if r == 0 {
            assert!(out.stdout.is_empty(), "{label}");
        }
    }
}

#[test]
fn invalid_records_print_name_and_offset() {
    for (label, bytes) in common::invalid_records() {
        let err = Record::parse(&bytes).unwrap_err();
        for mode in ["decode", "overlay"] {
            let out = run(&[mode], &bytes);
            assert_eq!(out.status.code(), Some(1), "{label} {mode}");
            let line = String::from_utf8(out.stdout).unwrap();
            assert_eq!(line, format!("{} {}\n", err.kind.name(), err.offset), "{label} {mode}");
        }
    }
}

#[test]
fn bad_usage_exits_2() {
    for args in [&[][..], &["inflate"][..], &["decode", "extra"][..]] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message on stderr");
    }
}

/// The header also compiles as C++ (its `extern "C"` block). Skipped, with a note, when no C++
/// compiler is installed: C++ is not needed to build or test the library.
#[test]
fn header_compiles_as_cpp() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("uc_header_{}.cpp", std::process::id()));
    std::fs::write(
        &src,
        "#include \"uc_decode.h\"\nint main() { uc_record r = {}; return uc_record_bits(&r); }\n",
    )
    .unwrap();
    let out = Command::new(&cxx)
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-I",
        ])
        .arg(workspace_root().join("uc-decode/capi/include"))
        .arg(&src)
        .output();
    let _ = std::fs::remove_file(&src);
    match out {
        Err(e) => eprintln!("note: no C++ compiler `{cxx}` ({e}); header not checked as C++"),
        Ok(out) => assert!(
            out.status.success(),
            "uc_decode.h does not compile as C++:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
