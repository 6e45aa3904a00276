//! SIGINT/SIGTERM: abort open multipart uploads so an interrupted save leaves no billed parts,
//! then exit 130/143.
//!
//! Order matters (`main` follows it): take [`open_uploads`] while the command still holds
//! them, stop the command (dropping it cancels the part uploads in flight, so none lands
//! after the abort), then [`abort`] what was open.

use crate::store::Upload;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static OPEN_UPLOADS: Mutex<Vec<(u64, Arc<dyn Upload>)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Keeps an upload registered for abort-on-signal until dropped.
pub struct Registered(u64);

pub fn register(upload: &Arc<dyn Upload>) -> Registered {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    OPEN_UPLOADS
        .lock()
        .expect("upload registry")
        .push((id, Arc::clone(upload)));
    Registered(id)
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut v) = OPEN_UPLOADS.lock() {
            v.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Resolves with the exit status for the first SIGINT (130) or SIGTERM (143).
pub async fn interrupted() -> u8 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    }
}

/// The uploads open right now.
pub fn open_uploads() -> Vec<Arc<dyn Upload>> {
    OPEN_UPLOADS
        .lock()
        .map(|v| v.iter().map(|(_, u)| Arc::clone(u)).collect())
        .unwrap_or_default()
}

/// Aborts `uploads`, giving the store a few seconds at most.
pub async fn abort(uploads: Vec<Arc<dyn Upload>>) {
    let aborts = uploads.iter().map(|u| u.abort());
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(aborts),
    )
    .await;
}
