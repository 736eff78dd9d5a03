//! Message heads: start line and header section (RFC 9112 §2–§5), parsed with
//! httparse, plus what the headers say about framing (RFC 9112 §6) and the
//! boundary search used to resynchronise (§2.2: a recipient can only find a
//! message start by looking for a start line).

use std::mem::MaybeUninit;

use crate::record::{FIELD_TRUNCATED, Headers};

/// Header slots tried first, on the stack. Browsers and API clients send
/// 5–20 fields; 32 covers nearly all traffic without a second pass.
pub const FAST_HEADERS: usize = 32;

/// Header slots of the fallback pass, when a head has more than
/// [`FAST_HEADERS`] fields. Above this the head is recorded as invalid
/// (header overflow): no real peer sends that many and it bounds the work.
pub const MAX_HEADERS: usize = 256;

/// Longest request method accepted while resynchronising. Methods in use
/// (`PROPPATCH`, `MKACTIVITY`) are ≤ 12 bytes.
const MAX_METHOD_LEN: usize = 16;

/// Methods a resync accepts at a line start (RFC 9110 §9, RFC 4918 §9).
/// Inside a body any token could start a line; only these are believed.
pub const RESYNC_METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
];

/// What a head parse gave.
#[derive(Debug)]
pub enum HeadOutcome<T> {
    /// A prefix of a head: no error so far.
    NeedMore,
    /// A whole head of `len` bytes.
    Done { head: T, len: usize },
    /// Not a valid head.
    Invalid(HeadError),
}

impl<T> HeadOutcome<T> {
    /// Keeps the outcome, changes the head.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> HeadOutcome<U> {
        match self {
            HeadOutcome::NeedMore => HeadOutcome::NeedMore,
            HeadOutcome::Done { head, len } => HeadOutcome::Done { head: f(head), len },
            HeadOutcome::Invalid(e) => HeadOutcome::Invalid(e),
        }
    }
}

/// Why a head is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// httparse rejected it.
    Syntax,
    /// More than [`MAX_HEADERS`] fields, or longer than the head size cap.
    Overflow,
}

/// Message body length as the headers declare it (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// Neither Content-Length nor Transfer-Encoding.
    None,
    /// `Content-Length: n` (repeated identical values allowed, RFC 9110 §8.6).
    Length(u64),
    /// Transfer-Encoding with `chunked` last.
    Chunked,
    /// Transfer-Encoding without `chunked` last: read until close (responses)
    /// or faulty (requests, §6.3 item 4).
    OtherEncoding,
    /// Different Content-Length values, or one that is not a number (§6.3
    /// item 5): the length can't be known.
    BadLength,
}

/// What a protocol switch asks for (RFC 9110 §7.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeTo {
    H2c,
    WebSocket,
    Other,
}

/// Header facts that drive framing and stitching, read in one pass.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    pub declared: Declared,
    /// Both Transfer-Encoding and Content-Length were present (§6.3 item 3:
    /// TE wins, but it is a smuggling signal).
    pub te_and_cl: bool,
    pub upgrade: Option<UpgradeTo>,
    pub expect_continue: bool,
}

/// A parsed request head. Its strings borrow from the parsed bytes; the
/// header fields were copied into the caller's [`Headers`].
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// Minor version: 0 or 1.
    pub minor: u8,
    /// The first `Host` value.
    pub host: Option<&'a [u8]>,
    pub framing: Framing,
}

/// A parsed response head; see [`RequestHead`].
#[derive(Debug)]
pub struct ResponseHead<'a> {
    pub code: u16,
    pub reason: &'a str,
    pub minor: u8,
    pub framing: Framing,
}

fn request_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    // A sniffer records what peers accepted; be as lenient as servers are.
    c.allow_multiple_spaces_in_request_line_delimiters(true);
    c
}

fn response_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    c
}

/// Parses a request head at the start of `buf`. `max_head` caps its size:
/// a longer head is [`HeadError::Overflow`]. The header fields of a whole
/// head replace what `headers` held (its buffers are reused).
pub fn parse_request<'a>(
    buf: &'a [u8],
    max_head: usize,
    headers: &mut Headers,
) -> HeadOutcome<RequestHead<'a>> {
    let config = request_config();
    // Left uninitialised: filling 32 slots costs as much as parsing a
    // small head's start line.
    let mut slots = [const { MaybeUninit::uninit() }; FAST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match config.parse_request_with_uninit_headers(&mut req, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => finish_request(&req, buf, len, max_head, headers),
        Ok(httparse::Status::Partial) => partial(buf, max_head),
        Err(httparse::Error::TooManyHeaders) => {
            let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut slots);
            match config.parse_request(&mut req, buf) {
                Ok(httparse::Status::Complete(len)) => {
                    finish_request(&req, buf, len, max_head, headers)
                }
                Ok(httparse::Status::Partial) => partial(buf, max_head),
                Err(httparse::Error::TooManyHeaders) => HeadOutcome::Invalid(HeadError::Overflow),
                Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
            }
        }
        Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
    }
}

/// Parses a response head at the start of `buf`; see [`parse_request`].
pub fn parse_response<'a>(
    buf: &'a [u8],
    max_head: usize,
    headers: &mut Headers,
) -> HeadOutcome<ResponseHead<'a>> {
    let config = response_config();
    let mut slots = [const { MaybeUninit::uninit() }; FAST_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match config.parse_response_with_uninit_headers(&mut resp, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => finish_response(&resp, buf, len, max_head, headers),
        Ok(httparse::Status::Partial) => partial(buf, max_head),
        Err(httparse::Error::TooManyHeaders) => {
            let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match config.parse_response(&mut resp, buf) {
                Ok(httparse::Status::Complete(len)) => {
                    finish_response(&resp, buf, len, max_head, headers)
                }
                Ok(httparse::Status::Partial) => partial(buf, max_head),
                Err(httparse::Error::TooManyHeaders) => HeadOutcome::Invalid(HeadError::Overflow),
                Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
            }
        }
        Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
    }
}

/// Parses a trailer section (RFC 9112 §7.1.2) at the start of `buf`: header
/// fields up to and including the empty line, copied into `headers` (what
/// it held is replaced) when the section is whole.
pub fn parse_trailers(buf: &[u8], max_head: usize, headers: &mut Headers) -> HeadOutcome<()> {
    let mut slots = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) => {
            copy_headers(fields, buf, max_head, headers);
            HeadOutcome::Done { head: (), len }
        }
        Ok(httparse::Status::Partial) => partial(buf, max_head),
        Err(httparse::Error::TooManyHeaders) => {
            let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(buf, &mut slots) {
                Ok(httparse::Status::Complete((len, fields))) => {
                    copy_headers(fields, buf, max_head, headers);
                    HeadOutcome::Done { head: (), len }
                }
                Ok(httparse::Status::Partial) => partial(buf, max_head),
                Err(httparse::Error::TooManyHeaders) => HeadOutcome::Invalid(HeadError::Overflow),
                Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
            }
        }
        Err(_) => HeadOutcome::Invalid(HeadError::Syntax),
    }
}

/// Method and target of a request head cut short, if its request line got
/// that far.
pub fn partial_request_line(buf: &[u8]) -> Option<(&str, &str)> {
    let mut slots = [httparse::EMPTY_HEADER; FAST_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match request_config().parse_request(&mut req, buf) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {}
        Err(_) if req.version.is_none() => return None,
        Err(_) => {}
    }
    Some((req.method?, req.path?))
}

/// Status code and reason of a response head cut short, if its status line
/// got that far.
pub fn partial_status_line(buf: &[u8]) -> Option<(u16, &str)> {
    let mut slots = [httparse::EMPTY_HEADER; FAST_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let _ = response_config().parse_response(&mut resp, buf);
    Some((resp.code?, resp.reason?))
}

fn partial<T>(buf: &[u8], max_head: usize) -> HeadOutcome<T> {
    if buf.len() >= max_head {
        HeadOutcome::Invalid(HeadError::Overflow)
    } else {
        HeadOutcome::NeedMore
    }
}

fn finish_request<'a>(
    req: &httparse::Request<'_, 'a>,
    buf: &[u8],
    len: usize,
    max_head: usize,
    headers: &mut Headers,
) -> HeadOutcome<RequestHead<'a>> {
    if len > max_head {
        return HeadOutcome::Invalid(HeadError::Overflow);
    }
    let (framing, host) = copy_headers(req.headers, buf, max_head, headers);
    HeadOutcome::Done {
        head: RequestHead {
            method: req.method.unwrap_or_default(),
            target: req.path.unwrap_or_default(),
            minor: req.version.unwrap_or(1),
            host,
            framing,
        },
        len,
    }
}

fn finish_response<'a>(
    resp: &httparse::Response<'_, 'a>,
    buf: &[u8],
    len: usize,
    max_head: usize,
    headers: &mut Headers,
) -> HeadOutcome<ResponseHead<'a>> {
    if len > max_head {
        return HeadOutcome::Invalid(HeadError::Overflow);
    }
    let (framing, _) = copy_headers(resp.headers, buf, max_head, headers);
    HeadOutcome::Done {
        head: ResponseHead {
            code: resp.code.unwrap_or_default(),
            reason: resp.reason.unwrap_or_default(),
            minor: resp.version.unwrap_or(1),
            framing,
        },
        len,
    }
}

/// Copies the fields, parsed from `buf`, into `headers` (emptied first; the
/// header section in one copy) and reads the framing fields. Values longer
/// than `max_value` are cut and flagged (they can't be: the whole head is
/// below the cap; kept for safety). Also returns the first `Host` value.
fn copy_headers<'a>(
    fields: &[httparse::Header<'a>],
    buf: &[u8],
    max_value: usize,
    headers: &mut Headers,
) -> (Framing, Option<&'a [u8]>) {
    // From the first name to the last value: the fields all lie in it.
    let block = match (fields.first(), fields.last()) {
        (Some(first), Some(last)) => {
            let base = buf.as_ptr() as usize;
            let start = (first.name.as_ptr() as usize).wrapping_sub(base);
            let end = (last.value.as_ptr() as usize).wrapping_sub(base) + last.value.len();
            buf.get(start..end).unwrap_or_default()
        }
        _ => &[],
    };
    headers.clear();
    // No reserve first: the block copy and the fields' extend each make
    // room for exactly what they add, as it would.
    let all = fields.iter().map(|h| (h.name.as_bytes(), h.value));
    if block.len() <= max_value {
        // No value can be too long: the usual case, without a check per field.
        headers.extend_from_block(block, all.map(|(n, v)| (n, v, 0)));
    } else {
        headers.extend_from_block(
            block,
            all.map(|(n, v)| match v.get(..max_value) {
                Some(cut) if cut.len() < v.len() => (n, cut, FIELD_TRUNCATED),
                _ => (n, v, 0),
            }),
        );
    }
    let mut scan = FramingScan::default();
    for h in fields {
        scan.field(h.name.as_bytes(), h.value);
    }
    scan.finish()
}

/// What the fields of one head say about framing, gathered field by field.
#[derive(Default)]
struct FramingScan<'a> {
    length: Option<u64>,
    bad_length: bool,
    /// Some(whether chunked is the last coding).
    te: Option<bool>,
    upgrade: Option<UpgradeTo>,
    expect_continue: bool,
    host: Option<&'a [u8]>,
}

impl<'a> FramingScan<'a> {
    fn field(&mut self, name: &[u8], value: &'a [u8]) {
        match name.len() {
            4 if is_name(name, b"host") => {
                if self.host.is_none() {
                    self.host = Some(value);
                }
            }
            6 if is_name(name, b"expect") => {
                self.expect_continue |= trim(value).eq_ignore_ascii_case(b"100-continue");
            }
            7 if is_name(name, b"upgrade") => {
                self.upgrade = Some(upgrade_to(value));
            }
            14 if is_name(name, b"content-length") => {
                // Nearly always plain digits; else a list (RFC 9110 §8.6).
                if let Some(n) = parse_length(value) {
                    self.length(Some(n));
                    return;
                }
                for v in value.split(|&b| b == b',') {
                    self.length(parse_length(trim(v)));
                }
            }
            17 if is_name(name, b"transfer-encoding") => {
                for coding in value.split(|&b| b == b',') {
                    let coding = trim(coding);
                    if !coding.is_empty() {
                        self.te = Some(coding.eq_ignore_ascii_case(b"chunked"));
                    }
                }
            }
            _ => {}
        }
    }

    /// One Content-Length value: `None` if it isn't a number.
    fn length(&mut self, n: Option<u64>) {
        match n {
            Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
            _ => self.bad_length = true,
        }
    }

    fn finish(self) -> (Framing, Option<&'a [u8]>) {
        let declared = match (self.te, self.length, self.bad_length) {
            (Some(true), _, _) => Declared::Chunked,
            (Some(false), _, _) => Declared::OtherEncoding,
            (None, _, true) => Declared::BadLength,
            (None, Some(n), false) => Declared::Length(n),
            (None, None, false) => Declared::None,
        };
        let framing = Framing {
            declared,
            te_and_cl: self.te.is_some() && (self.length.is_some() || self.bad_length),
            upgrade: self.upgrade,
            expect_continue: self.expect_continue,
        };
        (framing, self.host)
    }
}

/// Whether header name `name` (a token, as httparse checked) is `lower`
/// (lowercase letters and `-`), in any case. For a token, setting bit 5
/// lowercases a letter and leaves `-` as it is; no other token byte turns
/// into a letter or `-` that way. The fixed length lets the comparison be
/// done a word at a time, without a branch per byte.
fn is_name<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    name.iter()
        .zip(lower)
        .fold(0, |d, (&a, &b)| d | ((a | 0x20) ^ b))
        == 0
}

fn upgrade_to(value: &[u8]) -> UpgradeTo {
    let first = value
        .split(|&b| b == b',')
        .next()
        .map(trim)
        .unwrap_or_default();
    let name = first.split(|&b| b == b'/').next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"h2c") {
        UpgradeTo::H2c
    } else if name.eq_ignore_ascii_case(b"websocket") {
        UpgradeTo::WebSocket
    } else {
        UpgradeTo::Other
    }
}

/// `1*DIGIT` (RFC 9110 §8.6), without overflow.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Strips optional whitespace (RFC 9110 §5.6.3).
pub fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Which start lines a search accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Request,
    Response,
    /// Either (the roles are not known yet).
    Any,
}

/// Result of looking for a start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// A plausible start line begins at this offset.
    Found(usize),
    /// None here. Bytes from `keep` on could still begin one once more bytes
    /// arrive; everything before `keep` can be dropped.
    NotFound { keep: usize },
}

/// Looks for the first line start in `buf` (offset 0, or just after a LF)
/// that looks like a request line (known method, target, `HTTP/1.x`) or a
/// status line (`HTTP/1.x NNN`), as `want` says. `max_line` bounds how long a
/// partial line at the end may be kept waiting.
pub fn find_start(buf: &[u8], want: Want, max_line: usize) -> Search {
    let mut at = 0usize;
    loop {
        let rest = &buf[at..];
        match line_kind(rest, want, max_line) {
            Line::Yes => return Search::Found(at),
            Line::Maybe => return Search::NotFound { keep: at },
            Line::No => {}
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => at += i + 1,
            None => return Search::NotFound { keep: buf.len() },
        }
    }
}

enum Line {
    Yes,
    No,
    /// A prefix of a start line: needs more bytes to tell.
    Maybe,
}

fn line_kind(rest: &[u8], want: Want, max_line: usize) -> Line {
    let resp = if want != Want::Request {
        status_line_kind(rest)
    } else {
        Line::No
    };
    if let Line::Yes = resp {
        return Line::Yes;
    }
    let req = if want != Want::Response {
        request_line_kind(rest, max_line)
    } else {
        Line::No
    };
    match (resp, req) {
        (_, Line::Yes) => Line::Yes,
        (Line::Maybe, _) | (_, Line::Maybe) => Line::Maybe,
        _ => Line::No,
    }
}

/// `HTTP/1.x SP 3DIGIT` (RFC 9112 §4).
fn status_line_kind(rest: &[u8]) -> Line {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = rest.len().min(PREFIX.len());
    if rest[..n] != PREFIX[..n] {
        return Line::No;
    }
    let tail = &rest[n..];
    // version digit, SP, 3 digits
    let checks: [fn(u8) -> bool; 5] = [
        |b| b == b'0' || b == b'1',
        |b| b == b' ',
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
    ];
    if rest.len() < PREFIX.len() {
        return Line::Maybe;
    }
    for (i, check) in checks.iter().enumerate() {
        match tail.get(i) {
            None => return Line::Maybe,
            Some(&b) if !check(b) => return Line::No,
            Some(_) => {}
        }
    }
    Line::Yes
}

/// `method SP target SP HTTP/1.x CRLF` with a method from [`RESYNC_METHODS`]
/// (RFC 9112 §3).
fn request_line_kind(rest: &[u8], max_line: usize) -> Line {
    let method_end = rest
        .iter()
        .take(MAX_METHOD_LEN + 1)
        .position(|&b| b == b' ');
    let Some(method_end) = method_end else {
        // No space yet: still a prefix of some known method?
        if rest.len() <= MAX_METHOD_LEN && RESYNC_METHODS.iter().any(|m| m.starts_with(rest)) {
            return Line::Maybe;
        }
        return Line::No;
    };
    if !RESYNC_METHODS.contains(&&rest[..method_end]) {
        return Line::No;
    }
    let line_end = rest.iter().position(|&b| b == b'\n');
    let Some(line_end) = line_end else {
        return if rest.len() < max_line {
            Line::Maybe
        } else {
            Line::No
        };
    };
    let mut line = &rest[..line_end];
    if let [head @ .., b'\r'] = line {
        line = head;
    }
    match line {
        [
            ..,
            b' ',
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
        ] if line.len() > method_end + 10 => Line::Yes,
        _ => Line::No,
    }
}

/// First bytes of a connection: does this look like HTTP/1 (`Some(true)`),
/// not HTTP/1 (`Some(false)`), or is it too short to tell (`None`)?
/// Leading empty lines are ignored (RFC 9112 §2.2).
pub fn looks_like_http1(buf: &[u8]) -> Option<bool> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    const STATUS: &[u8] = b"HTTP/";
    let n = rest.len().min(STATUS.len());
    if rest[..n] == STATUS[..n] {
        return if n == STATUS.len() { Some(true) } else { None };
    }
    // A request: a token (RFC 9110 §5.6.2) followed by a space.
    for (i, &b) in rest.iter().enumerate().take(MAX_METHOD_LEN + 1) {
        if b == b' ' {
            return Some(i > 0);
        }
        if !is_tchar(b) {
            return Some(false);
        }
    }
    if rest.len() > MAX_METHOD_LEN {
        Some(false)
    } else {
        None
    }
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `buf` starts (after empty lines) with what is, or may become, a
/// status line rather than a request line. `None`: too short to tell.
pub fn starts_with_status(buf: &[u8]) -> Option<bool> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    const STATUS: &[u8] = b"HTTP/";
    let n = rest.len().min(STATUS.len());
    if rest[..n] != STATUS[..n] {
        Some(false)
    } else if n == STATUS.len() {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_table() {
        // name, header lines, declared, te_and_cl
        let cases: &[(&str, &str, Declared, bool)] = &[
            ("none", "", Declared::None, false),
            ("cl", "Content-Length: 12\r\n", Declared::Length(12), false),
            (
                "cl ows",
                "Content-Length:  7 \r\n",
                Declared::Length(7),
                false,
            ),
            (
                "cl same twice",
                "Content-Length: 5\r\ncontent-length: 5\r\n",
                Declared::Length(5),
                false,
            ),
            (
                "cl upper case",
                "CONTENT-LENGTH: 3\r\n",
                Declared::Length(3),
                false,
            ),
            (
                "underscore is another name",
                "Content_Length: 3\r\n",
                Declared::None,
                false,
            ),
            (
                "cl list same",
                "Content-Length: 5, 5\r\n",
                Declared::Length(5),
                false,
            ),
            (
                "cl conflict",
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                Declared::BadLength,
                false,
            ),
            (
                "cl list conflict",
                "Content-Length: 5, 6\r\n",
                Declared::BadLength,
                false,
            ),
            (
                "cl not a number",
                "Content-Length: 5a\r\n",
                Declared::BadLength,
                false,
            ),
            (
                "cl negative",
                "Content-Length: -1\r\n",
                Declared::BadLength,
                false,
            ),
            (
                "cl overflow",
                "Content-Length: 99999999999999999999\r\n",
                Declared::BadLength,
                false,
            ),
            (
                "chunked",
                "Transfer-Encoding: chunked\r\n",
                Declared::Chunked,
                false,
            ),
            (
                "gzip, chunked",
                "Transfer-Encoding: gzip, chunked\r\n",
                Declared::Chunked,
                false,
            ),
            (
                "split te",
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                Declared::Chunked,
                false,
            ),
            (
                "chunked not last",
                "Transfer-Encoding: chunked, gzip\r\n",
                Declared::OtherEncoding,
                false,
            ),
            (
                "te and cl",
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                Declared::Chunked,
                true,
            ),
        ];
        for (name, lines, declared, te_and_cl) in cases {
            let raw = format!("POST / HTTP/1.1\r\n{lines}\r\n");
            let mut headers = Headers::new();
            let HeadOutcome::Done { head, len } =
                parse_request(raw.as_bytes(), 1 << 16, &mut headers)
            else {
                panic!("{name}: not parsed");
            };
            assert_eq!(len, raw.len(), "{name}");
            assert_eq!(head.framing.declared, *declared, "{name}");
            assert_eq!(head.framing.te_and_cl, *te_and_cl, "{name}");
        }
    }

    #[test]
    fn request_fields_and_fallback_headers() {
        let mut raw = String::from(
            "GET /x?y=1 HTTP/1.0\r\nHost: example.com\r\nUpgrade: h2c\r\nExpect: 100-continue\r\n",
        );
        for i in 0..100 {
            raw.push_str(&format!("X-{i}: v{i}\r\n"));
        }
        raw.push_str("\r\n");
        // Parsed into a list that held another head: nothing of it stays.
        let mut headers = Headers::new();
        headers.push(b"Old", b"value");
        let HeadOutcome::Done { head, .. } = parse_request(raw.as_bytes(), 1 << 16, &mut headers)
        else {
            panic!("not parsed");
        };
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/x?y=1");
        assert_eq!(head.minor, 0);
        assert_eq!(head.host, Some(&b"example.com"[..]));
        assert_eq!(headers.len(), 103);
        assert_eq!(headers.iter().next().unwrap().0, b"Host");
        assert_eq!(headers.get(b"old"), None);
        assert_eq!(head.framing.upgrade, Some(UpgradeTo::H2c));
        assert!(head.framing.expect_continue);
    }

    #[test]
    fn overflow_is_invalid() {
        let mut raw = String::from("GET / HTTP/1.1\r\n");
        for i in 0..(MAX_HEADERS + 1) {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert!(matches!(
            parse_request(raw.as_bytes(), 1 << 20, &mut Headers::new()),
            HeadOutcome::Invalid(HeadError::Overflow)
        ));
        assert!(matches!(
            parse_request(
                b"GET / HTTP/1.1\r\nA: bbbbbbbbbbbbbbbbbbbbbbb",
                16,
                &mut Headers::new()
            ),
            HeadOutcome::Invalid(HeadError::Overflow)
        ));
    }

    #[test]
    fn find_start_table() {
        let cases: &[(&str, &[u8], Want, Search)] = &[
            (
                "at 0",
                b"GET / HTTP/1.1\r\n",
                Want::Request,
                Search::Found(0),
            ),
            (
                "after body",
                b"xx\r\nGET / HTTP/1.1\r\n",
                Want::Request,
                Search::Found(4),
            ),
            (
                "bare lf",
                b"xx\nPOST /a HTTP/1.0\n",
                Want::Request,
                Search::Found(3),
            ),
            (
                "unknown method",
                b"FOO / HTTP/1.1\r\n",
                Want::Request,
                Search::NotFound { keep: 16 },
            ),
            (
                "mid line",
                b"xx GET / HTTP/1.1\r\n",
                Want::Request,
                Search::NotFound { keep: 19 },
            ),
            (
                "partial method",
                b"abc\r\nGE",
                Want::Request,
                Search::NotFound { keep: 5 },
            ),
            (
                "partial line",
                b"abc\r\nGET /lo",
                Want::Request,
                Search::NotFound { keep: 5 },
            ),
            (
                "status",
                b"zz\r\nHTTP/1.1 200 OK\r\n",
                Want::Response,
                Search::Found(4),
            ),
            (
                "status wanted req",
                b"HTTP/1.1 200 OK\r\n",
                Want::Request,
                Search::NotFound { keep: 17 },
            ),
            (
                "partial status",
                b"zz\nHTTP/1.",
                Want::Response,
                Search::NotFound { keep: 3 },
            ),
            (
                "bad status",
                b"HTTP/1.1 2x0\r\n",
                Want::Response,
                Search::NotFound { keep: 14 },
            ),
            ("any", b"q\nHTTP/1.0 404 x\r\n", Want::Any, Search::Found(2)),
            (
                "nothing",
                b"hello world",
                Want::Any,
                Search::NotFound { keep: 11 },
            ),
        ];
        for (name, buf, want, expect) in cases {
            assert_eq!(find_start(buf, *want, 1024), *expect, "{name}");
        }
    }

    #[test]
    fn looks_like_http1_table() {
        let cases: &[(&[u8], Option<bool>)] = &[
            (b"GET / HTTP/1.1\r\n", Some(true)),
            (b"HTTP/1.1 200", Some(true)),
            (b"HTT", None),
            (b"GE", None),
            (b"\r\nGET ", Some(true)),
            (b"\x16\x03\x01\x02", Some(false)),
            (b"PRI * HTTP/2.0", Some(true)),
            (b" GET", Some(false)),
        ];
        for (buf, want) in cases {
            assert_eq!(
                looks_like_http1(buf),
                *want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }
}
