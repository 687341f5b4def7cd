//! Calendar dates (`YYYY-MM-DD`, proleptic Gregorian, UTC).
//!
//! Hand-written rather than `time`/`jiff`: the language needs parsing,
//! validation, ordering and day arithmetic for `until` and nothing else.

use std::fmt;
use std::str::FromStr;

/// A valid calendar date. Ordering is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// Why a date is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DateError {
    /// Not of the form `YYYY-MM-DD`.
    Format,
    /// Month not in 1..=12.
    Month(u32),
    /// Day not in the month.
    Day { day: u32, days_in_month: u8 },
}

impl fmt::Display for DateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateError::Format => f.write_str("a date is written `YYYY-MM-DD`"),
            DateError::Month(m) => write!(f, "there is no month {m}"),
            DateError::Day { day, days_in_month } => {
                write!(
                    f,
                    "day {day} is past the end of the month ({days_in_month} days)"
                )
            }
        }
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// A date, if it exists on the calendar.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, DateError> {
        if !(1..=12).contains(&month) {
            return Err(DateError::Month(month.into()));
        }
        let dim = days_in_month(year, month);
        if day == 0 || day > dim {
            return Err(DateError::Day {
                day: day.into(),
                days_in_month: dim,
            });
        }
        Ok(Self { year, month, day })
    }

    #[must_use]
    pub fn year(self) -> u16 {
        self.year
    }

    #[must_use]
    pub fn month(self) -> u8 {
        self.month
    }

    #[must_use]
    pub fn day(self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01 (negative before it).
    #[must_use]
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01, if it has a four-digit year.
    #[must_use]
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        Date::new(
            u16::try_from(y).ok().filter(|y| *y <= 9999)?,
            u8::try_from(m).ok()?,
            u8::try_from(d).ok()?,
        )
        .ok()
    }

    /// Whole days from `self` to `other` (positive if `other` is later).
    #[must_use]
    pub fn days_until(self, other: Date) -> i64 {
        other.days_since_epoch() - self.days_since_epoch()
    }

    /// Today's date in UTC, from the system clock.
    #[must_use]
    pub fn today_utc() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let days = i64::try_from(secs / 86_400).unwrap_or(0);
        Date::from_days_since_epoch(days).unwrap_or(Date {
            year: 1970,
            month: 1,
            day: 1,
        })
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses exactly `YYYY-MM-DD` (four, two and two digits).
    fn from_str(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return Err(DateError::Format);
        }
        let year: u16 = s[0..4].parse().map_err(|_| DateError::Format)?;
        let month: u8 = s[5..7].parse().map_err(|_| DateError::Format)?;
        let day: u8 = s[8..10].parse().map_err(|_| DateError::Format)?;
        Date::new(year, month, day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert_eq!(
            "2027-01-31".parse::<Date>().unwrap().to_string(),
            "2027-01-31"
        );
        assert_eq!("2028-02-29".parse::<Date>().unwrap().day(), 29);
        assert_eq!(
            "2027-02-29".parse::<Date>(),
            Err(DateError::Day {
                day: 29,
                days_in_month: 28
            })
        );
        assert_eq!("2027-13-01".parse::<Date>(), Err(DateError::Month(13)));
        assert_eq!("2027-1-01".parse::<Date>(), Err(DateError::Format));
    }

    #[test]
    fn orders_and_counts_days() {
        let a: Date = "2026-12-31".parse().unwrap();
        let b: Date = "2027-01-14".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.days_until(b), 14);
        assert_eq!("1970-01-01".parse::<Date>().unwrap().days_since_epoch(), 0);
        for days in [-1000, 0, 1, 20_000, 2_932_000] {
            let d = Date::from_days_since_epoch(days).unwrap();
            assert_eq!(d.days_since_epoch(), days);
        }
    }
}
