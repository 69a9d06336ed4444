//! Environment fingerprints without personal data: operating system, architecture, CPU features,
//! CPU count and tool version. Never user names, host names, paths or environment variables.

use serde_json::{Map, Value, json};

/// CPU features that matter to the decoder and encoder, as detected at run time.
pub fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut f: Vec<&'static str> = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        macro_rules! probe {
            ($($name:tt),*) => {
                $( if std::arch::is_x86_feature_detected!($name) { f.push($name); } )*
            };
        }
        probe!("sse2", "sse4.1", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f");
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            f.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("fp16") {
            f.push("fp16");
        }
    }
    f
}

/// Logical CPUs available to this process (1 when unknown).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The manifest's `provenance.environment` object: `os`, `arch`, `cpu_features` and `tool`.
pub fn environment(tool: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("arch".into(), json!(std::env::consts::ARCH));
    m.insert("cpu_features".into(), json!(cpu_features()));
    m.insert("os".into(), json!(std::env::consts::OS));
    m.insert("tool".into(), json!(tool));
    m
}

/// The receipt's host fingerprint: `os`, `arch`, `cpus`, `cpu_features`.
pub fn host_fingerprint() -> Value {
    let mut m = Map::new();
    m.insert("arch".into(), json!(std::env::consts::ARCH));
    m.insert("cpu_features".into(), json!(cpu_features()));
    m.insert("cpus".into(), json!(cpu_count()));
    m.insert("os".into(), json!(std::env::consts::OS));
    Value::Object(m)
}
