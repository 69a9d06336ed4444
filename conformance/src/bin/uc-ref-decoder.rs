//! Our Rust decoder as an external decoder of the conformance protocol (conformance/README.md).
//!
//! uc-ref-decoder [--path auto|scalar|portable|avx2] decode|overlay|merged < record

use std::io::{Read, Write};
use std::process::ExitCode;
use uc_decode::{Path, Record};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, mode) = match args.as_slice() {
        [mode] => (Path::Auto, mode.as_str()),
        [flag, p, mode] if flag == "--path" => {
            let path = match p.as_str() {
                "auto" => Path::Auto,
                "scalar" => Path::Scalar,
                "portable" => Path::Portable,
                "avx2" => Path::Avx2,
                _ => {
                    eprintln!("uc-ref-decoder: unknown path {p:?}");
                    return ExitCode::from(2);
                }
            };
            (path, mode.as_str())
        }
        _ => {
            eprintln!("usage: uc-ref-decoder [--path auto|scalar|portable|avx2] decode|overlay|merged < record");
            return ExitCode::from(2);
        }
    };
    if !matches!(mode, "decode" | "overlay" | "merged") {
        eprintln!("uc-ref-decoder: unknown mode {mode:?}");
        return ExitCode::from(2);
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("uc-ref-decoder: reading stdin: {e}");
        return ExitCode::from(2);
    }
    let rec = match Record::parse(&input) {
        Ok(r) => r,
        Err(e) => {
            println!("{} {}", e.kind.name(), e.offset);
            return ExitCode::from(1);
        }
    };
    let Ok(n) = usize::try_from(rec.len()) else {
        eprintln!("uc-ref-decoder: tensor too large for this platform");
        return ExitCode::from(2);
    };
    let values = match mode {
        "overlay" => {
            let r = rec.overlay_rank() as usize;
            let (rows, cols) = (rec.rows() as usize, rec.cols() as usize);
            let mut u = vec![0f32; rows * r];
            let mut v = vec![0f32; r * cols];
            rec.overlay_u_into(&mut u)
                .and_then(|_| rec.overlay_v_into(&mut v))
                .map(|_| [u, v].concat())
        }
        _ => {
            let mut w = vec![0f32; n];
            rec.decode_with(path, &mut w).and_then(|_| {
                if mode == "merged" {
                    rec.merge_overlay_into(&mut w)?;
                }
                Ok(w)
            })
        }
    };
    let values = match values {
        Ok(v) => v,
        Err(e) => {
            eprintln!("uc-ref-decoder: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(&conformance::f32_bytes(&values))
        .and_then(|_| out.flush())
    {
        eprintln!("uc-ref-decoder: writing stdout: {e}");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
