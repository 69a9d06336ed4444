//! What every subcommand shares: text helpers, the progress bar, writing stdout, the thread pool.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;

/// The progress bar of the running command (indicatif, on stderr, terminals only).
static BAR: std::sync::Mutex<Option<(String, ProgressBar)>> = std::sync::Mutex::new(None);

/// Progress callback: one bar per phase (analyse, encode), a message for the final write.
pub fn progress_bar(phase: &str, done: usize, total: usize, name: &str) {
    let Ok(mut slot) = BAR.lock() else { return };
    if slot.as_ref().is_none_or(|(p, _)| p != phase) {
        if let Some((_, old)) = slot.take() {
            old.finish();
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase.to_string());
        *slot = Some((phase.to_string(), bar));
    }
    if let Some((_, bar)) = slot.as_ref() {
        if phase == "write" {
            bar.set_message("writing and verifying the pack");
        } else {
            bar.set_position(done as u64);
            bar.set_message(uc_pack::text::esc(name).into_owned());
        }
    }
}

/// The progress callback of a long command: [`progress_bar`] on a terminal, none otherwise.
pub fn progress_if_terminal() -> Option<fn(&str, usize, usize, &str)> {
    use std::io::IsTerminal;
    std::io::stderr()
        .is_terminal()
        .then_some(progress_bar as fn(&str, usize, usize, &str))
}

pub fn finish_progress() {
    if let Ok(mut slot) = BAR.lock()
        && let Some((_, bar)) = slot.take()
    {
        bar.finish_and_clear();
    }
}

pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

/// Writes the command's output to stdout in one piece. A reader that closed its end early (`uc
/// inspect pack | head`) is not an error: the output is simply not wanted any more.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    // Names in the text are escaped where they are printed (uc_pack::text::esc); this last pass
    // escapes whatever unsafe character is left, in JSON as in text, so none reaches the terminal.
    let text = uc_pack::text::json_safe(text);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Sizes rayon's global pool (`--threads`).
pub fn set_threads(t: usize) -> Result<(), uc_encode::error::CompressError> {
    if t == 0 {
        return Err(uc_encode::error::CompressError::Usage(
            "--threads must be at least 1".into(),
        ));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build_global()
        .map_err(|e| uc_encode::error::CompressError::Usage(format!("--threads: {e}")))
}

/// Cores available to this process.
pub fn cpu_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
