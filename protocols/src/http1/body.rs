//! Message body framing (RFC 9112 §6, §7): fixed length, chunked with
//! extensions and trailers, or delimited by the connection closing.
//!
//! Resumable: [`Body::feed`] takes whatever bytes are there and says how many
//! it used; a prefix never fails.

use super::head::{self, HeadOutcome};
use crate::record::Headers;

/// Longest chunk-size line kept while waiting for its end, extensions included.
/// Real extensions are a few bytes; 4 KiB leaves room and bounds the buffer.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Where a body is in its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `Content-Length`: this many bytes left (RFC 9112 §6.2).
    Length(u64),
    /// Chunked transfer coding (RFC 9112 §7.1).
    Chunked(Chunk),
    /// Everything until the connection closes (RFC 9112 §6.3 item 8).
    Close,
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    Size,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: expecting trailer fields and the final CRLF.
    Trailers,
}

/// What feeding a body gave.
#[derive(Debug)]
pub enum Step {
    /// Used `consumed` bytes; the body goes on.
    More { consumed: usize },
    /// The body ended after `consumed` bytes (trailers, if any, are in
    /// the sink).
    Done { consumed: usize },
    /// Framing is broken after `consumed` good bytes (bad chunk size or
    /// missing CRLF, trailers that don't parse).
    Invalid { consumed: usize },
}

/// Where the body's data bytes go: their count and a preview of the first
/// ones; and the trailer fields of a chunked body.
pub struct Sink<'a> {
    pub body_len: &'a mut u64,
    pub preview: &'a mut Vec<u8>,
    pub trailers: &'a mut Headers,
    pub preview_cap: usize,
    /// False after a gap: later bytes would not be a prefix of the body.
    pub preview_open: bool,
}

impl Sink<'_> {
    #[inline]
    fn data(&mut self, bytes: &[u8]) {
        *self.body_len += bytes.len() as u64;
        if self.preview_open && self.preview.len() < self.preview_cap {
            let n = (self.preview_cap - self.preview.len()).min(bytes.len());
            self.preview.extend_from_slice(&bytes[..n]);
        }
    }
}

/// How a gap fits in a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapFit {
    /// The lost bytes were all body data of known length: still in sync.
    /// `done`: they were the last bytes of the body.
    Inside { done: bool },
    /// The gap goes past what the framing can account for: sync is lost.
    Beyond,
}

impl Body {
    /// Feeds body bytes. `eof`: no byte will follow `buf` (a gap or the
    /// close): a partial chunk-size line or trailer is then invalid.
    pub fn feed(&mut self, buf: &[u8], sink: &mut Sink<'_>, max_head: usize, eof: bool) -> Step {
        match self {
            Body::Length(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                sink.data(&buf[..n]);
                *left -= n as u64;
                if *left == 0 {
                    Step::Done { consumed: n }
                } else {
                    Step::More { consumed: n }
                }
            }
            Body::Close => {
                sink.data(buf);
                Step::More {
                    consumed: buf.len(),
                }
            }
            Body::Chunked(state) => feed_chunked(state, buf, sink, max_head, eof),
        }
    }

    /// Accounts for `len` lost bytes inside the body.
    pub fn gap(&mut self, len: u64, body_len: &mut u64) -> GapFit {
        match self {
            Body::Length(left) if len <= *left => {
                *left -= len;
                *body_len += len;
                GapFit::Inside { done: *left == 0 }
            }
            Body::Chunked(Chunk::Data(left)) if len <= *left => {
                *left -= len;
                *body_len += len;
                if *left == 0 {
                    *self = Body::Chunked(Chunk::DataEnd);
                }
                GapFit::Inside { done: false }
            }
            Body::Close => {
                *body_len += len;
                GapFit::Inside { done: false }
            }
            _ => GapFit::Beyond,
        }
    }
}

fn feed_chunked(
    state: &mut Chunk,
    buf: &[u8],
    sink: &mut Sink<'_>,
    max_head: usize,
    eof: bool,
) -> Step {
    let mut at = 0usize;
    loop {
        let rest = &buf[at..];
        match *state {
            Chunk::Size => match chunk_size_line(rest) {
                Line::Size { size, len } => {
                    at += len;
                    *state = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Line::Partial if !eof && rest.len() < MAX_CHUNK_LINE => {
                    return Step::More { consumed: at };
                }
                Line::Partial | Line::Bad => return Step::Invalid { consumed: at },
            },
            Chunk::Data(left) => {
                let n = left.min(rest.len() as u64) as usize;
                sink.data(&rest[..n]);
                at += n;
                if n as u64 == left {
                    *state = Chunk::DataEnd;
                } else {
                    *state = Chunk::Data(left - n as u64);
                    return Step::More { consumed: at };
                }
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    at += 2;
                    *state = Chunk::Size;
                }
                [b'\n', ..] => {
                    at += 1;
                    *state = Chunk::Size;
                }
                [] | [b'\r'] if !eof => return Step::More { consumed: at },
                _ => return Step::Invalid { consumed: at },
            },
            Chunk::Trailers => {
                // Empty trailer section: just the final CRLF.
                match rest {
                    [b'\r', b'\n', ..] => {
                        return Step::Done { consumed: at + 2 };
                    }
                    [b'\n', ..] => {
                        return Step::Done { consumed: at + 1 };
                    }
                    [] | [b'\r'] if !eof => return Step::More { consumed: at },
                    _ => {}
                }
                return match head::parse_trailers(rest, max_head, sink.trailers) {
                    HeadOutcome::Done { len, .. } => Step::Done { consumed: at + len },
                    HeadOutcome::NeedMore if !eof => Step::More { consumed: at },
                    HeadOutcome::NeedMore | HeadOutcome::Invalid(_) => {
                        Step::Invalid { consumed: at }
                    }
                };
            }
        }
    }
}

enum Line {
    Size { size: u64, len: usize },
    Partial,
    Bad,
}

/// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 §7.1, §7.1.1). Extensions are
/// skipped, not interpreted; a bare LF is accepted as servers do.
fn chunk_size_line(buf: &[u8]) -> Line {
    let mut size: u64 = 0;
    let mut digits = 0usize;
    let mut i = 0usize;
    while let Some(&b) = buf.get(i) {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        // 16 hex digits fill a u64; more would overflow.
        if digits == 16 {
            return Line::Bad;
        }
        size = (size << 4) | u64::from(v);
        digits += 1;
        i += 1;
    }
    if i == buf.len() {
        return Line::Partial;
    }
    if digits == 0 {
        return Line::Bad;
    }
    // The usual line: digits and CRLF, no extension.
    if buf[i..].starts_with(b"\r\n") {
        return Line::Size { size, len: i + 2 };
    }
    // After the digits: BWS then `;ext` or the line end.
    match buf[i] {
        b'\r' | b'\n' | b';' | b' ' | b'\t' => {}
        _ => return Line::Bad,
    }
    let Some(lf) = buf[i..].iter().position(|&b| b == b'\n') else {
        // Extensions may not contain a bare CR or control bytes; be lenient
        // except for NUL, which no peer sends.
        return if buf[i..].contains(&0) {
            Line::Bad
        } else {
            Line::Partial
        };
    };
    let ext = &buf[i..i + lf];
    let ext = ext.strip_suffix(b"\r").unwrap_or(ext);
    let ext = head::trim(ext);
    if !ext.is_empty() && ext[0] != b';' {
        return Line::Bad;
    }
    if ext.iter().any(|&b| b == b'\r' || b == 0) {
        return Line::Bad;
    }
    Line::Size {
        size,
        len: i + lf + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &mut Body, buf: &[u8]) -> (Step, u64, Vec<u8>, Headers) {
        let mut len = 0;
        let mut preview = Vec::new();
        let mut trailers = Headers::new();
        let mut sink = Sink {
            body_len: &mut len,
            preview: &mut preview,
            trailers: &mut trailers,
            preview_cap: 8,
            preview_open: true,
        };
        let step = body.feed(buf, &mut sink, 1024, false);
        (step, len, preview, trailers)
    }

    #[test]
    fn chunked_table() {
        // name, wire bytes, body len, trailers, consumed
        let cases: &[(&str, &[u8], u64, usize, usize)] = &[
            ("simple", b"5\r\nhello\r\n0\r\n\r\n", 5, 0, 15),
            (
                "two chunks",
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nXX",
                5,
                0,
                20,
            ),
            ("ext", b"3;name=val\r\nabc\r\n0;x\r\n\r\n", 3, 0, 24),
            ("ext bws", b"3 ;a=b\r\nabc\r\n0\r\n\r\n", 3, 0, 18),
            ("upper hex", b"A\r\n0123456789\r\n0\r\n\r\n", 10, 0, 20),
            (
                "trailers",
                b"1\r\nx\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\n",
                1,
                2,
                35,
            ),
            ("bare lf", b"1\nx\n0\n\n", 1, 0, 7),
        ];
        for (name, wire, body_len, trailers, consumed) in cases {
            let mut b = Body::Chunked(Chunk::Size);
            let (step, len, _, t) = run(&mut b, wire);
            let Step::Done { consumed: c } = step else {
                panic!("{name}: {step:?}");
            };
            assert_eq!(c, *consumed, "{name}");
            assert_eq!(len, *body_len, "{name}");
            assert_eq!(t.len(), *trailers, "{name}");
            // Every prefix needs more, never fails.
            for cut in 0..*consumed {
                let mut b = Body::Chunked(Chunk::Size);
                let (step, _, _, _) = run(&mut b, &wire[..cut]);
                assert!(
                    matches!(step, Step::More { .. }),
                    "{name} cut {cut}: {step:?}"
                );
            }
        }
    }

    #[test]
    fn bad_chunks_table() {
        let cases: &[(&str, &[u8], usize)] = &[
            ("not hex", b"zz\r\n", 0),
            ("empty size", b"\r\n", 0),
            ("junk after size", b"5x\r\nhello\r\n", 0),
            ("no crlf after data", b"2\r\nabXY0\r\n\r\n", 5),
            ("overflow", b"11111111111111111\r\n", 0),
            ("bad trailer", b"0\r\n:\r\n\r\n", 3),
        ];
        for (name, wire, consumed) in cases {
            let mut b = Body::Chunked(Chunk::Size);
            let (step, _, _, _) = run(&mut b, wire);
            assert!(
                matches!(step, Step::Invalid { consumed: c } if c == *consumed),
                "{name}: {step:?}"
            );
        }
    }

    #[test]
    fn resumes_across_calls_and_previews() {
        let wire = b"4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n";
        let mut b = Body::Chunked(Chunk::Size);
        let mut len = 0;
        let mut preview = Vec::new();
        let mut at = 0;
        for step in [1usize, 3, 2, 7, 5, 100] {
            let end = (at + step).min(wire.len());
            let mut sink = Sink {
                body_len: &mut len,
                preview: &mut preview,
                trailers: &mut Headers::new(),
                preview_cap: 8,
                preview_open: true,
            };
            // Feed everything not yet consumed plus `step` new bytes.
            match b.feed(&wire[at..end], &mut sink, 1024, false) {
                Step::More { consumed } => at += consumed,
                Step::Done { consumed, .. } => {
                    at += consumed;
                    break;
                }
                Step::Invalid { .. } => panic!("invalid"),
            }
        }
        assert_eq!(at, wire.len());
        assert_eq!(len, 10);
        assert_eq!(preview, b"abcdefgh");
    }

    #[test]
    fn gaps_inside_and_beyond() {
        let mut len = 0;
        let mut b = Body::Length(10);
        assert_eq!(b.gap(4, &mut len), GapFit::Inside { done: false });
        assert_eq!(b.gap(6, &mut len), GapFit::Inside { done: true });
        assert_eq!(len, 10);
        let mut b = Body::Length(3);
        assert_eq!(b.gap(4, &mut len), GapFit::Beyond);
        let mut b = Body::Chunked(Chunk::Data(5));
        assert_eq!(b.gap(5, &mut len), GapFit::Inside { done: false });
        assert_eq!(b, Body::Chunked(Chunk::DataEnd));
        let mut b = Body::Chunked(Chunk::Size);
        assert_eq!(b.gap(1, &mut len), GapFit::Beyond);
        assert_eq!(
            Body::Close.gap(1000, &mut len),
            GapFit::Inside { done: false }
        );
    }
}
