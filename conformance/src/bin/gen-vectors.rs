//! Rebuilds the conformance vectors deterministically.
//!
//! cargo run -p conformance --bin gen-vectors [-- --out DIR]
//!
//! Default output: conformance/vectors (replaced atomically). A test fails when the committed files
//! differ from what this generates.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir = conformance::default_vectors_dir();
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--out", Some(d)) => dir = d.into(),
            _ => {
                eprintln!("usage: gen-vectors [--out DIR]");
                return ExitCode::from(2);
            }
        }
    }
    let vectors = conformance::vectors::all();
    // Every positive vector must be valid and every negative one invalid as stated, by our decoder
    // too; a generator bug must not produce a vector set that contradicts the spec's reference.
    for v in &vectors {
        if let Err(e) = conformance::runner::check_in_process(v, uc_decode::Path::Scalar) {
            eprintln!(
                "gen-vectors: vector {} is inconsistent with the reference decoder: {e}",
                v.name
            );
            return ExitCode::from(1);
        }
    }
    match conformance::files::regenerate(&dir, &vectors) {
        Ok(c) => {
            println!(
                "wrote {} positive and {} negative vectors to {}",
                c.positive,
                c.negative,
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-vectors: {e}");
            ExitCode::from(2)
        }
    }
}
