//! Progress on stderr: a progress bar when stderr is a terminal, otherwise
//! a plain line every few seconds (logs, CI, pipes). Summaries go to
//! stdout, separately.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress reporter.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    last_line: Option<Instant>,
    every: Duration,
}

impl Progress {
    /// Starts reporting `label`, out of `total` when known.
    pub fn new(label: &str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Self { bar, label: label.to_owned(), total, last_line: None, every: Duration::from_secs(2) };
        progress.style();
        progress
    }

    fn style(&self) {
        let Some(bar) = &self.bar else { return };
        let template = if self.total.is_some() {
            "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})"
        } else {
            "{spinner} {prefix} {pos} {msg} ({elapsed})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
    }

    /// Sets the total (e.g. once a queue's depth is known).
    pub fn set_total(&mut self, total: u64) {
        let had = self.total.is_some();
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
        if !had {
            self.style();
        }
    }

    /// Reports `position` with a message; without a terminal, prints a line
    /// at most every two seconds.
    pub fn update(&mut self, position: u64, message: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message());
            }
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= self.every) {
                    self.last_line = Some(Instant::now());
                    let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                    eprintln!("{}: {position}{of} {}", self.label, message());
                }
            }
        }
    }

    /// Removes the bar (the caller prints the summary).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
