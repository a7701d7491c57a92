//! Domain time: the `Clock` the services read "now" from (the system clock
//! in the server, a manual one that tests advance), and `Timestamp`, a
//! chrono time at millisecond precision stored and served as
//! `YYYY-MM-DDTHH:MM:SS.mmmZ` (so text order is time order in SQLite).
//! Timeouts, sleeps and metrics durations are not domain time: they use
//! tokio's and std's clocks directly.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that stands still until `advance`d (tests).
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A manual clock showing `start`.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Now, as a stored timestamp (millisecond precision).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from(self.now())
    }

    /// Move a manual clock forward by `d` (the system clock moves by
    /// itself: a no-op there).
    pub fn advance(&self, d: std::time::Duration) {
        if let Clock::Manual(t) = self {
            let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t = t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC);
        }
    }
}

/// A point in time at millisecond precision, as rows hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// The text form of a `Timestamp`.
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

impl Timestamp {
    /// The chrono time.
    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// Parse any RFC 3339 time (rounded down to the millisecond).
    pub fn parse(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp::from(t.with_timezone(&Utc)))
    }

    /// This time plus `d` (saturating).
    pub fn plus(self, d: chrono::Duration) -> Timestamp {
        Timestamp::from(
            self.0
                .checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t.trunc_subsecs(3))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_milliseconds_and_z() {
        let t = Timestamp::parse("2026-01-02T03:04:05.678901Z").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.678Z");
        let t = Timestamp::parse("2026-01-02T04:04:05+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.000Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn manual_clock_advances() {
        let start = Timestamp::parse("2026-01-02T03:04:05.006Z").unwrap();
        let clock = Clock::manual(start.datetime());
        assert_eq!(clock.timestamp(), start);
        clock.advance(std::time::Duration::from_millis(1500));
        assert_eq!(clock.timestamp().to_string(), "2026-01-02T03:04:06.506Z");
        assert!(clock.timestamp() > start);
    }

    #[test]
    fn system_clock_moves_and_ignores_advance() {
        let c = Clock::System;
        let a = c.now();
        c.advance(std::time::Duration::from_secs(3600));
        assert!(c.now() - a < chrono::Duration::seconds(60));
    }
}
