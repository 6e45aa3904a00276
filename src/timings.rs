//! Per-stage timers for `CACHECTL_TIMINGS=1`: where a restore or save spends its time.
//!
//! Stages overlap (that is the point of the pipeline), so the numbers are busy or blocked time
//! per stage, not slices of the wall clock. A stage that is mostly *blocked* names the bottleneck
//! upstream or downstream of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn init() {
    let on = std::env::var(crate::env::TIMINGS).is_ok_and(|v| !v.is_empty() && v != "0");
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One named accumulator of nanoseconds.
pub struct Stage {
    pub name: &'static str,
    nanos: AtomicU64,
}

impl Stage {
    pub const fn new(name: &'static str) -> Self {
        Stage {
            name,
            nanos: AtomicU64::new(0),
        }
    }

    pub fn add(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Runs `f`, adding its duration when timings are on (one branch otherwise).
    #[inline]
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        if !enabled() {
            return f();
        }
        let t = Instant::now();
        let out = f();
        self.add(t.elapsed());
        out
    }

    pub fn secs(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// Restore stages.
pub static LOOKUP: Stage = Stage::new("lookup");
pub static FETCH_WAIT: Stage = Stage::new("fetch_wait");
pub static HASH: Stage = Stage::new("hash");
pub static DECODE_PARSE: Stage = Stage::new("decode_parse");
pub static QUEUE_WAIT: Stage = Stage::new("queue_full_wait");
pub static LARGE_FILES: Stage = Stage::new("large_file_write");
pub static WORKERS_BUSY: Stage = Stage::new("workers_busy");
pub static METADATA: Stage = Stage::new("links_and_dir_metadata");
pub static COMMIT: Stage = Stage::new("commit");
/// Save stages.
pub static WALK_READ: Stage = Stage::new("walk_read");
pub static COMPRESS: Stage = Stage::new("compress");
pub static UPLOAD_WAIT: Stage = Stage::new("upload_wait");

/// `timings: total=… stage=…` for the stages given, when timings are on.
pub fn line(total: Duration, stages: &[&Stage]) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut line = format!("timings: total={:.3}", total.as_secs_f64());
    for s in stages {
        line.push_str(&format!(" {}={:.3}", s.name, s.secs()));
    }
    Some(line)
}
