//! The terminal side of [`Reporter`]: what a person sees while bytes move. An indicatif bar
//! per cache on a TTY; in CodeBuild logs (no TTY) at most one line every 10 s per cache, and
//! always one summary line (printed by the command).

use crate::output::{self, verbosity, Verbosity};
use crate::transfer::Reporter;
use crate::units::{human_bytes, rate};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const HEARTBEAT: Duration = Duration::from_secs(10);

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)))
}

/// Progress of one transfer. Cheap to update from any thread.
pub struct Progress {
    label: String,
    total: AtomicU64,
    done: AtomicU64,
    started: Instant,
    last_line: std::sync::Mutex<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `label` is e.g. `restore npm`; `total` may be 0 when unknown (a save).
    pub fn new(label: impl Into<String>, total: u64) -> Arc<Self> {
        let label = label.into();
        let bar =
            (verbosity() == Verbosity::Normal && std::io::stderr().is_terminal()).then(|| {
                let bar = bars().add(ProgressBar::new(total));
                let style = if total > 0 {
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{prefix} {spinner} {bytes} {bytes_per_sec}"
                };
                bar.set_style(
                    ProgressStyle::with_template(style)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_prefix(label.clone());
                bar
            });
        Arc::new(Progress {
            label,
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            started: Instant::now(),
            last_line: std::sync::Mutex::new(Instant::now()),
            bar,
        })
    }

    fn add(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if verbosity() != Verbosity::Quiet => self.heartbeat(done),
            None => {}
        }
    }

    fn heartbeat(&self, done: u64) {
        let Ok(mut last) = self.last_line.try_lock() else {
            return;
        };
        if last.elapsed() < HEARTBEAT {
            return;
        }
        *last = Instant::now();
        let total = self.total.load(Ordering::Relaxed);
        let rate = rate(done, self.started.elapsed());
        output::say(&if total > 0 {
            format!(
                "{}: {} of {} ({:.0}%), {rate}",
                self.label,
                human_bytes(done),
                human_bytes(total),
                done as f64 * 100.0 / total as f64
            )
        } else {
            format!("{}: {} so far, {rate}", self.label, human_bytes(done))
        });
    }

    /// Removes the bar; the caller prints the summary line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Progress {
    fn on_bytes(&self, bytes: u64) {
        self.add(bytes);
    }

    fn on_retry(&self, why: &str) {
        self.done.store(0, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(0);
        }
        output::say(&format!("{}: {why}", self.label));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
