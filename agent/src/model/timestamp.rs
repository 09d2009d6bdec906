//! A point in time as the snapshot and the report carry it (`collected_at`, `generated_at`): whole Unix seconds in
//! memory, RFC 3339 text in JSON (`2026-01-01T00:00:00Z`, UTC, seconds), so rules compare numbers and recorded
//! snapshots and reports keep their text. The rules write certificates' dates with it too.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 9999-12-31T23:59:59Z, the last second RFC 3339 writes.
const LAST_SECOND: u64 = 253_402_300_799;

/// Whole seconds since the Unix epoch, never before it (RFC 3339 text has no earlier form here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// A time that is not RFC 3339 UTC text.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time in UTC (ending in Z) such as 2026-01-01T00:00:00Z")]
pub struct TimestampError {
    text: String,
    #[source]
    source: humantime::TimestampError,
}

impl Timestamp {
    /// The time `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: u64) -> Timestamp {
        Timestamp(secs)
    }

    /// The time `secs` seconds after the Unix epoch, signed as certificates' times are; a time before the epoch
    /// is the epoch (the earliest this type writes).
    pub fn from_unix_signed(secs: i64) -> Timestamp {
        Timestamp(u64::try_from(secs).unwrap_or(0))
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> u64 {
        self.0
    }

    /// Seconds since the Unix epoch, signed as certificates' times are.
    pub fn unix_signed(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// Reads RFC 3339 UTC text (`Z`; a fraction of a second is dropped).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let t = humantime::parse_rfc3339(text).map_err(|source| TimestampError { text: text.to_string(), source })?;
        // humantime reads only years from 1970, so the time is never before the epoch.
        Ok(Timestamp(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with whole seconds (`2026-01-01T00:00:00Z`): snapshot and report times, certificate dates.
    /// A time after 9999-12-31T23:59:59Z (only a crafted certificate or snapshot has one) is written as that
    /// second: RFC 3339 has no later text, and humantime's formatter fails on it (`to_string` would panic).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = UNIX_EPOCH.checked_add(Duration::from_secs(self.0.min(LAST_SECOND))).unwrap_or(UNIX_EPOCH);
        write!(f, "{}", humantime::format_rfc3339_seconds(t))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(|e| serde::de::Error::custom(super::error_chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_text_reads_to_unix_seconds_and_writes_back_the_same() {
        for (text, secs) in [("1970-01-01T00:00:00Z", 0), ("2026-01-01T00:00:00Z", 1_767_225_600)] {
            let t = Timestamp::parse(text).unwrap();
            assert_eq!(t.unix(), secs);
            assert_eq!(t.to_string(), text);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).unwrap(), t);
        }
        assert!(Timestamp::parse("2026-01-01T00:00:00Z").unwrap() < Timestamp::parse("2026-01-01T00:00:01Z").unwrap());
    }

    #[test]
    fn times_before_the_epoch_are_the_epoch_and_after_9999_its_last_second() {
        assert_eq!(Timestamp::from_unix_signed(-1).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_unix_signed(1_767_225_600), Timestamp::from_unix(1_767_225_600));
        // RFC 5280's "no well-defined expiration date", 99991231235959Z.
        assert_eq!(Timestamp::from_unix_signed(253_402_300_799).to_string(), "9999-12-31T23:59:59Z");
        // Later than RFC 3339's last second (humantime refuses to write it): that second, not a panic.
        assert_eq!(Timestamp::from_unix_signed(253_402_300_800).to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix_signed(i64::MAX).to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix(u64::MAX).to_string(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn a_malformed_time_is_an_error_naming_it() {
        for bad in ["t", "", "2026-01-01", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z", "2026-01-01T00:00:00+01:00"]
        {
            let e = serde_json::from_str::<Timestamp>(&format!("\"{bad}\"")).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{bad:?} is not an RFC 3339 time")), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<Timestamp>("1767225600").is_err(), "a number is not the text form");
    }
}
