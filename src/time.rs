//! Wall-clock helpers: RFC 3339 stamps for metadata.

use std::time::SystemTime;

/// Now as RFC 3339 UTC with second precision, e.g. `2026-11-26T14:03:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(now())
}

/// The clock for what cachectl records in the store (entry creation, last use): the system
/// clock, or `CACHECTL_NOW` (RFC 3339) when set, so tests and policy previews can place entries
/// in time. Never used for timeouts.
pub fn now() -> SystemTime {
    std::env::var(crate::env::NOW)
        .ok()
        .and_then(|s| parse_rfc3339(&s))
        .unwrap_or_else(SystemTime::now)
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}
