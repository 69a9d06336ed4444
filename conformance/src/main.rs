//! `conformance`: run the uc pack v0.3 conformance vectors against any decoder.

use clap::{Parser, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "conformance", version, about = "uc pack v0.3 conformance vectors and runner")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Feed every vector to an external decoder (protocol: conformance/README.md) and compare bit for bit.
    Run {
        /// Shell command of the decoder; the mode (decode|overlay|merged) is appended.
        #[arg(long)]
        decoder: String,
        /// Vector directory.
        #[arg(long, default_value_os_t = conformance::default_vectors_dir())]
        vectors: PathBuf,
        /// Only vectors whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Compare error classes only, not byte offsets.
        #[arg(long)]
        ignore_offsets: bool,
        /// Skip the `merged` mode (for decoders that do not merge the overlay).
        #[arg(long)]
        no_merged: bool,
        /// Require `merged` output bit for bit (the reference order of ), not within the tolerance.
        #[arg(long, conflicts_with = "no_merged")]
        exact_merged: bool,
        /// Time limit per decoder invocation, seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List the vectors with their expectations and clause coverage.
    List {
        /// Vector directory.
        #[arg(long, default_value_os_t = conformance::default_vectors_dir())]
        vectors: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            decoder,
            vectors,
            only,
            ignore_offsets,
            no_merged,
            exact_merged,
            timeout_secs,
            json,
        } => {
            let set = match conformance::files::load(&vectors) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("conformance: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = conformance::runner::RunOptions {
                decoder,
                timeout: Duration::from_secs(timeout_secs),
                check_offsets: !ignore_offsets,
                check_merged: !no_merged,
                exact_merged,
            };
            let mut results = Vec::new();
            for v in set
                .iter()
                .filter(|v| only.as_ref().is_none_or(|o| v.name.contains(o.as_str())))
            {
                let r = conformance::runner::run_vector(v, &opts);
                if !json {
                    println!(
                        "{}  {:<9} {:<44} {}",
                        if r.passed { "PASS" } else { "FAIL" },
                        r.kind,
                        r.name,
                        r.detail
                    );
                }
                results.push(r);
            }
            let passed = results.iter().filter(|r| r.passed).count();
            let failed = results.len() - passed;
            if json {
                let rows: Vec<_> = results
                    .iter()
                    .map(|r| json!({"name": r.name, "kind": r.kind, "passed": r.passed, "cases": r.cases, "detail": r.detail}))
                    .collect();
                let out = json!({"decoder": opts.decoder, "passed": passed, "failed": failed, "vectors": rows});
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                let cases: usize = results.iter().map(|r| r.cases).sum();
                println!("{passed} passed, {failed} failed ({cases} decoder invocations)");
            }
            if failed == 0 && !results.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::List { vectors } => {
            let set = match conformance::files::load(&vectors) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("conformance: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut by_clause: BTreeMap<&str, usize> = BTreeMap::new();
            for v in &set {
                let what = match &v.expect {
                    conformance::Expect::Valid { w_base, overlay, .. } => {
                        format!("valid, {} values, {} overlay values", w_base.len(), overlay.len())
                    }
                    conformance::Expect::Invalid { error, offset } => format!("{} at {offset}", error.name()),
                    conformance::Expect::EveryPrefixTruncated => "every prefix truncated".into(),
                };
                println!("{:<44} {:<44} {}", v.name, what, v.clauses.join(" "));
                for c in &v.clauses {
                    *by_clause.entry(c.as_str()).or_default() += 1;
                }
            }
            let pos = set
                .iter()
                .filter(|v| matches!(v.expect, conformance::Expect::Valid { .. }))
                .count();
            println!(
                "\n{} vectors: {pos} positive, {} negative; {} clauses cited",
                set.len(),
                set.len() - pos,
                by_clause.len()
            );
            ExitCode::SUCCESS
        }
    }
}
