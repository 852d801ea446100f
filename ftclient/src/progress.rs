//! Progress display and summaries: one bar per transfer on stderr (only when stderr is a
//! terminal and not `--quiet`), grouped under an overall bar for tree transfers (indicatif's
//! MultiProgress), and the one-line summaries printed when a transfer ends.

use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Where transfers draw their bars. Cloning shares the display.
#[derive(Debug, Clone)]
pub struct Progress {
    /// `None` when nothing is drawn (quiet, or stderr is not a terminal).
    shown: Option<Shown>,
}

#[derive(Debug, Clone)]
struct Shown {
    /// Present for tree transfers: the bars of the active files plus the overall bar.
    multi: Option<(MultiProgress, ProgressBar)>,
}

impl Progress {
    /// Bars for single transfers, shown when stderr is a terminal and not `quiet`.
    pub fn single(quiet: bool) -> Progress {
        Progress { shown: visible(quiet).then_some(Shown { multi: None }) }
    }

    /// One overall bar for `total` bytes in `files` files, with the active files' bars above it.
    pub fn group(total: u64, files: usize, quiet: bool) -> Progress {
        if !visible(quiet) {
            return Progress { shown: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(style("{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"));
        overall.set_message(format!("0/{files} files"));
        Progress { shown: Some(Shown { multi: Some((multi, overall)) }) }
    }

    /// A bar for one file of `len` bytes (unknown: a spinner) that starts at `position`.
    pub fn file(&self, len: Option<u64>, position: u64, label: &str) -> FileBar {
        let Some(shown) = &self.shown else {
            return FileBar { bar: ProgressBar::hidden(), overall: None, multi: None, last: position };
        };
        let (bar, template) = match len {
            Some(len) => (
                ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden()),
                "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
                "{spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed} {wide_msg}",
            ),
        };
        bar.set_style(style(template));
        let (bar, overall, multi) = match &shown.multi {
            Some((multi, overall)) => {
                let bar = multi.insert_before(overall, bar);
                bar.set_message(label.to_owned());
                overall.inc(position);
                (bar, Some(overall.clone()), Some(multi.clone()))
            }
            None => {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                (bar, None, None)
            }
        };
        bar.set_position(position);
        // The rate and ETA should count this run's bytes, not the resumed ones.
        bar.reset_eta();
        FileBar { bar, overall, multi, last: position }
    }

    /// Counts a finished (or failed) file on the overall bar.
    pub fn file_done(&self, done: usize, files: usize) {
        if let Some(Shown { multi: Some((_, overall)) }) = &self.shown {
            overall.set_message(format!("{done}/{files} files"));
        }
    }

    /// Removes the overall bar.
    pub fn finish(&self) {
        if let Some(Shown { multi: Some((multi, overall)) }) = &self.shown {
            overall.finish_and_clear();
            multi.remove(overall);
        }
    }
}

fn visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The bar of one transfer; it also advances the overall bar of a tree transfer.
#[derive(Debug)]
pub struct FileBar {
    bar: ProgressBar,
    overall: Option<ProgressBar>,
    multi: Option<MultiProgress>,
    last: u64,
}

impl FileBar {
    /// The transfer has reached `position` bytes.
    pub fn set(&mut self, position: u64) {
        self.bar.set_position(position);
        if let Some(overall) = &self.overall {
            overall.inc(position.saturating_sub(self.last));
        }
        self.last = position;
    }

    /// Clears the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
        if let Some(multi) = &self.multi {
            multi.remove(&self.bar);
        }
    }
}

/// `1.00 MiB (1048576 bytes) in 2.00 s, 512.00 KiB/s`: what was moved in this run; `total`
/// counts resumed bytes too. Below 1 KiB the count is said once: `1 byte`, `700 bytes`.
pub fn summary(moved: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let rate = (moved as f64 / secs) as u64;
    let size = if total < 1024 {
        let resumed = if moved == total { String::new() } else { format!(" ({moved} of them now)") };
        format!("{}{resumed}", count(total, "byte"))
    } else {
        let resumed = if moved == total { String::new() } else { format!(", {} of them now", BinaryBytes(moved)) };
        format!("{} ({total} bytes{resumed})", BinaryBytes(total))
    };
    format!("{size} in {secs:.2} s, {}/s", BinaryBytes(rate))
}

/// `1 byte`, `2 bytes`, `0 bytes`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises() {
        assert_eq!(
            summary(1 << 20, 1 << 20, Duration::from_secs(2)),
            "1.00 MiB (1048576 bytes) in 2.00 s, 512.00 KiB/s"
        );
        assert_eq!(
            summary(512, 1024, Duration::from_secs(1)),
            "1.00 KiB (1024 bytes, 512 B of them now) in 1.00 s, 512 B/s"
        );
        // Small sizes say their count once, in words that agree with it.
        assert_eq!(summary(1, 1, Duration::from_secs(1)), "1 byte in 1.00 s, 1 B/s");
        assert_eq!(summary(0, 0, Duration::from_secs(1)), "0 bytes in 1.00 s, 0 B/s");
        assert_eq!(summary(200, 700, Duration::from_secs(1)), "700 bytes (200 of them now) in 1.00 s, 200 B/s");
        assert_eq!(summary(1023, 1023, Duration::from_secs(1)), "1023 bytes in 1.00 s, 1023 B/s");
    }

    #[test]
    fn hidden_bars_count_nothing() {
        let progress = Progress::group(100, 2, true);
        let mut bar = progress.file(Some(10), 0, "a");
        bar.set(10);
        bar.finish();
        progress.file_done(1, 2);
        progress.finish();
    }
}
