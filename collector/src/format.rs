//! Small text helpers shared by the human-readable outputs.

/// `1.5 KiB`, `12 B`, `3.2 MiB`.
pub fn bytes_human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
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
