//! Wall-clock helpers: RFC 3339 stamps for metadata.

use std::time::SystemTime;

/// Now as RFC 3339 UTC with second precision, e.g. `2026-11-26T14:03:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}
