//! The project's one file-system layer: atomic file writes, staged directories installed in one
//! rename, directory syncs, and the rule of what an output may replace.
//!
//! Every command that writes a file or a directory a user keeps (`uc compress`, `uc unpack`,
//! `uc import-gguf`, `uc-verify --receipt`, the pack writer) goes through here, so they share one
//! set of guarantees:
//!
//! - nothing partial ever stands at a final path: files and directories are written under a
//!   temporary sibling name (`.<name>.tmp-<pid>`), synced, then renamed;
//! - a previous output is kept until the new one is in place: it is moved aside (not deleted), the
//!   new one is renamed in, and only then is the old one removed; if the second rename fails, the old
//!   one is moved back;
//! - a temporary directory never outlives a failed run ([`StagedDir`] removes it when dropped), and
//!   those of killed runs are recognised by name and removed by the next run ([`remove_stale_temps`]);
//! - [`check_output`] refuses an output path that is, contains or lies inside an input, is `/` or
//!   the current directory, or exists and is not a previous output of the same command: `--fresh`
//!   replaces only what the command itself wrote.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// An I/O operation that failed, with its path.
#[derive(Debug)]
pub struct FsError {
    /// The path concerned.
    pub path: PathBuf,
    /// What was being done (`"create"`, `"rename into place"`, …).
    pub op: &'static str,
    /// The error.
    pub source: io::Error,
}

impl FsError {
    /// A closure for `map_err` that wraps an [`io::Error`] with `path` and `op`.
    pub fn at(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> FsError + use<> {
        let path = path.to_path_buf();
        move |source| FsError { path, op, source }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.op, self.source)
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The directory that holds `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary sibling of `path` used by this process: `.<name>.tmp-<pid>` in the same directory
/// (so the final rename stays within one file system).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Syncs a directory's entries (the renames into it) where the OS supports it.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(FsError::at(dir, "sync directory"))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary sibling is written and synced, renamed over
/// `path`, and the directory is synced. A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, bytes, &mut || {})
}

/// [`write_atomic`] that calls `event` after the temporary file is synced and again after the
/// rename (the encoder's crash-test hook counts these).
pub fn write_atomic_with(path: &Path, bytes: &[u8], event: &mut dyn FnMut()) -> Result<(), FsError> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(FsError::at(&tmp, "create"))?;
        f.write_all(bytes).map_err(FsError::at(&tmp, "write"))?;
        f.sync_all().map_err(FsError::at(&tmp, "sync"))?;
        drop(f);
        event();
        abort_at("file");
        fs::rename(&tmp, path).map_err(FsError::at(path, "rename into place"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    event();
    sync_dir(&parent_dir(path))
}

/// Environment variable of a test hook: `UC_TEST_FS_ABORT=<stage>` aborts the process (no
/// destructor or cleanup runs, as `kill -9`) at that stage of an install: `staged` (the new output
/// is complete, nothing replaced yet), `swapped` (the new output is in place, the old one not yet
/// removed), `file` ([`write_atomic`]: the temporary file is synced, not yet renamed). For the
/// tests that kill each command between its steps; unset, it has no effect.
#[doc(hidden)]
pub const ABORT_VAR: &str = "UC_TEST_FS_ABORT";

fn abort_at(stage: &str) {
    if std::env::var(ABORT_VAR).is_ok_and(|v| v == stage) {
        eprintln!("{ABORT_VAR}={stage}: aborting (test hook)");
        std::process::abort();
    }
}

/// Exchanges two directory entries atomically (Linux `renameat2(RENAME_EXCHANGE)`); `Ok(false)`
/// where the OS or file system cannot.
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(true),
            Err(e)
                if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::NOTSUP =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// The set-aside name of a previous output while it is being replaced (fallback path of
/// [`install_dir`] where no atomic exchange exists): `.<name>.uc-old`, the same for every process,
/// so that [`recover_install`] finds it after a crash.
pub fn aside_path(final_dir: &Path) -> PathBuf {
    let name = final_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(final_dir).join(format!(".{name}.uc-old"))
}

/// Completes an install that a crash interrupted on the fallback path: when the previous output
/// sits at [`aside_path`] and `final_dir` is missing, it is moved back; when both exist (the new
/// one was installed), the set-aside one is removed. Returns whether anything was done.
pub fn recover_install(final_dir: &Path) -> Result<bool, FsError> {
    let aside = aside_path(final_dir);
    if aside.symlink_metadata().is_err() {
        return Ok(false);
    }
    if final_dir.symlink_metadata().is_err() {
        fs::rename(&aside, final_dir).map_err(FsError::at(final_dir, "restore the previous output"))?;
        sync_dir(&parent_dir(final_dir))?;
    } else {
        remove_any(&aside).map_err(FsError::at(&aside, "remove the replaced output"))?;
    }
    Ok(true)
}

/// Moves the finished directory `staged` to `final_dir`, replacing what is there only once the new
/// one is complete. On Linux the two are exchanged in one atomic rename (`renameat2` with
/// `RENAME_EXCHANGE`): at every instant `final_dir` holds the old output or the new one, never
/// nothing; the old one, now at `staged`, is then removed. Elsewhere (or on a file system without
/// exchange) the old output is renamed to [`aside_path`], the new one renamed in (the old one moved
/// back if that fails), and the old one removed; a crash in between is repaired by
/// [`recover_install`], which every installing command runs first.
pub fn install_dir(staged: &Path, final_dir: &Path) -> Result<(), FsError> {
    abort_at("staged");
    let parent = parent_dir(final_dir);
    if final_dir.symlink_metadata().is_err() {
        fs::rename(staged, final_dir).map_err(FsError::at(final_dir, "rename into place"))?;
        return sync_dir(&parent);
    }
    if exchange(staged, final_dir).map_err(FsError::at(final_dir, "exchange with the new output"))? {
        sync_dir(&parent)?;
        abort_at("swapped");
        return remove_any(staged).map_err(FsError::at(staged, "remove the previous output"));
    }
    let aside = aside_path(final_dir);
    if aside.symlink_metadata().is_ok() {
        remove_any(&aside).map_err(FsError::at(&aside, "remove stale directory"))?;
    }
    fs::rename(final_dir, &aside).map_err(FsError::at(final_dir, "move the previous output aside"))?;
    if let Err(e) = fs::rename(staged, final_dir) {
        let _ = fs::rename(&aside, final_dir);
        return Err(FsError {
            path: final_dir.to_path_buf(),
            op: "rename into place",
            source: e,
        });
    }
    sync_dir(&parent)?;
    abort_at("swapped");
    remove_any(&aside).map_err(FsError::at(&aside, "remove the previous output"))
}

fn remove_any(p: &Path) -> io::Result<()> {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A directory being filled beside its final path (`.<name>.tmp-<pid>`), removed when dropped
/// unless [`StagedDir::install`] moved it into place.
#[derive(Debug)]
pub struct StagedDir {
    tmp: PathBuf,
    final_dir: PathBuf,
    installed: bool,
}

impl StagedDir {
    /// Creates the temporary directory for `final_dir` (a stale one of this process id is removed
    /// first; those of other dead runs are removed by [`remove_stale_temps`]).
    pub fn new(final_dir: &Path) -> Result<Self, FsError> {
        recover_install(final_dir)?;
        let tmp = temp_sibling(final_dir);
        remove_any(&tmp).map_err(FsError::at(&tmp, "remove stale temporary directory"))?;
        fs::create_dir_all(&tmp).map_err(FsError::at(&tmp, "create temporary directory"))?;
        Ok(StagedDir {
            tmp,
            final_dir: final_dir.to_path_buf(),
            installed: false,
        })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn final_path(&self) -> &Path {
        &self.final_dir
    }

    /// Syncs the staged directory and installs it at the final path with [`install_dir`] (the
    /// previous output, if any, is removed only once the new one is in place).
    pub fn install(mut self) -> Result<(), FsError> {
        sync_dir(&self.tmp)?;
        let r = install_dir(&self.tmp, &self.final_dir);
        // After an exchange the temporary path held the old output and is gone; after a failure
        // it still holds the new one, which Drop removes.
        self.installed = r.is_ok();
        r
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Removes the temporary siblings `.<name>.tmp-<pid>` of `final_path` left by runs that were
/// killed: those whose process no longer exists (Linux: no `/proc/<pid>`; elsewhere only this
/// process's own). Returns how many were removed.
pub fn remove_stale_temps(final_path: &Path) -> usize {
    let Some(name) = final_path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(parent_dir(final_path)) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&format!(".{name}.tmp-"))
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let dead =
            pid == std::process::id() || (cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists());
        if dead && remove_any(&e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Why a file could not be read by [`read_capped`].
#[derive(Debug)]
pub enum ReadError {
    /// The path is not a regular file (a directory, a FIFO, a device…), after following links.
    NotRegular(PathBuf),
    /// The file is larger than the cap.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// An I/O error.
    Io(FsError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotRegular(p) => write!(f, "{}: not a regular file", p.display()),
            ReadError::TooLarge { path, size, cap } => {
                write!(f, "{}: {size} bytes, more than the {cap} accepted", path.display())
            }
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

/// Opens `path` for reading only if it is a regular file (checked before opening, so a FIFO never
/// blocks, and again on the open handle); returns the file and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64), ReadError> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(ReadError::NotRegular(path.to_path_buf())),
        Err(e) => return Err(ReadError::Io(FsError::at(path, "open")(e))),
    }
    let f = File::open(path).map_err(|e| ReadError::Io(FsError::at(path, "open")(e)))?;
    let m = f.metadata().map_err(|e| ReadError::Io(FsError::at(path, "stat")(e)))?;
    if !m.is_file() {
        return Err(ReadError::NotRegular(path.to_path_buf()));
    }
    Ok((f, m.len()))
}

/// Reads a whole regular file of at most `cap` bytes (a FIFO, device or larger file is refused
/// before anything is read or allocated).
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let (f, size) = open_regular(path)?;
    if size > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size,
            cap,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(FsError::at(path, "read")(e)))?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(buf)
}

/// What kind of output a command writes, so that [`check_output`] can recognise a previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A pack (`uc compress`): a directory with `ultracompress.json` and `model.safetensors` or a
    /// shard index.
    Pack,
    /// A decoded model (`uc unpack`): a directory with the marker file [`UNPACK_MARKER`].
    Unpacked,
    /// An imported model (`uc import-gguf`): a directory whose `config.json` has a `uc_import`
    /// member.
    Imported,
    /// A single file (a receipt) that may be overwritten when it is a regular file.
    File,
    /// A signature file (`uc sign`): a regular file holding a Sigstore bundle (JSON whose
    /// `mediaType` is a `application/vnd.dev.sigstore.bundle` type), as OMS signatures are.
    Signature,
}

/// Marker file that `uc unpack` writes into its output so that a later `--fresh` run recognises it.
pub const UNPACK_MARKER: &str = "uc-unpack.json";

impl OutputKind {
    fn describe(self) -> &'static str {
        match self {
            OutputKind::Pack => "a uc pack (ultracompress.json with model.safetensors or a shard index)",
            OutputKind::Unpacked => "the output of uc unpack (uc-unpack.json)",
            OutputKind::Imported => "the output of uc import-gguf (config.json with uc_import)",
            OutputKind::File => "a regular file",
            OutputKind::Signature => "a Sigstore bundle (JSON with a sigstore bundle mediaType)",
        }
    }

    /// Whether `path` (which exists) looks like a previous output of this kind.
    pub fn recognises(self, path: &Path) -> bool {
        let file = |p: PathBuf| p.symlink_metadata().is_ok_and(|m| m.is_file());
        match self {
            OutputKind::Pack => {
                file(path.join(crate::manifest::MANIFEST_NAME))
                    && (file(path.join(crate::layout::SINGLE_NAME)) || file(path.join(crate::layout::INDEX_NAME)))
            }
            OutputKind::Unpacked => file(path.join(UNPACK_MARKER)),
            OutputKind::Imported => {
                let cfg = path.join("config.json");
                file(cfg.clone())
                    && read_capped(&cfg, 64 << 20)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .is_some_and(|v| v.get("uc_import").is_some())
            }
            OutputKind::File => file(path.to_path_buf()),
            OutputKind::Signature => {
                file(path.to_path_buf())
                    && read_capped(path, 64 << 20)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .is_some_and(|v| {
                            v.get("mediaType")
                                .and_then(|m| m.as_str())
                                .is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle"))
                        })
            }
        }
    }
}

/// Why an output path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// The output is `/`, the current directory or one of its ancestors.
    Protected(PathBuf),
    /// The output is an input, holds an input, or lies inside one.
    OverlapsInput {
        /// The output.
        output: PathBuf,
        /// The input.
        input: PathBuf,
    },
    /// The output exists and replacing it was not asked for.
    Exists(PathBuf),
    /// The output exists but is not something this command wrote, so it is never replaced.
    NotOurs {
        /// The output.
        path: PathBuf,
        /// What a previous output of this command looks like.
        expected: &'static str,
    },
    /// The output is a symbolic link (never replaced: the link, not its target, would go).
    Symlink(PathBuf),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Protected(p) => write!(
                f,
                "{}: refusing to write over the root, the current directory or one of its ancestors",
                p.display()
            ),
            OutputError::OverlapsInput { output, input } => write!(
                f,
                "{}: the output would overlap the input {} (it is, holds or lies inside it)",
                output.display(),
                input.display()
            ),
            OutputError::Exists(p) => write!(f, "{} already exists", p.display()),
            OutputError::NotOurs { path, expected } => write!(
                f,
                "{} exists and is not a previous output of this command (expected {expected}); it is never replaced: remove it yourself or choose another output",
                path.display()
            ),
            OutputError::Symlink(p) => write!(f, "{} is a symbolic link; it is never replaced", p.display()),
        }
    }
}

impl std::error::Error for OutputError {}

/// The absolute, normalised form of `p`: the longest existing prefix is canonicalised (links
/// resolved), the rest appended with `.` and `..` folded lexically.
pub fn normalize(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out = fs::canonicalize(&out).unwrap_or(out);
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Resolve links in the longest existing prefix.
    let mut tail = Vec::new();
    let mut head = out.clone();
    loop {
        if let Ok(c) = fs::canonicalize(&head) {
            let mut r = c;
            for t in tail.iter().rev() {
                r.push(t);
            }
            return r;
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(n), Some(par)) => {
                tail.push(n);
                head = par.to_path_buf();
            }
            _ => return out,
        }
    }
}

/// Checks that `output` may be written by a command of `kind` reading `inputs`: it must not be `/`,
/// the current directory or an ancestor of it, must not be, hold or lie inside an input, and when
/// it exists it must be a previous output of the same kind (then it is replaced only when
/// `replace` is true) or an empty directory. Returns whether the output exists.
pub fn check_output(output: &Path, kind: OutputKind, inputs: &[&Path], replace: bool) -> Result<bool, OutputError> {
    let out = normalize(output);
    let cwd = normalize(Path::new("."));
    if out.parent().is_none() || cwd.starts_with(&out) {
        return Err(OutputError::Protected(output.to_path_buf()));
    }
    for input in inputs {
        let inp = normalize(input);
        if inp.starts_with(&out) || out.starts_with(&inp) {
            return Err(OutputError::OverlapsInput {
                output: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    // A path ending in `..` names the directory it resolves to; any other is looked at as given
    // (so that a link at the final component is seen as a link, not as its target).
    let at: &Path = if output.file_name().is_some() { output } else { &out };
    let meta = match at.symlink_metadata() {
        Ok(m) => m,
        Err(_) => return Ok(false),
    };
    if meta.file_type().is_symlink() {
        return Err(OutputError::Symlink(output.to_path_buf()));
    }
    let empty_dir = meta.is_dir() && fs::read_dir(at).is_ok_and(|mut d| d.next().is_none());
    if !empty_dir && !kind.recognises(at) {
        return Err(OutputError::NotOurs {
            path: output.to_path_buf(),
            expected: kind.describe(),
        });
    }
    if !replace {
        return Err(OutputError::Exists(output.to_path_buf()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("uc-pack-fs-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn write_atomic_replaces_whole_files_and_leaves_no_temporary() {
        let s = Scratch::new("atomic");
        let p = s.0.join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&s.0).unwrap().count(), 1);
        // A failed write (the parent does not exist) leaves nothing behind.
        assert!(write_atomic(&s.0.join("no/such"), b"x").is_err());
        assert_eq!(fs::read_dir(&s.0).unwrap().count(), 1);
    }

    #[test]
    fn install_keeps_the_previous_output_when_the_new_one_cannot_be_moved_in() {
        let s = Scratch::new("install");
        let out = s.0.join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("old.txt"), b"old").unwrap();
        // The staged directory does not exist: the install fails, the old output stays.
        let err = install_dir(&s.0.join("missing"), &out).unwrap_err();
        assert!(err.op.contains("exchange") || err.op == "rename into place", "{err}");
        assert_eq!(fs::read(out.join("old.txt")).unwrap(), b"old");
        assert!(!aside_path(&out).exists());
        // A crash on the fallback path left the old output aside and nothing at the final path:
        // the next run puts it back.
        fs::rename(&out, aside_path(&out)).unwrap();
        assert!(recover_install(&out).unwrap());
        assert_eq!(fs::read(out.join("old.txt")).unwrap(), b"old");
        // A real install replaces it and removes the old one.
        let staged = StagedDir::new(&out).unwrap();
        fs::write(staged.path().join("new.txt"), b"new").unwrap();
        staged.install().unwrap();
        assert_eq!(fs::read(out.join("new.txt")).unwrap(), b"new");
        assert!(!out.join("old.txt").exists());
        assert_eq!(fs::read_dir(&s.0).unwrap().count(), 1, "no temporary or aside left");
    }

    #[test]
    fn a_dropped_staged_directory_is_removed() {
        let s = Scratch::new("drop");
        let out = s.0.join("out");
        {
            let st = StagedDir::new(&out).unwrap();
            fs::write(st.path().join("x"), b"x").unwrap();
        }
        assert_eq!(fs::read_dir(&s.0).unwrap().count(), 0);
        // A killed run's temporary (a pid that does not exist) is removed by the next run.
        let dead = s.0.join(format!(".out.tmp-{}", u32::MAX - 1));
        fs::create_dir(&dead).unwrap();
        fs::create_dir(s.0.join(".other.tmp-1")).unwrap();
        assert_eq!(remove_stale_temps(&out), usize::from(cfg!(target_os = "linux")));
        assert!(s.0.join(".other.tmp-1").exists());
    }

    #[test]
    fn outputs_that_are_inputs_ancestors_or_foreign_are_refused() {
        let s = Scratch::new("check");
        let src = s.0.join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("config.json"), b"{}").unwrap();
        let inputs = [src.as_path()];
        let refused = |o: &Path| check_output(o, OutputKind::Pack, &inputs, true).unwrap_err();
        assert!(matches!(refused(&src), OutputError::OverlapsInput { .. }));
        assert!(matches!(
            refused(&src.join("sub/..")),
            OutputError::OverlapsInput { .. }
        ));
        assert!(matches!(refused(&s.0), OutputError::OverlapsInput { .. }));
        assert!(matches!(
            refused(&src.join("sub/pack")),
            OutputError::OverlapsInput { .. }
        ));
        assert!(matches!(refused(Path::new("/")), OutputError::Protected(_)));
        assert!(matches!(refused(Path::new(".")), OutputError::Protected(_)));
        assert!(matches!(refused(Path::new("..")), OutputError::Protected(_)));
        // An unrelated non-empty directory is never replaced; an empty one may be.
        let other = s.0.join("other");
        fs::create_dir(&other).unwrap();
        assert_eq!(check_output(&other, OutputKind::Pack, &inputs, true), Ok(true));
        fs::write(other.join("thesis.tex"), b"years of work").unwrap();
        assert!(matches!(refused(&other), OutputError::NotOurs { .. }));
        // A previous pack is replaced only when asked.
        let pack = s.0.join("pack");
        fs::create_dir(&pack).unwrap();
        fs::write(pack.join("ultracompress.json"), b"{}").unwrap();
        fs::write(pack.join("model.safetensors"), b"").unwrap();
        assert_eq!(check_output(&pack, OutputKind::Pack, &inputs, true), Ok(true));
        assert_eq!(
            check_output(&pack, OutputKind::Pack, &inputs, false),
            Err(OutputError::Exists(pack.clone()))
        );
        assert!(matches!(
            check_output(&pack, OutputKind::Unpacked, &inputs, true),
            Err(OutputError::NotOurs { .. })
        ));
        assert_eq!(
            check_output(&s.0.join("new"), OutputKind::Pack, &inputs, false),
            Ok(false)
        );
    }
}
