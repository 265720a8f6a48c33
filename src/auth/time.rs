//! Time helpers: Unix seconds and the civil UTC date, without a date-time crate.

use std::time::{SystemTime, UNIX_EPOCH};

use super::AuthError;

/// Whole seconds since 1970-01-01T00:00:00Z.
pub(crate) fn unix_seconds(t: SystemTime) -> Result<u64, AuthError> {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).map_err(|_| AuthError::Clock("time is before 1970".into()))
}

/// The UTC calendar fields of a time: (year, month, day, hour, minute, second).
pub(crate) fn utc_fields(t: SystemTime) -> Result<(i64, u32, u32, u32, u32, u32), AuthError> {
    let secs = unix_seconds(t)?;
    let days = i64::try_from(secs / 86_400).map_err(|_| AuthError::Clock("time is out of range".into()))?;
    let rem = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(AuthError::Clock("year is out of range".into()));
    }
    Ok((y, m, d, rem / 3600, rem / 60 % 60, rem % 60))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), using the 400-year era
/// decomposition (eras of 146 097 days, years starting on March 1st so leap days fall last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March ... 11 = February
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_dates() {
        assert_eq!(utc_fields(at(0)).unwrap(), (1970, 1, 1, 0, 0, 0));
        // 2015-08-30T12:36:00Z, the signing test suite's date.
        assert_eq!(utc_fields(at(1_440_938_160)).unwrap(), (2015, 8, 30, 12, 36, 0));
        // Leap days and the turn of a century.
        assert_eq!(utc_fields(at(951_782_400)).unwrap(), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(at(1_709_251_199)).unwrap(), (2024, 2, 29, 23, 59, 59));
        assert_eq!(utc_fields(at(4_107_542_400)).unwrap(), (2100, 3, 1, 0, 0, 0));
        assert_eq!(utc_fields(at(1_735_689_599)).unwrap(), (2024, 12, 31, 23, 59, 59));
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut prev = civil_from_days(-1);
        for days in 0..200_000 {
            let cur = civil_from_days(days);
            let next_in_month = (prev.0, prev.1, prev.2 + 1);
            let next_month = if prev.1 == 12 { (prev.0 + 1, 1, 1) } else { (prev.0, prev.1 + 1, 1) };
            assert!(cur == next_in_month || cur == next_month, "{prev:?} -> {cur:?}");
            prev = cur;
        }
    }

    #[test]
    fn before_epoch_is_an_error() {
        assert!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }
}
