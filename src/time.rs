//! The clock for what cachectl records in the store (entry creation, last use).

use std::time::SystemTime;

/// The system clock, or `CACHECTL_NOW` (RFC 3339) when set, so tests and policy previews can
/// place entries in time. Never used for timeouts.
pub fn now() -> SystemTime {
    std::env::var(crate::env::NOW)
        .ok()
        .and_then(|s| crate::units::parse_rfc3339(&s))
        .unwrap_or_else(SystemTime::now)
}

/// [`now`] as RFC 3339 UTC with second precision, e.g. `2026-11-26T14:03:00Z`.
pub fn now_rfc3339() -> String {
    crate::units::rfc3339(now())
}
