//! The records this crate produces: one [`Exchange`] per request/response pair
//! (HTTP/1.x) or per stream (HTTP/2), whatever the protocol underneath.
//!
//! Everything a user sees (`sniff --proto http`, `--json`, replays) is built from
//! these types, so they carry what was seen and flags for what was not.
//!
//! Records are owned values. A consumer done with one gives it back with
//! [`Exchange::recycle`]: the parsers then build the next records in its
//! buffers, so a steady connection allocates nothing per exchange. Records
//! never given back are simply dropped.

use std::cell::RefCell;
use std::fmt;

/// Which way bytes moved, seen from the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Written by the traced process (write, send, ...).
    Egress,
    /// Read by the traced process (read, recv, ...).
    Ingress,
}

impl Direction {
    /// The other direction of the same connection.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Egress => Direction::Ingress,
            Direction::Ingress => Direction::Egress,
        }
    }

    /// 0 for egress, 1 for ingress: an index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }
    }
}

/// Which end of the connection the traced process is, inferred from the bytes
/// (it sends requests: client; it sends responses: server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// The wire protocol an exchange was carried by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Http1,
    Http2,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http1 => "http1",
            Proto::Http2 => "http2",
        }
    }
}

/// An ordered header list stored in one buffer: names as sent, duplicates
/// kept. Two allocations per list instead of two per header; a list copied
/// from a head ([`Headers::extend_from_block`]) is one copy, separators
/// included.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Field {
    name_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
    flags: u8,
}

/// The header value could not be recovered (e.g. an HPACK reference to a
/// dynamic table entry inserted before capture began); the stored value is a
/// human-readable placeholder such as `<unknown: dynamic index 70>`.
pub const FIELD_UNKNOWN: u8 = 1 << 0;
/// The value was cut at the header size cap.
pub const FIELD_TRUNCATED: u8 = 1 << 1;
/// HPACK never-indexed literal (RFC 7541 §6.2.3): the sender marked it sensitive.
pub const FIELD_NEVER_INDEXED: u8 = 1 << 2;

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            bytes: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Makes room for `fields` more fields of `bytes` bytes in all.
    pub fn reserve(&mut self, fields: usize, bytes: usize) {
        self.bytes.reserve(bytes);
        self.fields.reserve(fields);
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_flagged(name, value, 0);
    }

    pub fn push_flagged(&mut self, name: &[u8], value: &[u8], flags: u8) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.fields.push(Field {
            name_start: start as u32,
            name_end: name_end as u32,
            value_start: name_end as u32,
            value_end: self.bytes.len() as u32,
            flags,
        });
    }

    /// Appends fields whose names and values are slices of `block` (the
    /// header section of a head as received): `block` is copied once and
    /// each field is kept as offsets into the copy. Every name and value must
    /// lie inside `block` (asserted in debug builds); one that doesn't reads
    /// back wrong or empty, never out of bounds. Inline: it runs for every
    /// head, and a call of its own costs about what a few fields do.
    #[inline]
    pub(crate) fn extend_from_block<'a>(
        &mut self,
        block: &[u8],
        fields: impl Iterator<Item = (&'a [u8], &'a [u8], u8)>,
    ) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(block);
        let (start, len) = (block.as_ptr() as usize, block.len());
        let at = move |s: &[u8]| {
            let off = (s.as_ptr() as usize).wrapping_sub(start);
            debug_assert!(
                off <= len && s.len() <= len - off,
                "field outside its block"
            );
            let off = base.wrapping_add(off);
            (off as u32, off.wrapping_add(s.len()) as u32)
        };
        self.fields.extend(fields.map(|(name, value, flags)| {
            let (name_start, name_end) = at(name);
            let (value_start, value_end) = at(value);
            Field {
                name_start,
                name_end,
                value_start,
                value_end,
                flags,
            }
        }));
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Bytes held: names and values, and the separators between them in a
    /// list copied from a head.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
    }

    /// Drops buffers grown beyond what is worth keeping in a free list.
    fn trim(&mut self) {
        if self.bytes.capacity() > MAX_KEPT_BYTES {
            self.bytes = Vec::new();
        }
        if self.fields.capacity() > MAX_KEPT_FIELDS {
            self.fields = Vec::new();
        }
    }

    /// (name, value, flags) in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], u8)> + '_ {
        let text = |start: u32, end: u32| {
            self.bytes
                .get(start as usize..end as usize)
                .unwrap_or_default()
        };
        self.fields.iter().map(move |f| {
            let name = text(f.name_start, f.name_end);
            let value = text(f.value_start, f.value_end);
            (name, value, f.flags)
        })
    }

    /// The first value of `name`, compared ASCII case-insensitively.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v, _)| v)
    }

    /// Every value of `name`, compared ASCII case-insensitively.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v, _)| v)
    }

    /// True if any field carries [`FIELD_UNKNOWN`].
    pub fn has_unknown(&self) -> bool {
        self.fields.iter().any(|f| f.flags & FIELD_UNKNOWN != 0)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v, fl)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                    fl,
                )
            }))
            .finish()
    }
}

/// One side of an exchange: a request or a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Header fields as sent; for HTTP/2 this includes pseudo-headers
    /// (`:method`, `:path`, ...), in order.
    pub headers: Headers,
    /// Trailer fields (chunked trailers, HTTP/2 trailing HEADERS).
    pub trailers: Headers,
    /// Body bytes as framed on the wire (after de-chunking; before any
    /// content decoding). Counted even when not captured.
    pub body_len: u64,
    /// The first bytes of the body, up to the configured preview size.
    pub body_preview: Vec<u8>,
    /// Timestamp (ns, the capture clock) of this message's first byte.
    pub first_ns: u64,
    /// Timestamp (ns) of this message's last byte.
    pub last_ns: u64,
    /// Bytes of the message on the wire (head + framing + body).
    pub wire_len: u64,
}

impl Message {
    /// Empties the message, keeping its buffers' capacity.
    pub fn clear(&mut self) {
        // Destructured so that a new field can't be forgotten here.
        let Message {
            headers,
            trailers,
            body_len,
            body_preview,
            first_ns,
            last_ns,
            wire_len,
        } = self;
        headers.clear();
        trailers.clear();
        *body_len = 0;
        body_preview.clear();
        *first_ns = 0;
        *last_ns = 0;
        *wire_len = 0;
    }

    /// Drops buffers grown beyond what is worth keeping in a free list.
    fn trim(&mut self) {
        self.headers.trim();
        self.trailers.trim();
        if self.body_preview.capacity() > MAX_KEPT_BYTES {
            self.body_preview = Vec::new();
        }
    }
}

/// gRPC details of an HTTP/2 exchange whose content-type is `application/grpc*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grpc {
    /// From `:path` = `/package.Service/Method`.
    pub service: String,
    pub method: String,
    /// Length-prefixed messages seen in the request and response bodies.
    pub req_messages: u32,
    pub resp_messages: u32,
    /// Some message had the compressed flag set.
    pub compressed: bool,
    /// Inferred from message counts: unary, server_streaming, client_streaming, bidi_streaming.
    pub kind: GrpcKind,
    /// `grpc-status` from trailers (or a trailers-only response).
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GrpcKind {
    #[default]
    Unary,
    ServerStreaming,
    ClientStreaming,
    BidiStreaming,
}

impl GrpcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcKind::Unary => "unary",
            GrpcKind::ServerStreaming => "server_streaming",
            GrpcKind::ClientStreaming => "client_streaming",
            GrpcKind::BidiStreaming => "bidi_streaming",
        }
    }
}

/// What went wrong or was unusual while rebuilding an exchange. Bit flags so a
/// record can carry several; [`Flags::names`] gives their stable names for
/// output.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $text:literal;)*) => {
        impl Flags {
            $($(#[$doc])* pub const $name: Flags = Flags(1 << $bit);)*
            const NAMES: &'static [(Flags, &'static str)] = &[$((Flags::$name, $text)),*];
        }
    };
}

flags! {
    /// A body (or payload) was cut by a capture cap; lengths are still exact.
    TRUNCATED = 0, "truncated";
    /// Bytes of this exchange were lost (a gap in the captured stream).
    GAP = 1, "gap";
    /// The parser skipped bytes to find the next message boundary before this one.
    RESYNCED = 2, "resynced";
    /// The connection closed (or capture ended) before the exchange finished;
    /// e.g. a request without a response.
    INCOMPLETE = 3, "incomplete";
    /// Framing was malformed or conflicting (bad chunk size, two different
    /// Content-Lengths, header overflow, HPACK error).
    INVALID = 4, "invalid";
    /// Some header could not be decoded (HTTP/2 joined mid-connection).
    HEADERS_PARTIAL = 5, "headers_partial";
    /// A header list or value hit its size cap.
    HEADERS_TRUNCATED = 6, "headers_truncated";
    /// HTTP/2 stream ended by RST_STREAM.
    RESET = 7, "reset";
    /// HTTP/2 server push (the request is the PUSH_PROMISE).
    PUSH = 8, "push";
    /// Switching Protocols: what follows is another protocol.
    UPGRADE = 9, "upgrade";
    /// CONNECT tunnel established: what follows is opaque.
    TUNNEL = 10, "tunnel";
    /// The connection was joined mid-way (no preface / first bytes not seen).
    LATE_JOIN = 11, "late_join";
    /// GOAWAY received for this stream (stream id above last-stream-id).
    GOAWAY = 12, "goaway";
    /// Response seen without its request (e.g. the request was before capture).
    NO_REQUEST = 13, "no_request";
    /// Which end is the client could not be inferred (HTTP/2 joined mid-way
    /// without a readable `:method`/`:status` or other evidence): `side` is
    /// a guess and request and response may be swapped.
    SIDE_UNKNOWN = 14, "side_unknown";
}

impl Flags {
    pub const NONE: Flags = Flags(0);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Stable lowercase names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Records kept per thread by [`Exchange::recycle`]. A few dozen cover a
/// consumer that renders what each event completed before the next event;
/// more would only hold memory.
pub const POOL_RECORDS: usize = 64;

/// Largest buffer (bytes of a string, header list or preview) a recycled
/// record keeps. Typical heads are well under 1 KiB and the default
/// preview is 1 KiB; a rare huge one is not worth holding on to. With
/// [`POOL_RECORDS`] and [`MAX_KEPT_FIELDS`] this bounds what the free list
/// of a thread hold: about 3 MiB at worst, a few hundred KiB for typical
/// records.
pub const MAX_KEPT_BYTES: usize = 4 * 1024;

/// Most header fields (and interim codes) a recycled list keeps room for:
/// heads seen in practice have 5–30.
pub const MAX_KEPT_FIELDS: usize = 64;

thread_local! {
    /// Emptied records given back with [`Exchange::recycle`].
    static POOL: RefCell<Vec<Box<Exchange>>> = const { RefCell::new(Vec::new()) };
}

/// Puts `bytes` into `slot`, in the string it holds or else in `spare`'s
/// buffer; invalid UTF-8 is replaced, as [`String::from_utf8_lossy`] does.
fn set_text(slot: &mut Option<String>, spare: &mut String, bytes: &[u8]) {
    let s = slot.get_or_insert_with(|| std::mem::take(spare));
    s.clear();
    match std::str::from_utf8(bytes) {
        Ok(v) => s.push_str(v),
        Err(_) => s.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Keeps `s`'s buffer in `spare` if it is worth keeping.
fn keep_text(spare: &mut String, s: Option<String>) {
    if let Some(mut s) = s
        && s.capacity() <= MAX_KEPT_BYTES
    {
        s.clear();
        *spare = s;
    }
}

/// The buffers of a recycled record's `authority`, `reason` and
/// `response`, kept for when they are filled in again. Not part of the
/// record's value: all are equal, a clone is empty, and `Debug` shows none
/// of it.
#[derive(Default)]
struct Spare {
    authority: String,
    reason: String,
    response: Option<Message>,
}

impl Clone for Spare {
    fn clone(&self) -> Spare {
        Spare::default()
    }
}

impl PartialEq for Spare {
    fn eq(&self, _: &Spare) -> bool {
        true
    }
}

impl Eq for Spare {}

impl fmt::Debug for Spare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

fn default_version(proto: Proto) -> &'static str {
    match proto {
        Proto::Http1 => "HTTP/1.1",
        Proto::Http2 => "HTTP/2",
    }
}

/// One request and its response (HTTP/1.x), or one stream (HTTP/2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub proto: Proto,
    /// The traced process's end of the connection.
    pub side: Side,
    /// HTTP/2 stream id; `None` for HTTP/1.x.
    pub stream_id: Option<u32>,
    /// Request method (`:method` for HTTP/2); empty if the request was not seen.
    pub method: String,
    /// Request target as sent (`:path` for HTTP/2).
    pub path: String,
    /// `Host` (HTTP/1) or `:authority` (HTTP/2).
    pub authority: Option<String>,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub version: &'static str,
    /// Final status code; `None` if no response was seen.
    pub status: Option<u16>,
    /// HTTP/1 reason phrase.
    pub reason: Option<String>,
    /// Status codes of interim (1xx) responses before the final one, in order.
    pub interim: Vec<u16>,
    pub request: Message,
    pub response: Option<Message>,
    pub grpc: Option<Grpc>,
    /// HTTP/2 RST_STREAM error code, if the stream was reset.
    pub reset_code: Option<u32>,
    pub flags: Flags,
    spare: Spare,
}

impl Exchange {
    /// An empty exchange to be filled in by a parser. Reuses a record given
    /// back with [`Exchange::recycle`] on this thread, if there is one.
    ///
    /// Boxed: a record is several hundred bytes and passes through queues
    /// and lists on its way out of a parser; a box moves as one pointer.
    pub fn new(proto: Proto, side: Side) -> Box<Self> {
        match POOL.with_borrow_mut(Vec::pop) {
            Some(mut ex) => {
                ex.proto = proto;
                ex.side = side;
                ex.version = default_version(proto);
                ex
            }
            None => Box::new(Exchange {
                proto,
                side,
                stream_id: None,
                method: String::new(),
                path: String::new(),
                authority: None,
                version: default_version(proto),
                status: None,
                reason: None,
                interim: Vec::new(),
                request: Message::default(),
                response: None,
                grpc: None,
                reset_code: None,
                flags: Flags::NONE,
                spare: Spare::default(),
            }),
        }
    }

    /// Sets `authority` (invalid UTF-8 replaced), in a recycled buffer if
    /// the record has one.
    pub fn set_authority(&mut self, bytes: &[u8]) {
        set_text(&mut self.authority, &mut self.spare.authority, bytes);
    }

    /// Sets `reason`, in a recycled buffer if the record has one. Inline,
    /// as is [`Exchange::response_mut`]: once per response, a few moves.
    #[inline]
    pub fn set_reason(&mut self, reason: &str) {
        let s = self
            .reason
            .get_or_insert_with(|| std::mem::take(&mut self.spare.reason));
        s.clear();
        s.push_str(reason);
    }

    /// The response, made empty (in a recycled one's buffers if the record
    /// has them) if there was none.
    #[inline]
    pub fn response_mut(&mut self) -> &mut Message {
        let spare = &mut self.spare.response;
        self.response
            .get_or_insert_with(|| spare.take().unwrap_or_default())
    }

    /// Gives a finished record back for reuse: the next [`Exchange::new`]
    /// on this thread returns it, emptied, with its buffers (strings, header
    /// lists, preview, and those of the optional parts, see
    /// [`Exchange::set_authority`], [`Exchange::set_reason`],
    /// [`Exchange::response_mut`]). A consumer that recycles what it has
    /// shown makes a steady-state connection allocate nothing per exchange.
    ///
    /// The free list is per thread and bounded ([`POOL_RECORDS`] records,
    /// buffers up to [`MAX_KEPT_BYTES`]); beyond that the record is dropped.
    pub fn recycle(mut self: Box<Self>) {
        // Emptied here so a pooled record is always clean, whoever takes it.
        self.clear();
        POOL.with_borrow_mut(|p| {
            if p.len() < POOL_RECORDS {
                p.push(self);
            }
        });
    }

    /// Empties every field in place, keeping the buffers of the strings and
    /// lists (unless grown past [`MAX_KEPT_BYTES`]).
    fn clear(&mut self) {
        // Destructured so that a new field can't be forgotten here.
        let Exchange {
            proto: _,
            side: _,
            stream_id,
            method,
            path,
            authority,
            version: _,
            status,
            reason,
            interim,
            request,
            response,
            grpc,
            reset_code,
            flags,
            spare,
        } = self;
        *stream_id = None;
        for s in [method, path] {
            if s.capacity() > MAX_KEPT_BYTES {
                *s = String::new();
            }
            s.clear();
        }
        keep_text(&mut spare.authority, authority.take());
        *status = None;
        keep_text(&mut spare.reason, reason.take());
        if interim.capacity() > MAX_KEPT_FIELDS {
            *interim = Vec::new();
        }
        interim.clear();
        request.clear();
        request.trim();
        if let Some(mut m) = response.take() {
            m.clear();
            m.trim();
            spare.response = Some(m);
        }
        *grpc = None;
        *reset_code = None;
        *flags = Flags::NONE;
    }

    /// Time from the request's first byte to the response's last byte, if both
    /// were seen.
    pub fn latency_ns(&self) -> Option<u64> {
        let resp = self.response.as_ref()?;
        if self.request.first_ns == 0 {
            return None;
        }
        Some(resp.last_ns.saturating_sub(self.request.first_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_order_duplicates_and_case() {
        let mut h = Headers::new();
        h.push(b"Host", b"a");
        h.push(b"Set-Cookie", b"x=1");
        h.push(b"set-cookie", b"y=2");
        h.push_flagged(b"x-late", b"<unknown: dynamic index 70>", FIELD_UNKNOWN);
        let all: Vec<_> = h.iter().map(|(n, v, _)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(all[1], (b"Set-Cookie".to_vec(), b"x=1".to_vec()));
        assert_eq!(all[2], (b"set-cookie".to_vec(), b"y=2".to_vec()));
        assert_eq!(h.get(b"HOST"), Some(&b"a"[..]));
        assert_eq!(h.get_all(b"set-cookie").count(), 2);
        assert!(h.has_unknown());
        assert_eq!(h.len(), 4);
    }

    /// An exchange with every field set, as a parser could leave it.
    fn full() -> Box<Exchange> {
        let mut ex = Exchange::new(Proto::Http2, Side::Server);
        ex.stream_id = Some(7);
        ex.method = "POST".into();
        ex.path = "/pkg.Service/Method".into();
        ex.authority = Some("example.com".into());
        ex.version = "HTTP/1.0";
        ex.status = Some(503);
        ex.reason = Some("Unavailable".into());
        ex.interim = vec![100, 103];
        let mut m = Message::default();
        m.headers.push(b"content-type", b"application/grpc");
        m.trailers
            .push_flagged(b"grpc-status", b"14", FIELD_NEVER_INDEXED);
        m.body_len = 99;
        m.body_preview = b"preview".to_vec();
        m.first_ns = 1;
        m.last_ns = 2;
        m.wire_len = 300;
        ex.request = m.clone();
        ex.response = Some(m);
        ex.grpc = Some(Grpc {
            service: "pkg.Service".into(),
            method: "Method".into(),
            req_messages: 2,
            resp_messages: 3,
            compressed: true,
            kind: GrpcKind::BidiStreaming,
            status: Some(14),
            message: Some("down".into()),
        });
        ex.reset_code = Some(8);
        ex.flags = Flags::GAP | Flags::RESET | Flags::INVALID;
        ex
    }

    #[test]
    fn recycled_exchange_is_empty_and_keeps_buffers() {
        std::thread::spawn(|| {
            let expected = Exchange {
                proto: Proto::Http1,
                side: Side::Client,
                stream_id: None,
                method: String::new(),
                path: String::new(),
                authority: None,
                version: "HTTP/1.1",
                status: None,
                reason: None,
                interim: Vec::new(),
                request: Message::default(),
                response: None,
                grpc: None,
                reset_code: None,
                flags: Flags::NONE,
                spare: Spare::default(),
            };
            full().recycle();
            let mut ex = Exchange::new(Proto::Http1, Side::Client);
            assert_eq!(*ex, expected);
            assert!(ex.path.capacity() >= "/pkg.Service/Method".len());
            assert!(ex.request.body_preview.capacity() >= b"preview".len());
            assert_eq!(POOL.with_borrow(Vec::len), 0);
            // The optional parts come back empty, in the kept buffers.
            let m = ex.response_mut();
            assert_eq!(*m, Message::default());
            assert!(m.body_preview.capacity() >= b"preview".len());
            ex.set_authority(b"h\xffst");
            assert_eq!(ex.authority.as_deref(), Some("h\u{fffd}st"));
            assert!(ex.authority.as_ref().unwrap().capacity() >= "example.com".len());
            ex.set_reason("");
            assert_eq!(ex.reason.as_deref(), Some(""));
            assert!(ex.reason.as_ref().unwrap().capacity() >= "Unavailable".len());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn free_lists_are_bounded() {
        std::thread::spawn(|| {
            let records: Vec<_> = (0..POOL_RECORDS + 10).map(|_| full()).collect();
            records.into_iter().for_each(Exchange::recycle);
            assert_eq!(POOL.with_borrow(Vec::len), POOL_RECORDS);
            // A buffer too large to keep is dropped, not pooled.
            POOL.with_borrow_mut(Vec::clear);
            let mut ex = full();
            ex.path = "p".repeat(MAX_KEPT_BYTES + 1);
            ex.recycle();
            assert_eq!(Exchange::new(Proto::Http1, Side::Client).path.capacity(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn block_copy_keeps_fields() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nAccept: */*\r\n\r\n";
        let block = &head[16..head.len() - 4];
        let mut h = Headers::new();
        h.push(b"first", b"1");
        h.extend_from_block(
            block,
            [
                (&block[0..4], &block[6..7], 0),
                (&block[9..16], &block[17..17], 0),
                (&block[19..25], &block[27..29], FIELD_TRUNCATED),
            ]
            .into_iter(),
        );
        let all: Vec<_> = h.iter().collect();
        assert_eq!(
            all,
            [
                (&b"first"[..], &b"1"[..], 0),
                (b"Host", b"a", 0),
                (b"X-Empty", b"", 0),
                (b"Accept", b"*/", FIELD_TRUNCATED),
            ]
        );
        assert_eq!(h.byte_len(), 6 + block.len());
    }

    #[test]
    fn flag_names_are_stable() {
        let f = Flags::GAP | Flags::INCOMPLETE | Flags::HEADERS_PARTIAL;
        assert_eq!(
            f.names().collect::<Vec<_>>(),
            ["gap", "incomplete", "headers_partial"]
        );
    }
}
