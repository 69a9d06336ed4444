//! The work directory of `uc compress`: its lock and its journal.
//!
//! The journal is what makes a run resumable (see `docs/compress-pipeline.md` for the protocol):
//! every result is written atomically (through `uc_pack::fs`) into `.<name>.uc-work/` beside the
//! output, as versioned JSON that serde reads back strictly. A journal entry that exists but does
//! not parse as this version's schema is an error ([`CompressError::Journal`]), never a silent
//! recomputation. The work directory is held by one process at a time ([`WorkLock`]).
//!
//! Calibrators (the `calibrate` module's trait) journal their per-layer records with
//! [`journal_record`] and read them back with [`journaled_record`].

use crate::error::{CompressError, io};
use crate::tensor::{Candidate, EncodedTensor};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Version of the journal's JSON files; a journal of another version is refused loudly.
pub const JOURNAL_VERSION: u32 = 1;

/// Environment variable of the crash test hook: at the k-th journal event of the process (two per
/// atomic write: after the temporary file is synced, after the rename) the process aborts, as
/// `kill -9` would. For the crash-resume tests; unset, it has no effect.
#[doc(hidden)]
pub const CRASH_AT_VAR: &str = "UC_TEST_CRASH_AT";

fn journal_event() {
    static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
    static EVENTS: AtomicU64 = AtomicU64::new(0);
    let at = *CRASH_AT.get_or_init(|| std::env::var(CRASH_AT_VAR).ok().and_then(|s| s.trim().parse().ok()));
    if let Some(k) = at
        && EVENTS.fetch_add(1, Ordering::SeqCst) + 1 == k
    {
        eprintln!("uc: {CRASH_AT_VAR}={k}: aborting at journal event {k} (test hook)");
        std::process::abort();
    }
}

/// Writes a journal file atomically (temporary sibling, fsync, rename, directory sync); two events
/// of the crash hook.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CompressError> {
    uc_pack::fs::write_atomic_with(path, bytes, &mut journal_event).map_err(CompressError::from)
}

/// Writes `value` as a journal file of this version: its members plus `"version"`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CompressError> {
    let fail = |msg: String| CompressError::Journal {
        path: path.to_path_buf(),
        msg,
    };
    let mut v = serde_json::to_value(value).map_err(|e| fail(format!("cannot serialise: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| fail("a journal entry must be an object".into()))?;
    obj.insert("version".into(), JOURNAL_VERSION.into());
    write_atomic(path, v.to_string().as_bytes())
}

/// Reads a journal file: `None` when it does not exist; [`CompressError::Journal`] when it exists
/// but is not of this version's schema (another version, a missing or unknown member).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, CompressError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let fail = |msg: String| CompressError::Journal {
        path: path.to_path_buf(),
        msg,
    };
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))?;
    let version = v
        .as_object_mut()
        .and_then(|o| o.remove("version"))
        .and_then(|x| x.as_u64());
    if version != Some(u64::from(JOURNAL_VERSION)) {
        return Err(fail(format!(
            "journal version {version:?}, this tool reads and writes version {JOURNAL_VERSION}"
        )));
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| fail(format!("not a version-{JOURNAL_VERSION} journal entry: {e}")))
}

/// `job.json`: what the journal was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEntry {
    /// Digest of the tool version, source files and options.
    pub fingerprint: String,
    /// `created_at` of the first run, kept by resumed runs.
    pub created_at: String,
}

/// `install.json`: the verified pack is being moved to the final path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallEntry {
    /// The job's fingerprint.
    pub fingerprint: String,
}

/// `cand-NNNNNN.json`: phase 1's candidates of one tensor; f64 values as their exact bits so that a
/// resumed run sees identical numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidatesEntry {
    /// Weights.
    pub n: u64,
    /// `‖W‖²` as f64 bits.
    pub norm2_bits: u64,
    /// `[bits, rank, cost_bits, err2 as f64 bits]` per candidate.
    pub candidates: Vec<(u8, u32, u64, u64)>,
}

/// `rec-NNNNNN.json`: the metadata of a journaled record `rec-NNNNNN.ucr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEntry {
    /// SHA-256 of the record file.
    pub sha256: String,
    /// Code width.
    pub bits: u8,
    /// Rank that was asked for.
    pub rank_wanted: u32,
    /// Rank stored (at most the one asked for).
    pub rank: u32,
    /// `‖W − Ŵ‖²` as f64 bits.
    pub err2_bits: u64,
    /// `‖W‖²` as f64 bits.
    pub norm2_bits: u64,
}

/// A record written to the work directory.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Where the record is.
    pub path: PathBuf,
    /// `‖W − Ŵ‖²`.
    pub err2: f64,
    /// `‖W‖²`.
    pub norm2: f64,
    /// Its validated layout.
    pub layout: uc_format::Layout,
}

impl Encoded {
    /// `‖W − Ŵ‖ / ‖W‖` by [`uc_pack::digest::rel_l2`]; NaN where that is undefined (an all-zero
    /// tensor reconstructed inexactly, which GSQ cannot produce: its scales are then 0), which the
    /// pack writer refuses rather than record.
    pub fn rel_l2(&self) -> f64 {
        uc_pack::digest::rel_l2(self.err2, self.norm2).unwrap_or(f64::NAN)
    }
}

fn record_paths(work: &Path, idx: usize) -> (PathBuf, PathBuf) {
    (
        work.join(format!("rec-{idx:06}.ucr")),
        work.join(format!("rec-{idx:06}.json")),
    )
}

/// The record of tensor `idx` journaled by an earlier run for the choice `c`: `None` when there is
/// none (or it was made for another choice, or its record file does not match its digest, e.g. it
/// was written but its metadata was not); an error when the metadata is not of this schema.
pub fn journaled_record(work: &Path, idx: usize, c: &Candidate) -> Result<Option<Encoded>, CompressError> {
    let (rec_path, meta_path) = record_paths(work, idx);
    let Some(meta) = read_json::<RecordEntry>(&meta_path)? else {
        return Ok(None);
    };
    let Ok(rec) = std::fs::read(&rec_path) else {
        return Ok(None);
    };
    if meta.sha256 != uc_pack::hex(&Sha256::digest(&rec)) || meta.bits != c.bits || meta.rank_wanted != c.rank {
        return Ok(None);
    }
    Ok(uc_format::validate(&rec).ok().map(|layout| Encoded {
        path: rec_path,
        err2: f64::from_bits(meta.err2_bits),
        norm2: f64::from_bits(meta.norm2_bits),
        layout,
    }))
}

/// Journals the record of tensor `idx` (validated first) and its metadata, atomically.
pub fn journal_record(
    work: &Path,
    idx: usize,
    name: &str,
    c: &Candidate,
    enc: &EncodedTensor,
) -> Result<Encoded, CompressError> {
    let (rec_path, meta_path) = record_paths(work, idx);
    let layout = uc_format::validate(&enc.record).map_err(|e| CompressError::Internal {
        msg: format!("tensor {name}: the encoder wrote an invalid record: {e}"),
    })?;
    write_atomic(&rec_path, &enc.record)?;
    let meta = RecordEntry {
        sha256: uc_pack::hex(&Sha256::digest(&enc.record)),
        bits: enc.bits,
        rank_wanted: c.rank,
        rank: enc.rank,
        err2_bits: enc.err2.to_bits(),
        norm2_bits: enc.norm2.to_bits(),
    };
    write_json(&meta_path, &meta)?;
    Ok(Encoded {
        path: rec_path,
        err2: enc.err2,
        norm2: enc.norm2,
        layout,
    })
}

/// Exclusive hold of a work directory for the life of a run (an OS file lock on `lock`, which the
/// kernel releases when the process ends, however it ends). A second run on the same output is
/// refused with [`CompressError::Busy`], naming the process that holds it.
#[derive(Debug)]
pub struct WorkLock {
    _file: File,
}

impl WorkLock {
    /// Creates `work` if needed and locks it.
    pub fn acquire(work: &Path) -> Result<WorkLock, CompressError> {
        std::fs::create_dir_all(work).map_err(|e| io(work, e))?;
        let path = work.join("lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                return Err(CompressError::Busy {
                    work: work.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        let me = format!("process {} on {}\n", std::process::id(), hostname());
        f.set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| f.write_all(me.as_bytes()))
            .and_then(|_| f.sync_all())
            .map_err(|e| io(&path, e))?;
        Ok(WorkLock { _file: f })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}

/// Whether `work` is held by a running process (used before removing it).
pub fn is_locked(work: &Path) -> bool {
    let Ok(f) = File::open(work.join("lock")) else {
        return false;
    };
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_other_schemas_fail_loudly() {
        let dir = std::env::temp_dir().join(format!("uc-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cand-000001.json");
        let e = CandidatesEntry {
            n: 10,
            norm2_bits: (0.1f64 + 0.2).to_bits(),
            candidates: vec![(3, 8, 12345, (1.0f64 / 3.0).to_bits())],
        };
        write_json(&p, &e).unwrap();
        assert_eq!(read_json::<CandidatesEntry>(&p).unwrap(), Some(e));
        assert_eq!(read_json::<CandidatesEntry>(&dir.join("none.json")).unwrap(), None);
        for bad in [
            r#"{"n": 10, "norm2_bits": 1, "candidates": []}"#,
            r#"{"version": 2, "n": 10, "norm2_bits": 1, "candidates": []}"#,
            r#"{"version": 1, "n": 10, "norm2": 1, "candidates": []}"#,
            "[1, 2]",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_json::<CandidatesEntry>(&p), Err(CompressError::Journal { .. })),
                "{bad}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_work_directory_has_one_holder() {
        let dir = std::env::temp_dir().join(format!("uc-lock-{}", std::process::id()));
        let lock = WorkLock::acquire(&dir).unwrap();
        assert!(is_locked(&dir));
        match WorkLock::acquire(&dir) {
            Err(CompressError::Busy { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}")
            }
            other => panic!("{other:?}"),
        }
        drop(lock);
        assert!(!is_locked(&dir));
        drop(WorkLock::acquire(&dir).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
