//! `created_at` and `updated_at` (and `enrolled_on`, a day) as JSON: byte for byte what chrono's own `Serialize` writes
//! (RFC 3339 in UTC with `Z`, and as many fractional digits as the value needs: none, 3, 6 or 9),
//! written into a stack buffer at once. chrono formats through `fmt` a character at a time and
//! serde_json escapes each piece as it comes, which made these two strings the largest single cost
//! of a 1,000-row page.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::Serializer;
use serde::ser::Error as _;

/// For `#[serde(serialize_with = "...")]` on a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0; 30];
    match write(at, &mut buf) {
        Some(len) => {
            serializer.serialize_str(std::str::from_utf8(&buf[..len]).map_err(S::Error::custom)?)
        }
        // Years chrono writes with a sign (before 0 or after 9999): rare enough to leave to it.
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// For `#[serde(serialize_with = "...")]` on a `NaiveDate`: `YYYY-MM-DD` as chrono writes it,
/// in one piece, for the same reason.
pub fn serialize_day<S: Serializer>(day: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
    let Some(year) = u32::try_from(day.year()).ok().filter(|year| *year <= 9999) else {
        return serde::Serialize::serialize(day, serializer);
    };
    let mut buf = *b"0000-00-00";
    for (value, at) in [year / 100, year % 100, day.month(), day.day()]
        .into_iter()
        .zip([0, 2, 5, 8])
    {
        buf[at] = b'0' + (value / 10) as u8;
        buf[at + 1] = b'0' + (value % 10) as u8;
    }
    serializer.serialize_str(std::str::from_utf8(&buf).map_err(S::Error::custom)?)
}

/// Writes `at` into `buf`; the length written, or `None` outside years 0 to 9999.
fn write(at: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let (mut second, mut nano) = (at.second(), at.nanosecond());
    // chrono keeps a leap second as nanoseconds past 1e9 and writes it as second 60.
    if nano >= 1_000_000_000 {
        second += 1;
        nano -= 1_000_000_000;
    }
    let fields = [
        year / 100,
        year % 100,
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        second,
    ];
    let layout = *b"0000-00-00T00:00:00";
    buf[..19].copy_from_slice(&layout);
    for (value, at) in fields.into_iter().zip([0, 2, 5, 8, 11, 14, 17]) {
        buf[at] = b'0' + (value / 10) as u8;
        buf[at + 1] = b'0' + (value % 10) as u8;
    }
    let (digits, mut fraction) = match nano {
        0 => (0, 0),
        _ if nano % 1_000_000 == 0 => (3, nano / 1_000_000),
        _ if nano % 1_000 == 0 => (6, nano / 1_000),
        _ => (9, nano),
    };
    let mut len = 19;
    if digits > 0 {
        buf[19] = b'.';
        for at in (20..20 + digits).rev() {
            buf[at] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        len = 20 + digits;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn ours(at: DateTime<Utc>) -> String {
        serialize(&at, serde_json::value::Serializer)
            .unwrap()
            .to_string()
    }

    fn chronos(at: DateTime<Utc>) -> String {
        serde_json::to_value(at).unwrap().to_string()
    }

    /// The same output as chrono for `at` and for `at` cut to whole microseconds, milliseconds
    /// and seconds, which take the other widths of the fraction.
    fn assert_same(at: DateTime<Utc>) {
        let nanos = i64::from(at.timestamp_subsec_nanos());
        for unit in [1, 1_000, 1_000_000, 1_000_000_000] {
            let cut = at - TimeDelta::nanoseconds(nanos % unit);
            assert_eq!(ours(cut), chronos(cut), "{cut:?}");
        }
    }

    #[test]
    fn random_instants_serialize_exactly_as_chrono_does() {
        // splitmix64: reproducible, and spread over the whole range.
        let mut state: u64 = 0x5eed_0f57_470d_e5a1;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        for _ in 0..50_000 {
            let seconds = min + (next() % (max - min) as u64) as i64;
            let at = DateTime::from_timestamp(seconds, (next() % 1_000_000_000) as u32).unwrap();
            assert_same(at);
            // Years 0 to 9999 are the fast path: most samples there.
            let seconds = (next() % 253_402_300_800) as i64 - 62_167_219_200;
            assert_same(
                DateTime::from_timestamp(seconds, (next() % 1_000_000_000) as u32).unwrap(),
            );
        }
    }

    #[test]
    fn every_day_of_years_0_to_9999_and_the_ends_beyond_serialize_exactly_as_chrono_does() {
        let day = |d: NaiveDate| serialize_day(&d, serde_json::value::Serializer).unwrap();
        let mut at = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(10000, 1, 2).unwrap();
        while at <= last {
            assert_eq!(day(at), serde_json::to_value(at).unwrap(), "{at:?}");
            at = at.succ_opt().unwrap();
        }
        for edge in [
            NaiveDate::MIN,
            NaiveDate::MAX,
            NaiveDate::from_ymd_opt(-1, 12, 31).unwrap(),
        ] {
            assert_eq!(day(edge), serde_json::to_value(edge).unwrap(), "{edge:?}");
        }
    }

    #[test]
    fn the_ends_of_the_range_and_of_the_fast_path_serialize_exactly_as_chrono_does() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for date in [
            day(-4713, 11, 24),
            day(-1, 12, 31),
            day(0, 1, 1),
            day(1970, 1, 1),
            day(9999, 12, 31),
            day(10000, 1, 1),
            day(262_142, 12, 31),
        ] {
            for (h, m, s, n) in [
                (0, 0, 0, 0),
                (23, 59, 59, 999_999_999),
                (12, 30, 1, 1_000),
                (1, 2, 3, 4_000_000),
            ] {
                assert_same(date.and_hms_nano_opt(h, m, s, n).unwrap().and_utc());
            }
        }
        // PostgreSQL's last microsecond within chrono's range, and a leap second.
        assert_same(DateTime::<Utc>::MAX_UTC);
        assert_same(DateTime::<Utc>::MIN_UTC);
        let leap = day(2016, 12, 31)
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(ours(leap), chronos(leap));
    }
}
