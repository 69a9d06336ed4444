//! `uc import-gguf` on untrusted bytes: the strict pre-scan (`uc_models::gguf_scan`) and, behind
//! it, candle's GGUF reader and the importer.
//!
//! * `scan` never panics; an error names an offset inside the file; an accepted header has counts
//!   within the caps and a non-zero power-of-two alignment.
//! * the import (inputs up to 64 KiB, written to a temporary file) returns a result, never panics,
//!   and whatever it returns, the output directory holds a whole import or nothing, and no
//!   temporary directory is left beside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::PathBuf;
use uc_models::gguf::{ImportOptions, import_gguf};
use uc_models::gguf_scan::{MAX_COUNT, scan};

fn dir() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("uc-fuzz-gguf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    uc_fuzz::single_threaded();
    let len = data.len() as u64;
    match scan(&mut Cursor::new(data), len) {
        Ok(s) => {
            assert!(s.tensor_count <= MAX_COUNT && s.kv_count <= MAX_COUNT);
            if let Some(a) = s.alignment {
                assert!(a != 0 && a.is_power_of_two());
            }
        }
        Err(e) => assert!(e.offset <= len, "{e}: offset outside the {len}-byte file"),
    }
    if data.len() > 64 << 10 {
        return;
    }
    let d = dir();
    let src = d.join("in.gguf");
    let out = d.join("out");
    std::fs::write(&src, data).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let r = import_gguf(&ImportOptions {
        source: src,
        output_dir: out.clone(),
        fresh: true,
        progress: None,
    });
    match r {
        Ok(_) => assert!(out.join("model.safetensors").is_file() && out.join("config.json").is_file()),
        Err(_) => assert!(!out.exists(), "a failed import left its output"),
    }
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary directories left: {left:?}");
});
