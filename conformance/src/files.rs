//! Vector files: `<dir>/positive/<name>.{json,ucr,w_base.f32,overlay.f32,merged.f32}` and
//! `<dir>/negative/<name>.{json,ucr}`. The JSON names the spec clauses, the expected outcome and
//! the SHA-256 of every file, so a vendor can check the set is intact.

use crate::vectors::{Expect, Vector};
use crate::{f32_bytes, f32_from_bytes, sha256_hex};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use uc_format::ErrorKind;

/// Counts of a written or loaded set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Valid records.
    pub positive: usize,
    /// Invalid records (a prefix sweep counts once).
    pub negative: usize,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes every vector into `dir` (which must exist and be empty).
pub fn write_all(dir: &Path, vectors: &[Vector]) -> Result<Counts, String> {
    let mut counts = Counts::default();
    for sub in ["positive", "negative"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.join(sub).display()))?;
    }
    for v in vectors {
        let positive = matches!(v.expect, Expect::Valid { .. });
        let sub = dir.join(if positive { "positive" } else { "negative" });
        let rec_name = format!("{}.ucr", v.name);
        write(&sub.join(&rec_name), &v.record)?;
        let mut meta = json!({
            "name": v.name,
            "description": v.description,
            "clauses": v.clauses,
            "record": rec_name,
            "record_sha256": sha256_hex(&v.record),
            "record_len": v.record.len(),
        });
        match &v.expect {
            Expect::Valid {
                w_base,
                overlay,
                merged,
            } => {
                counts.positive += 1;
                meta["kind"] = json!("positive");
                for (key, vals) in [("w_base", w_base), ("overlay", overlay), ("merged", merged)] {
                    if vals.is_empty() {
                        meta[key] = Value::Null;
                        continue;
                    }
                    let file = format!("{}.{key}.f32", v.name);
                    let bytes = f32_bytes(vals);
                    write(&sub.join(&file), &bytes)?;
                    meta[key] = json!({"file": file, "sha256": sha256_hex(&bytes), "values": vals.len()});
                }
            }
            Expect::Invalid { error, offset } => {
                counts.negative += 1;
                meta["kind"] = json!("negative");
                meta["error"] = json!(error.name());
                meta["error_code"] = json!(error.code());
                meta["offset"] = json!(offset);
            }
            Expect::EveryPrefixTruncated => {
                counts.negative += 1;
                meta["kind"] = json!("negative");
                meta["every_prefix"] = json!(true);
                meta["error"] = json!(ErrorKind::Truncated.name());
                meta["error_code"] = json!(ErrorKind::Truncated.code());
                meta["offset"] = json!("prefix length");
            }
        }
        let text = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n";
        write(&sub.join(format!("{}.json", v.name)), text.as_bytes())?;
    }
    crate::packs::write_all(&dir.join("packs"))?;
    Ok(counts)
}

/// Regenerates the committed vector directory atomically: writes a sibling temporary directory,
/// then swaps it in.
pub fn regenerate(dir: &Path, vectors: &[Vector]) -> Result<Counts, String> {
    let parent = dir.parent().ok_or("vectors dir has no parent")?;
    let name = dir
        .file_name()
        .ok_or("vectors dir has no name")?
        .to_string_lossy()
        .to_string();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let counts = write_all(&tmp, vectors)?;
    if dir.exists() {
        fs::rename(dir, &old).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::rename(&tmp, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = fs::remove_dir_all(&old);
    Ok(counts)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn field<'a>(meta: &'a Value, key: &str, path: &Path) -> Result<&'a Value, String> {
    meta.get(key)
        .ok_or_else(|| format!("{}: missing member {key:?}", path.display()))
}

fn load_f32(sub: &Path, meta: &Value, key: &str, path: &Path) -> Result<Vec<f32>, String> {
    let m = field(meta, key, path)?;
    if m.is_null() {
        return Ok(Vec::new());
    }
    let file = m["file"]
        .as_str()
        .ok_or_else(|| format!("{}: {key}.file is not a string", path.display()))?;
    let bytes = read(&sub.join(file))?;
    if Some(sha256_hex(&bytes).as_str()) != m["sha256"].as_str() {
        return Err(format!(
            "{}: SHA-256 of {file} does not match the vector JSON",
            path.display()
        ));
    }
    Ok(f32_from_bytes(&bytes))
}

/// Loads every vector under `dir`, sorted by kind then name, checking each file's SHA-256.
pub fn load(dir: &Path) -> Result<Vec<Vector>, String> {
    let mut out = Vec::new();
    for sub in ["positive", "negative"] {
        let sub = dir.join(sub);
        let mut jsons: Vec<PathBuf> = fs::read_dir(&sub)
            .map_err(|e| format!("{}: {e}", sub.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        jsons.sort();
        for path in jsons {
            let meta: Value = serde_json::from_slice(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
            let s = |key: &str| -> Result<String, String> {
                field(&meta, key, &path)?
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{}: {key} is not a string", path.display()))
            };
            let record = read(&sub.join(s("record")?))?;
            if sha256_hex(&record) != s("record_sha256")? {
                return Err(format!("{}: record SHA-256 does not match", path.display()));
            }
            let clauses: Vec<String> = field(&meta, "clauses", &path)?
                .as_array()
                .ok_or_else(|| format!("{}: clauses is not an array", path.display()))?
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect();
            let expect = match s("kind")?.as_str() {
                "positive" => Expect::Valid {
                    w_base: load_f32(&sub, &meta, "w_base", &path)?,
                    overlay: load_f32(&sub, &meta, "overlay", &path)?,
                    merged: load_f32(&sub, &meta, "merged", &path)?,
                },
                "negative" if meta["every_prefix"] == json!(true) => Expect::EveryPrefixTruncated,
                "negative" => Expect::Invalid {
                    error: ErrorKind::from_name(&s("error")?)
                        .ok_or_else(|| format!("{}: unknown error class", path.display()))?,
                    offset: meta["offset"]
                        .as_u64()
                        .ok_or_else(|| format!("{}: offset is not a u64", path.display()))?,
                },
                k => return Err(format!("{}: unknown kind {k:?}", path.display())),
            };
            out.push(Vector {
                name: s("name")?,
                description: s("description")?,
                clauses,
                record,
                expect,
            });
        }
    }
    Ok(out)
}
