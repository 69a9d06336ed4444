//! Reading a local Hugging Face model directory: `config.json`, `model.safetensors` or sharded
//! `model-*.safetensors` with `model.safetensors.index.json`, and the files to copy (tokenizer,
//! license). Tensors are read one at a time with positioned reads, so memory holds one tensor.

use crate::error::{CompressError, bad, io};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use uc_format::num::f16_to_f32;
use uc_pack::safetensors::{Dtype, read_header};

/// One tensor of the source model.
#[derive(Debug, Clone)]
pub struct SourceTensor {
    /// Name.
    pub name: String,
    /// Index into [`SourceModel::files`].
    pub file: usize,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<u64>,
    /// Absolute file offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl SourceTensor {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A source safetensors file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// File name inside the model directory.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// An opened source model.
#[derive(Debug, Clone)]
pub struct SourceModel {
    /// The directory.
    pub dir: PathBuf,
    /// Safetensors files, sorted by name.
    pub files: Vec<SourceFile>,
    /// Every tensor, sorted by name.
    pub tensors: Vec<SourceTensor>,
    /// `config.json`, parsed (None when absent).
    pub config: Option<Value>,
    /// Every other file to copy into the pack, at any depth (config, tokenizer, license,
    /// sentence-transformers modules, …): relative `/`-separated name and path.
    pub extra_files: Vec<(String, PathBuf)>,
}

/// Largest `config.json` or shard index read.
const MAX_JSON_LEN: u64 = 64 << 20;
/// Deepest sub-directory of the source copied into the pack.
const MAX_DEPTH: usize = 16;

/// Collects the files to copy into the pack: every regular file under `dir`, at any depth (e.g.
/// sentence-transformers' `1_Pooling/config.json`), links followed (a Hugging Face cache snapshot
/// is made of links into its blob store), except hidden entries, the weights (`*.safetensors` at
/// the top level), the shard index and a manifest. Anything that is neither a regular file nor a
/// directory after following links (a FIFO, a device, a dangling link) is refused rather than
/// skipped or read; a directory reached twice through links is visited once.
fn collect_extra_files(
    dir: &Path,
    prefix: &str,
    depth: usize,
    visited: &mut Vec<PathBuf>,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), CompressError> {
    let canon = std::fs::canonicalize(dir).map_err(|e| io(dir, e))?;
    if visited.contains(&canon) {
        return Ok(());
    }
    visited.push(canon);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            return Err(bad(&e.path(), "the file name is not UTF-8"));
        };
        let rel = format!("{prefix}{name}");
        let top = prefix.is_empty();
        if name.starts_with('.')
            || (top
                && (name.ends_with(".safetensors")
                    || name == "model.safetensors.index.json"
                    || name == "ultracompress.json"
                    // The source's own OMS signature signs the source, not the pack.
                    || name == uc_sign::SIGNATURE_NAME))
        {
            continue;
        }
        let path = e.path();
        // Follows links: what counts is what the link points to.
        let meta = std::fs::metadata(&path).map_err(|err| bad(&path, format!("cannot be read: {err}")))?;
        if meta.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                return Err(bad(&path, format!("more than {MAX_DEPTH} levels of sub-directories")));
            }
            collect_extra_files(&path, &format!("{rel}/"), depth + 1, visited, out)?;
        } else if meta.is_file() {
            out.push((rel, path));
        } else {
            return Err(bad(
                &path,
                "not a regular file or directory (a FIFO, socket or device); it cannot be copied into the pack",
            ));
        }
    }
    Ok(())
}

/// Looks like a hub id ("org/name") rather than a local path.
fn looks_like_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'))
}

impl SourceModel {
    /// Opens and checks a model directory.
    pub fn open(dir: &Path) -> Result<Self, CompressError> {
        if !dir.exists() {
            let s = dir.to_string_lossy();
            if looks_like_hub_id(&s) {
                return Err(crate::error::opt(
                    "source",
                    format!(
                        "{s:?} is not a local directory; it looks like a model hub id, but uc works offline and \
                         only reads local Hugging Face model directories (download the model first)"
                    ),
                ));
            }
            return Err(bad(dir, "no such directory"));
        }
        if !dir.is_dir() {
            return Err(bad(dir, "not a directory (expected a Hugging Face model directory)"));
        }
        let cfg_path = dir.join("config.json");
        let config = if cfg_path.symlink_metadata().is_ok() {
            // A regular file of bounded size only (a FIFO would block, /dev/zero never end).
            let b = uc_pack::fs::read_capped(&cfg_path, MAX_JSON_LEN)?;
            Some(serde_json::from_slice(&b).map_err(|e| bad(&cfg_path, format!("invalid JSON: {e}")))?)
        } else {
            None
        };
        let index_path = dir.join("model.safetensors.index.json");
        let mut file_names: Vec<String> = if index_path.exists() {
            let bytes = uc_pack::fs::read_capped(&index_path, MAX_JSON_LEN)?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| bad(&index_path, format!("invalid JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(&index_path, "no \"weight_map\" object"))?;
            let mut names: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
            names.sort();
            names.dedup();
            for n in &names {
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    return Err(bad(&index_path, format!("shard name {n:?} is not a plain file name")));
                }
            }
            names
        } else if dir.join("model.safetensors").exists() {
            vec!["model.safetensors".to_string()]
        } else {
            return Err(bad(dir, "no model.safetensors and no model.safetensors.index.json"));
        };
        file_names.sort();
        let mut files = Vec::new();
        let mut tensors = Vec::new();
        for (fi, name) in file_names.iter().enumerate() {
            let path = dir.join(name);
            let (mut f, size) = uc_pack::fs::open_regular(&path)?;
            let header =
                read_header(&mut f, size)
                    .map_err(|e| io(&path, e))?
                    .map_err(|e| CompressError::BadSource {
                        path: path.clone(),
                        msg: e.to_string(),
                    })?;
            for t in &header.tensors {
                tensors.push(SourceTensor {
                    name: t.name.clone(),
                    file: fi,
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    offset: header.file_offset(t),
                    len: t.len(),
                });
            }
            files.push(SourceFile {
                name: name.clone(),
                path,
                size,
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        for w in tensors.windows(2) {
            if w[0].name == w[1].name {
                return Err(bad(
                    dir,
                    format!("tensor {:?} appears in more than one file", w[0].name),
                ));
            }
        }
        let mut extra_files = Vec::new();
        collect_extra_files(dir, "", 0, &mut Vec::new(), &mut extra_files)?;
        extra_files.sort();
        Ok(SourceModel {
            dir: dir.to_path_buf(),
            files,
            tensors,
            config,
            extra_files,
        })
    }

    /// SHA-256 of every safetensors file (provenance), by name.
    pub fn file_digests(&self) -> Result<BTreeMap<String, String>, CompressError> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            let mut file = File::open(&f.path).map_err(|e| io(&f.path, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = file.read(&mut buf).map_err(|e| io(&f.path, e))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
            }
            out.insert(f.name.clone(), uc_pack::hex(&h.finalize()));
        }
        Ok(out)
    }

    /// The raw bytes of a tensor.
    pub fn read_raw(&self, t: &SourceTensor) -> Result<Vec<u8>, CompressError> {
        let f = &self.files[t.file];
        let len = usize::try_from(t.len).map_err(|_| bad(&f.path, format!("tensor {} is too large", t.name)))?;
        let mut file = File::open(&f.path).map_err(|e| io(&f.path, e))?;
        file.seek(SeekFrom::Start(t.offset)).map_err(|e| io(&f.path, e))?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).map_err(|e| io(&f.path, e))?;
        Ok(buf)
    }

    /// The first `n` bytes of a tensor (at most its length).
    pub fn read_prefix(&self, t: &SourceTensor, n: u64) -> Result<Vec<u8>, CompressError> {
        let f = &self.files[t.file];
        let mut file = File::open(&f.path).map_err(|e| io(&f.path, e))?;
        file.seek(SeekFrom::Start(t.offset)).map_err(|e| io(&f.path, e))?;
        let mut buf = vec![0u8; n.min(t.len) as usize];
        file.read_exact(&mut buf).map_err(|e| io(&f.path, e))?;
        Ok(buf)
    }

    /// A floating-point tensor as f32 (F32, F16 and BF16 sources; exact conversions).
    pub fn read_f32(&self, t: &SourceTensor) -> Result<Vec<f32>, CompressError> {
        let raw = self.read_raw(t)?;
        let v = float_values(t.dtype, &raw).ok_or_else(|| CompressError::UnsupportedDtype {
            tensor: t.name.clone(),
            dtype: t.dtype.name().to_string(),
        })?;
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(CompressError::NonFinite {
                tensor: t.name.clone(),
                index: index as u64,
            });
        }
        Ok(v)
    }

    /// `hidden_size` (or `n_embd` / `d_model`) from config.json, when present.
    pub fn hidden_size(&self) -> Option<u64> {
        let c = self.config.as_ref()?;
        ["hidden_size", "n_embd", "d_model"]
            .iter()
            .find_map(|k| c.get(*k).and_then(Value::as_u64))
    }
}

/// The values of a tensor's little-endian F32, F16 or BF16 bytes as f32 (every conversion exact);
/// `None` for any other dtype. Trailing bytes short of a whole element are ignored (callers pass
/// bytes whose length the safetensors header already checked).
pub fn float_values(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        _ => return None,
    })
}
