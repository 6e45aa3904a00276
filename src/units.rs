//! Units people type and read: durations, byte sizes, times, counts, ages and rates.
//!
//! A leaf module (it imports nothing of ours), so the parsers (`cli`, `config`, `prune`) and the
//! printers (`output`, `progress`, the commands) share one spelling of every unit.

use std::time::{Duration, SystemTime};

/// `30m`, `12h`, `7d`, `2w` (and humantime's longer forms like `1day 2h`).
///
/// Errors: a one-line message naming the text and the expected forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 30m, 12h or 7d ({e})"))
}

/// [`parse_duration`] for a wait that must allow some time: zero is refused.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "`{s}` allows no time at all; give a duration like 20s"
        )),
        d => Ok(d),
    }
}

/// The byte-size units a person may write: binary (KiB..TiB), decimal (KB..TB) and bytes.
/// Single letters (`10G`) are refused: they do not say whether 2^30 or 10^9 is meant.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("KiB", bytesize::KIB),
    ("MiB", bytesize::MIB),
    ("GiB", bytesize::GIB),
    ("TiB", bytesize::TIB),
    ("KB", bytesize::KB),
    ("kB", bytesize::KB),
    ("MB", bytesize::MB),
    ("GB", bytesize::GB),
    ("TB", bytesize::TB),
];

/// `500MiB`, `10GiB`, `1.5GiB`, `2GB`, ` 3 KiB `, `1048576` (bytes), in bytes. Whole numbers
/// are exact; decimal fractions are rounded down to a byte.
///
/// Errors: a one-line message naming the text and the accepted forms, or saying it is more
/// than 2^64 - 1 bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a size like 500MiB, 10GiB, 2GB or a number of bytes");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let Some(&(_, scale)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(bad());
    };
    let bytes: Option<u128> = if number.contains('.') {
        let v: f64 = number.parse().map_err(|_| bad())?;
        let bytes = v * scale as f64;
        // 2^64: the first value past u64 (u64::MAX itself is not representable in f64).
        (bytes < 18_446_744_073_709_551_616.0).then_some(bytes as u128)
    } else {
        let n: u128 = number.parse().map_err(|_| bad())?;
        n.checked_mul(u128::from(scale))
    };
    bytes
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// `512 B`, `1.5 KiB`, `312.0 MiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// `21340` -> `21,340`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 entry`, `2,500 entries`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `45s`, `12m`, `5h`, `3d`: how long ago, to the unit a person would use.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `14d`, `12h`, `30m`, `90s`: a configured duration in its largest whole unit, as a person
/// would have written it.
pub fn compact_duration(d: Duration) -> String {
    match d.as_secs() {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `85.3 MiB/s`: bytes over elapsed time (at least a millisecond, so never a division by 0).
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-26T14:03:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An RFC 3339 time; `None` when `s` is not one.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// An RFC 3339 time such as `2026-11-26T12:00:00Z`, for command-line flags.
///
/// Errors: a one-line message naming the text and an example.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    parse_rfc3339(s.trim())
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time like 2026-11-26T12:00:00Z"))
}

/// A UTC day `YYYY-MM-DD`, as the time it starts.
///
/// Errors: a one-line message naming the text and an example.
pub fn parse_day(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed
        .then(|| parse_rfc3339(&format!("{s}T00:00:00Z")))
        .flatten()
        .ok_or_else(|| format!("`{s}` is not a day like 2026-11-29"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        let start = parse_day("2026-11-29").unwrap();
        assert_eq!(rfc3339(start), "2026-11-29T00:00:00Z");
        for bad in [
            "2026-11-31",
            "2026-1-29",
            "29-11-2026",
            "2026-11-29T00:00:00Z",
            "",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(21340), "21,340");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(312 * 1024 * 1024), "312.0 MiB");
        assert_eq!(human_age(Duration::from_secs(59)), "59s");
        assert_eq!(human_age(Duration::from_secs(3600)), "60m");
        assert_eq!(human_age(Duration::from_secs(5 * 3600)), "5h");
        assert_eq!(human_age(Duration::from_secs(3 * 86400 + 5)), "3d");
    }

    #[test]
    fn a_wait_of_no_time_is_refused() {
        assert_eq!(parse_positive_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(
            parse_positive_duration("0s"),
            Err("`0s` allows no time at all; give a duration like 20s".to_owned())
        );
    }

    #[test]
    fn compact_durations() {
        let cases = [
            ("zero", 0, "0s"),
            ("seconds", 90, "90s"),
            ("minutes", 1800, "30m"),
            ("hours", 12 * 3600, "12h"),
            ("days", 14 * 86400, "14d"),
            ("not whole hours", 3600 + 60, "61m"),
        ];
        for (name, secs, want) in cases {
            assert_eq!(
                compact_duration(Duration::from_secs(secs)),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("500MiB", 500 << 20),
            ("10GiB", 10 << 30),
            ("1.5GiB", 3 << 29),
            ("2GB", 2_000_000_000),
            (" 3 KiB ", 3 << 10),
            ("7B", 7),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for bad in ["", "10G", "ten", "-1", "1e3MiB x", "MiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_past_u64_are_too_large_not_capped() {
        let cases = [
            ("u64::MAX bytes", "18446744073709551615", Ok(u64::MAX)),
            ("2^64 bytes", "18446744073709551616", Err(())),
            ("twenty digits", "99999999999999999999", Err(())),
            ("16 EiB in TiB", "16777216TiB", Err(())),
            ("a fraction past it", "16777216.5TiB", Err(())),
            ("just under in TiB", "16777215TiB", Ok(16_777_215 << 40)),
        ];
        for (name, text, want) in cases {
            let got = parse_size(text);
            match want {
                Ok(n) => assert_eq!(got, Ok(n), "case {name}"),
                Err(()) => assert_eq!(got, Err(format!("`{text}` is too large")), "case {name}"),
            }
        }
    }
}
