//! Small text helpers shared by the human-readable outputs.

/// `1.5 KiB`, `12 B`, `3.2 MiB`.
pub fn bytes_human(n: u64) -> String {
    Bytes(n).to_string()
}

/// [`bytes_human`] written in place, without a `String` of its own.
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let n = self.0;
        if n < 1024 {
            let mut s = Ascii::<24>::new();
            s.number(n);
            s.push(b" B");
            return f.write_str(s.as_str());
        }
        let mut v = n as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit < UNITS.len() - 1 {
            v /= 1024.0;
            unit += 1;
        }
        if v < 10.0 {
            write!(f, "{v:.1} {}", UNITS[unit])
        } else {
            write!(f, "{v:.0} {}", UNITS[unit])
        }
    }
}

/// A short ASCII text built on the stack, for the numbers and addresses
/// printed once per exchange: one `write_str` instead of a trip through
/// the formatting machinery per piece. What does not fit is cut.
pub struct Ascii<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Ascii<N> {
    pub fn new() -> Self {
        Ascii {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends ASCII bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Appends `v` in decimal, zero-padded to `width` digits.
    pub fn padded(&mut self, v: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let start = i.min(digits.len().saturating_sub(width));
        self.push(&digits[start..]);
    }

    /// Appends `v` in decimal.
    pub fn number(&mut self, v: u64) {
        self.padded(v, 1);
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII goes in, and cuts are between bytes: always UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Default for Ascii<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A quoted, escaped preview of at most `max` bytes: printable ASCII as is,
/// `\r \n \t` escaped, other bytes as `\xNN`; `...` when cut.
pub fn preview(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(max.min(bytes.len()) + 8);
    s.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}

/// Parses a byte size: `4096`, `64K`, `64KiB`, `2M`, `1MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 2M)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(bytes_human(0), "0 B");
        assert_eq!(bytes_human(1023), "1023 B");
        assert_eq!(bytes_human(1024), "1.0 KiB");
        assert_eq!(bytes_human(1536), "1.5 KiB");
        assert_eq!(bytes_human(12 * 1024 * 1024), "12 MiB");
        assert_eq!(bytes_human(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn ascii_numbers_and_cuts() {
        let mut a = Ascii::<8>::new();
        a.padded(7, 3);
        a.push(b":");
        a.number(0);
        a.push(b"/");
        a.number(123_456);
        assert_eq!(a.as_str(), "007:0/12");
        let mut b = Ascii::<24>::new();
        b.number(u64::MAX);
        assert_eq!(b.as_str(), u64::MAX.to_string());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(bytes_human(12), "12 B");
        assert_eq!(bytes_human(1536), "1.5 KiB");
        assert_eq!(bytes_human(300 << 20), "300 MiB");
    }

    #[test]
    fn previews_escape_and_cut() {
        assert_eq!(
            preview(b"GET / HTTP/1.1\r\n", 100),
            "\"GET / HTTP/1.1\\r\\n\""
        );
        assert_eq!(preview(b"\x00\xffab", 3), "\"\\x00\\xffa\"...");
    }
}
