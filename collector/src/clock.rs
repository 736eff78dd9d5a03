//! Kernel timestamps (`bpf_ktime_get_ns`, CLOCK_MONOTONIC) as wall-clock time.

use crate::format::Ascii;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns, measured once.
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Clock {
    pub fn new() -> Clock {
        let mono = now(libc::CLOCK_MONOTONIC);
        let real = now(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real - mono,
        }
    }

    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns.
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// Unix time in ns of a kernel timestamp.
    pub fn unix_ns(&self, ktime_ns: u64) -> i128 {
        ktime_ns as i128 + self.offset_ns
    }

    /// Local time of day with microseconds, e.g. `14:03:07.123456`.
    pub fn wall(&self, ktime_ns: u64) -> String {
        let ns = self.unix_ns(ktime_ns);
        let secs = ns.div_euclid(1_000_000_000) as libc::time_t;
        let micros = ns.rem_euclid(1_000_000_000) / 1000;
        // SAFETY: zeroed tm is a valid out-parameter for localtime_r.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to a time_t and a tm.
        unsafe { libc::localtime_r(&secs, &mut tm) };
        format!(
            "{:02}:{:02}:{:02}.{:06}",
            tm.tm_hour, tm.tm_min, tm.tm_sec, micros
        )
    }

    /// UTC RFC 3339 with nanoseconds, e.g. `2026-11-24T02:14:03.123456789Z`.
    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        rfc3339_from_unix_ns(self.unix_ns(ktime_ns))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

pub fn rfc3339_from_unix_ns(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
    }
    // Once per exchange in `--json`: digits written directly, not through
    // the formatting machinery.
    let mut s = Ascii::<32>::new();
    s.padded(y as u64, 4);
    s.push(b"-");
    s.padded(m.into(), 2);
    s.push(b"-");
    s.padded(d.into(), 2);
    s.push(b"T");
    s.padded((rem / 3600) as u64, 2);
    s.push(b":");
    s.padded((rem % 3600 / 60) as u64, 2);
    s.push(b":");
    s.padded((rem % 60) as u64, 2);
    s.push(b".");
    s.padded(nanos as u64, 9);
    s.push(b"Z");
    s.as_str().to_owned()
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_digits_match_the_formatted_form() {
        let formatted = |ns: i128| {
            let secs = ns.div_euclid(1_000_000_000) as i64;
            let nanos = ns.rem_euclid(1_000_000_000);
            let rem = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            )
        };
        let mut ns: i128 = 1;
        while ns < 250_000_000_000_000_000_000 {
            for t in [ns, ns + 999_999_999, ns * 7 + 123_456_789] {
                assert_eq!(rfc3339_from_unix_ns(t), formatted(t), "{t}");
            }
            ns = ns * 3 + 1;
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_from_unix_ns(0), "1970-01-01T00:00:00.000000000Z");
        // 2026-11-24T02:14:03.5Z
        assert_eq!(
            rfc3339_from_unix_ns(1_795_486_443_500_000_000),
            "2026-11-24T02:14:03.500000000Z"
        );
        // Leap day.
        assert_eq!(
            rfc3339_from_unix_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn kernel_time_maps_near_now() {
        let c = Clock::new();
        let unix = c.unix_ns(now(libc::CLOCK_MONOTONIC) as u64);
        let real = now(libc::CLOCK_REALTIME);
        assert!((real - unix).abs() < 1_000_000_000);
    }
}
