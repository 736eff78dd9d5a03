//! A small JSON object writer for the one line written per exchange in
//! `--json` mode, where serde_json's generic path (keys escaped like
//! values, every string looked at byte by byte) was most of sniff's time.
//! Strings are escaped exactly as serde_json escapes them, so the output is
//! byte for byte what `serde_json::to_writer` gives; values that are rare or
//! nested (peer, gRPC details, the Go view) still go through serde_json.

use std::io::{self, Write};

/// Writes `{"key":value,...}` to `out`, one member at a time.
pub struct Object<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<'w, W: Write> Object<'w, W> {
    pub fn start(out: &'w mut W) -> io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Object { out, first: true })
    }

    /// Writes the member name; `key` must not need escaping (ours are
    /// fixed lowercase names).
    fn key(&mut self, key: &str) -> io::Result<&mut W> {
        debug_assert!(key.bytes().all(|b| !needs_escape(b)));
        if self.first {
            self.first = false;
            self.out.write_all(b"\"")?;
        } else {
            self.out.write_all(b",\"")?;
        }
        self.out.write_all(key.as_bytes())?;
        self.out.write_all(b"\":")?;
        Ok(self.out)
    }

    pub fn str(&mut self, key: &str, v: &str) -> io::Result<()> {
        let out = self.key(key)?;
        string(out, v)
    }

    pub fn opt_str(&mut self, key: &str, v: Option<&str>) -> io::Result<()> {
        match v {
            Some(v) => self.str(key, v),
            None => self.key(key)?.write_all(b"null"),
        }
    }

    /// An integer, in decimal (serde_json formats them with itoa too).
    pub fn num(&mut self, key: &str, v: impl itoa::Integer) -> io::Result<()> {
        let out = self.key(key)?;
        number(out, v)
    }

    pub fn opt_num<T: itoa::Integer>(&mut self, key: &str, v: Option<T>) -> io::Result<()> {
        match v {
            Some(v) => self.num(key, v),
            None => self.key(key)?.write_all(b"null"),
        }
    }

    /// A member whose value `value` writes itself (an array, or a nested
    /// value through serde_json).
    pub fn with(
        &mut self,
        key: &str,
        value: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        let out = self.key(key)?;
        value(out)
    }

    /// A member written by serde_json.
    pub fn serde(&mut self, key: &str, v: &impl serde::Serialize) -> io::Result<()> {
        let out = self.key(key)?;
        serde_json::to_writer(out, v).map_err(io::Error::from)
    }

    pub fn end(self) -> io::Result<()> {
        self.out.write_all(b"}")
    }
}

/// Writes an integer in decimal.
pub fn number(out: &mut impl Write, v: impl itoa::Integer) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(v).as_bytes())
}

/// Writes `[a,b,...]` with `item` writing each element.
pub fn array<W: Write, T>(
    out: &mut W,
    items: impl IntoIterator<Item = T>,
    mut item: impl FnMut(&mut W, T) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        item(out, x)?;
    }
    out.write_all(b"]")
}

/// Bytes JSON strings must escape (RFC 8259 §7): `"`, `\` and controls.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `w` needs escaping. Bit tricks: a byte
/// below 0x20 borrows in `w - 0x20..`; a byte equal to `c` is a zero byte
/// of `w ^ c..`. Exact for the question "is there one".
fn word_needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    below_space | quote | backslash != 0
}

/// Writes `s` as a JSON string, escaped as serde_json does: `\"`, `\\`,
/// `\b \f \n \r \t`, other controls as `\u00XX` (lowercase hex); all else,
/// DEL and non-ASCII included, as it is. Runs of plain text are found 8
/// bytes at a time and written whole.
pub fn string(out: &mut impl Write, s: &str) -> io::Result<()> {
    escaped(out, s.as_bytes())
}

/// [`string`] on the bytes of valid UTF-8 (only ASCII bytes are looked at
/// and split on, so multi-byte characters pass whole).
fn escaped(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if needs_escape(b) {
            out.write_all(&bytes[start..i])?;
            escape(out, b)?;
            start = i + 1;
        }
        i += 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// Writes `bytes` as a JSON string, invalid UTF-8 replaced by U+FFFD as
/// `String::from_utf8_lossy` does. ASCII (nearly every header) is escaped
/// as it is scanned, without a separate UTF-8 check.
pub fn text(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_ascii() {
        escaped(out, bytes)
    } else {
        string(out, &String::from_utf8_lossy(bytes))
    }
}

fn escape(out: &mut impl Write, b: u8) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.write_all(b"\\\""),
        b'\\' => out.write_all(b"\\\\"),
        0x08 => out.write_all(b"\\b"),
        0x0c => out.write_all(b"\\f"),
        b'\n' => out.write_all(b"\\n"),
        b'\r' => out.write_all(b"\\r"),
        b'\t' => out.write_all(b"\\t"),
        _ => out.write_all(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut v = Vec::new();
        string(&mut v, s).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii text, long enough to take the word path".into(),
            "quote \" backslash \\ slash / tab \t nl \n cr \r".into(),
            "\u{7f} DEL and ünïcödé ✓ 𝄞 stay".into(),
        ];
        // Every byte below 0x80 alone, and at each position of a word.
        for b in 0u8..0x80 {
            let c = char::from(b);
            cases.push(c.to_string());
            for at in 0..10 {
                let mut s = "abcdefghij".to_string();
                s.insert(at, c);
                cases.push(s);
            }
        }
        for s in &cases {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn bytes_are_written_as_from_utf8_lossy_text() {
        for b in [
            &b"plain"[..],
            b"tab\there",
            b"caf\xc3\xa9",
            b"bad \xff\xfe end",
            b"",
        ] {
            let mut v = Vec::new();
            text(&mut v, b).unwrap();
            let want = serde_json::to_string(&String::from_utf8_lossy(b)).unwrap();
            assert_eq!(String::from_utf8(v).unwrap(), want, "{b:?}");
        }
    }

    #[test]
    fn object_members_match_serde_json() {
        let mut v = Vec::new();
        let mut o = Object::start(&mut v).unwrap();
        o.num("a", 1u64).unwrap();
        o.opt_num::<u32>("b", None).unwrap();
        o.opt_str("c", Some("x\"y")).unwrap();
        o.serde("d", &false).unwrap();
        o.with("e", |w| array(w, [1, 2], number)).unwrap();
        o.serde("f", &Some(-3i32)).unwrap();
        o.end().unwrap();
        let want = serde_json::json!({"a":1,"b":null,"c":"x\"y","d":false,"e":[1,2],"f":-3});
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&v).unwrap(),
            want
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"{"a":1,"b":null,"c":"x\"y","d":false,"e":[1,2],"f":-3}"#
        );
    }
}
