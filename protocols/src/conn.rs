//! The per-connection entry point: live capture and replays both feed one
//! [`Connection`] per TCP connection, with the bytes of each direction and
//! their stream positions, and get [`Exchange`] records back.
//!
//! ```text
//! data(dir, pos, ts, bytes) ─┐                      ┌─ HTTP/1 (http1/)
//! lost(dir, pos, len) ───────┼─> DataStream × 2 ──> ├─ HTTP/2 tail (opaque for now)
//! flush() / close(ts) ───────┘   (stream.rs)        └─ not HTTP (counted)
//! ```
//!
//! The protocol is detected from the first bytes of either direction: the
//! HTTP/2 client preface, or a request line or status line for HTTP/1.
//! Anything else, on a connection seen from its start, is "not HTTP": bytes
//! are counted, never parsed. A connection joined mid-way ([`Connection::new_late`])
//! is given to HTTP/1, which resyncs at the next start line; if none is
//! found within [`Config::detect_limit`] bytes it is "not HTTP" too.
//!
//! Callers should call [`Connection::flush`] when a connection has been idle
//! for a while (a second is plenty): it gives up on unknown holes and
//! releases responses held while waiting for their request.
//!
//! Exchanges a caller is done with can be given back with
//! [`Exchange::recycle`], on the thread that feeds the connections: new
//! exchanges are then built in their buffers instead of fresh allocations.

use crate::http1::{Http1, Limits, Switch};
use crate::http2::{Http2Config, Http2Conn, Start, Upgrade, decode_http2_settings};
use crate::record::{Direction, Exchange, Flags, Proto, Side};
use crate::stream::{DEFAULT_REORDER_WINDOW, DataStream};

/// Body bytes kept per message. Enough to read a JSON error or a form; small
/// enough that a million records a second don't copy much.
pub const DEFAULT_BODY_PREVIEW: usize = 1024;

/// Largest message head (start line + header fields) parsed. Servers refuse
/// far less (nginx 8 KiB per line, node 16 KiB in all); a longer head is
/// recorded as invalid and skipped.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;

/// Bytes of a direction skipped without finding any start line, on a
/// connection joined mid-way, before deciding it is not HTTP.
pub const DEFAULT_DETECT_LIMIT: usize = 64 * 1024;

/// Requests queued without a response before the oldest is reported
/// incomplete. Real pipelines hold a handful; this bounds a one-sided trace.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 1024;

/// Hard cap on bytes held per direction (head + out-of-order chunks). Beyond
/// it, unknown holes are skipped and held messages released at once. The
/// normal bound is lower: a partial head (≤ `max_head`) plus the reorder
/// window plus one chunk.
pub const DEFAULT_MAX_BUFFERED: usize = 1024 * 1024;

/// The 24 bytes an HTTP/2 client sends first (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Limits and sizes of one connection's parsing. [`Config::default`] gives
/// the named defaults above.
#[derive(Clone, Debug)]
pub struct Config {
    /// Body bytes kept in [`crate::record::Message::body_preview`].
    pub body_preview: usize,
    /// Largest head parsed; see [`DEFAULT_MAX_HEAD`].
    pub max_head: usize,
    /// Bytes waited for beyond an unknown hole before skipping it; also how
    /// long (in bytes) a response is held waiting for its request. See
    /// [`DEFAULT_REORDER_WINDOW`].
    pub reorder_window: usize,
    /// Hard cap per direction; see [`DEFAULT_MAX_BUFFERED`].
    pub max_buffered: usize,
    /// See [`DEFAULT_DETECT_LIMIT`].
    pub detect_limit: usize,
    /// See [`DEFAULT_MAX_PENDING_REQUESTS`].
    pub max_pending_requests: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            body_preview: DEFAULT_BODY_PREVIEW,
            max_head: DEFAULT_MAX_HEAD,
            reorder_window: DEFAULT_REORDER_WINDOW,
            max_buffered: DEFAULT_MAX_BUFFERED,
            detect_limit: DEFAULT_DETECT_LIMIT,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
        }
    }
}

/// What a connection turned out to carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Not enough bytes yet.
    Unknown,
    Http1,
    /// Prior-knowledge preface or h2c upgrade.
    Http2,
    /// Counted, not parsed.
    NotHttp,
}

/// Counters of one connection. Byte counts are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Distinct captured bytes per direction ([`Direction::index`]).
    pub bytes: [u64; 2],
    /// Bytes received twice (retransmissions, overlapping chunks).
    pub duplicate_bytes: u64,
    /// Bytes lost, known (capture truncation) and unknown (missing events).
    pub lost_bytes: u64,
    /// The part of `lost_bytes` that was known truncation.
    pub lost_known_bytes: u64,
    /// Captured bytes passed over while looking for a message boundary.
    pub resync_skipped_bytes: u64,
    /// Bytes of tunnels, upgraded or undetected protocols: counted only.
    pub opaque_bytes: u64,
    /// Message heads parsed (HTTP/1, interim responses included).
    pub heads: u64,
    /// Exchanges emitted, and how many carried each flag.
    pub exchanges: u64,
    pub invalid: u64,
    pub incomplete: u64,
    pub no_request: u64,
    /// Exchanges emitted early because too many requests were queued.
    pub evicted: u64,
}

/// Per-connection protocol state. New protocols are new variants.
enum ProtoState {
    /// Waiting for the first bytes.
    Detecting,
    Http1(Box<Http1>),
    /// HTTP/2: after the client preface (prior knowledge), after a 101 to
    /// h2c (the HTTP/1 upgrade request becomes stream 1), or joined mid-way.
    /// Both [`DataStream`]s are fed from their current read positions.
    Http2(Box<Http2Conn>),
    /// Not HTTP: bytes are counted.
    NotHttp,
}

/// One connection: two [`DataStream`]s and the protocol parsed over them.
pub struct Connection {
    limits: Limits,
    max_buffered: usize,
    detect_limit: usize,
    streams: [DataStream; 2],
    proto: ProtoState,
    late: bool,
    /// The direction that got bytes first: driven first until roles are known.
    first: Option<Direction>,
    opaque: u64,
    /// Counters of an HTTP/1 state replaced by another protocol.
    retired: Option<crate::http1::Http1Stats>,
    closed: bool,
    h2: Http2Config,
    /// Latest capture timestamp seen, for streams flushed at close.
    last_ts: u64,
}

impl Connection {
    /// A connection seen from its first byte.
    pub fn new(config: &Config) -> Self {
        Self::with_start(config, false)
    }

    /// A connection joined mid-way (opened before capture began): positions
    /// still start at 0, but the first bytes may be anywhere in a message.
    pub fn new_late(config: &Config) -> Self {
        Self::with_start(config, true)
    }

    fn with_start(config: &Config, late: bool) -> Self {
        Connection {
            limits: Limits {
                body_preview: config.body_preview,
                max_head: config.max_head.max(1),
                wait_bytes: config.reorder_window,
                max_pending: config.max_pending_requests,
            },
            max_buffered: config.max_buffered,
            detect_limit: config.detect_limit,
            streams: [
                DataStream::new(config.reorder_window),
                DataStream::new(config.reorder_window),
            ],
            proto: ProtoState::Detecting,
            late,
            first: None,
            opaque: 0,
            retired: None,
            closed: false,
            h2: Http2Config {
                body_preview: config.body_preview,
                ..Http2Config::default()
            },
            last_ts: 0,
        }
    }

    /// Captured bytes of direction `dir` starting at stream position `pos`
    /// (the count of bytes that went before them in that direction), seen at
    /// `ts_ns`. Exchanges completed by them are appended to `out`.
    pub fn data(
        &mut self,
        dir: Direction,
        pos: u64,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<Box<Exchange>>,
    ) {
        if self.closed {
            return;
        }
        self.last_ts = self.last_ts.max(ts_ns);
        self.first.get_or_insert(dir);
        let d = dir.index();
        let idle = self.streams[d].is_idle_at(pos);
        match &mut self.proto {
            ProtoState::Http1(h) if idle => {
                // Fast path: parse in place, copy only an unfinished tail.
                let n = h.drive_slice(dir, bytes, ts_ns, out);
                self.streams[d].parsed_in_place(pos, ts_ns, bytes, n);
                let other = &self.streams[1 - d];
                if n == bytes.len()
                    && other.buffered() == 0
                    && !other.gap_follows()
                    && h.switch().is_none()
                    && h.seen_message()
                {
                    return;
                }
            }
            // The same for HTTP/2 when the other direction holds nothing
            // (else it goes first, as `process` would take it).
            ProtoState::Http2(h)
                if idle
                    && self.streams[1 - d].buffered() == 0
                    && !self.streams[1 - d].gap_follows() =>
            {
                let start = out.len();
                let n = h.feed(dir, bytes, ts_ns, out);
                mark_upgraded(&mut out[start..]);
                self.streams[d].parsed_in_place(pos, ts_ns, bytes, n);
                if n == bytes.len() {
                    return;
                }
            }
            _ => self.streams[d].push(pos, ts_ns, bytes),
        }
        self.after_input(dir, out);
    }

    /// Bytes `[pos, pos + len)` of direction `dir` existed but were not
    /// captured (e.g. the syscall moved more than the capture cap).
    pub fn lost(&mut self, dir: Direction, pos: u64, len: u64, out: &mut Vec<Box<Exchange>>) {
        if self.closed {
            return;
        }
        self.first.get_or_insert(dir);
        self.streams[dir.index()].mark_lost(pos, len);
        self.after_input(dir, out);
    }

    /// Stops waiting: unknown holes are skipped, held responses released.
    /// Memory held for work in flight is released if nothing is in flight,
    /// so an idle connection costs little (call it on idle connections).
    pub fn flush(&mut self, out: &mut Vec<Box<Exchange>>) {
        if self.closed {
            return;
        }
        for s in &mut self.streams {
            s.flush();
        }
        self.process(true, false, out);
        for s in &mut self.streams {
            s.release_if_empty();
        }
        match &mut self.proto {
            ProtoState::Http1(h) => h.release_if_idle(),
            ProtoState::Http2(h) => h.release_spare(),
            ProtoState::Detecting | ProtoState::NotHttp => {}
        }
    }

    /// The connection closed (or capture ended) at `ts_ns`: everything left
    /// is parsed, messages in progress end (a close-delimited body ends
    /// normally; others are flagged incomplete), and requests without a
    /// response are emitted flagged [`crate::record::Flags::INCOMPLETE`].
    pub fn close(&mut self, ts_ns: u64, out: &mut Vec<Box<Exchange>>) {
        if self.closed {
            return;
        }
        self.last_ts = self.last_ts.max(ts_ns);
        for s in &mut self.streams {
            s.flush();
        }
        self.process(true, true, out);
        if let ProtoState::Http1(h) = &mut self.proto {
            h.close(out);
        }
        self.closed = true;
    }

    /// What the connection carries, as far as known.
    pub fn detected(&self) -> Detected {
        match self.proto {
            ProtoState::Detecting => Detected::Unknown,
            ProtoState::Http1(_) => Detected::Http1,
            ProtoState::Http2(_) => Detected::Http2,
            ProtoState::NotHttp => Detected::NotHttp,
        }
    }

    /// The traced process's end, once requests were seen in either direction.
    pub fn side(&self) -> Option<Side> {
        let req_dir = match &self.proto {
            ProtoState::Http1(h) => h.request_direction(),
            ProtoState::Http2(h) => h.client_direction(),
            _ => None,
        }?;
        Some(match req_dir {
            Direction::Egress => Side::Client,
            Direction::Ingress => Side::Server,
        })
    }

    /// Bytes held per direction ([`Direction::index`]): unconsumed head plus
    /// out-of-order chunks. Bounded by [`Config::max_buffered`] plus one chunk.
    pub fn buffered(&self) -> [usize; 2] {
        [self.streams[0].buffered(), self.streams[1].buffered()]
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for (i, st) in self.streams.iter().enumerate() {
            let ss = st.stats();
            s.bytes[i] = ss.bytes;
            s.duplicate_bytes += ss.duplicate;
            s.lost_bytes += ss.lost();
            s.lost_known_bytes += ss.lost_known;
        }
        s.opaque_bytes = self.opaque;
        let http1 = match &self.proto {
            ProtoState::Http1(h) => Some(h.stats()),
            _ => self.retired,
        };
        if let Some(hs) = http1 {
            if let ProtoState::Http1(_) = self.proto {
                s.opaque_bytes += hs.opaque;
                s.resync_skipped_bytes = hs.resync_skipped;
            }
            s.heads = hs.heads;
            s.exchanges = hs.stitch.exchanges;
            s.invalid = hs.stitch.invalid;
            s.incomplete = hs.stitch.incomplete;
            s.no_request = hs.stitch.no_request;
            s.evicted = hs.stitch.evicted;
        }
        if let ProtoState::Http2(h) = &self.proto {
            let c = h.counters();
            s.exchanges += c.streams_closed;
            s.resync_skipped_bytes += c.resync_skipped;
            s.evicted += c.streams_evicted;
            s.invalid += c.malformed_frames + c.hpack_errors;
        }
        s
    }

    fn after_input(&mut self, dir: Direction, out: &mut Vec<Box<Exchange>>) {
        self.process(false, false, out);
        let s = &mut self.streams[dir.index()];
        if s.buffered() > self.max_buffered {
            // Backstop: stop waiting for anything in this direction.
            s.flush();
            self.process(true, false, out);
        }
    }

    fn process(&mut self, flushing: bool, closing: bool, out: &mut Vec<Box<Exchange>>) {
        loop {
            match &mut self.proto {
                ProtoState::Detecting => {
                    if !self.detect(closing) {
                        return;
                    }
                }
                ProtoState::Http1(h) => {
                    let first = h
                        .request_direction()
                        .or(self.first)
                        .unwrap_or(Direction::Egress);
                    loop {
                        let mut moved = false;
                        for dir in [first, first.opposite()] {
                            let s = &mut self.streams[dir.index()];
                            moved |= h.drive(dir, s, flushing, closing, out);
                        }
                        if !moved {
                            break;
                        }
                    }
                    let st = h.stats();
                    let next = if h.switch() == Some(Switch::H2c) {
                        let client = h.request_direction().unwrap_or(Direction::Egress);
                        let up = take_upgrade(out, client);
                        ProtoState::Http2(Box::new(Http2Conn::new(
                            &self.h2,
                            Start::Upgrade(Box::new(up)),
                        )))
                    } else if !h.seen_message() && st.resync_skipped > self.detect_limit as u64 {
                        ProtoState::NotHttp
                    } else {
                        return;
                    };
                    // HTTP/1 is done with this connection; no exchange is in
                    // flight. Keep its byte counts.
                    self.opaque += st.opaque + st.resync_skipped;
                    self.retired = Some(st);
                    self.proto = next;
                }
                ProtoState::Http2(h) => {
                    let start = out.len();
                    let first = h
                        .client_direction()
                        .or(self.first)
                        .unwrap_or(Direction::Egress);
                    loop {
                        let mut moved = false;
                        for dir in [first, first.opposite()] {
                            moved |= h.drive(dir, &mut self.streams[dir.index()], out);
                        }
                        if !moved {
                            break;
                        }
                    }
                    if closing {
                        h.close(self.last_ts, out);
                    }
                    mark_upgraded(&mut out[start..]);
                    return;
                }
                ProtoState::NotHttp => {
                    for s in &mut self.streams {
                        loop {
                            let n = s.head().bytes.len();
                            if n > 0 {
                                self.opaque += n as u64;
                                s.consume(n);
                            } else if s.take_gap().is_none() {
                                break;
                            }
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Looks at the first bytes; returns true once a protocol is chosen.
    fn detect(&mut self, closing: bool) -> bool {
        let mut verdicts = [None; 2];
        for (i, s) in self.streams.iter().enumerate() {
            let head = s.head().bytes;
            if head.is_empty() {
                if s.gap_follows() {
                    // The very first bytes were lost: only a resync can tell.
                    verdicts[i] = Some(Detected::Http1);
                }
                continue;
            }
            let n = head.len().min(H2_PREFACE.len());
            if s.read_pos() == 0 && head[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    verdicts[i] = Some(Detected::Http2);
                } else if closing || s.gap_follows() {
                    verdicts[i] = Some(Detected::Http1);
                }
                continue;
            }
            verdicts[i] = match crate::http1::head::looks_like_http1(head) {
                Some(true) => Some(Detected::Http1),
                Some(false) if self.late || s.read_pos() != 0 => {
                    // Joined mid-way: HTTP/2 frames, or HTTP/1 mid-message
                    // (which resyncs at the next start line).
                    match crate::http2::starts_with_frames(head) {
                        Some(true) => Some(Detected::Http2),
                        None if !(closing || s.gap_follows()) => None,
                        _ => Some(Detected::Http1),
                    }
                }
                // A server may speak first in HTTP/2: its SETTINGS can
                // arrive before the client's preface. Let the other
                // direction decide.
                Some(false)
                    if crate::http2::starts_with_frames(head) != Some(false) && !closing =>
                {
                    None
                }
                Some(false) => Some(Detected::NotHttp),
                None if closing || s.gap_follows() => Some(Detected::Http1),
                None => None,
            };
        }
        let pick = |want: Detected| verdicts.contains(&Some(want));
        self.proto = if pick(Detected::Http2) {
            let preface = self
                .streams
                .iter()
                .any(|s| s.read_pos() == 0 && s.head().bytes.starts_with(H2_PREFACE));
            let start = if preface && !self.late {
                Start::Preface
            } else {
                Start::LateJoin
            };
            ProtoState::Http2(Box::new(Http2Conn::new(&self.h2, start)))
        } else if pick(Detected::NotHttp) {
            ProtoState::NotHttp
        } else if pick(Detected::Http1) {
            ProtoState::Http1(Box::new(Http1::new(self.limits, self.late)))
        } else {
            return false;
        };
        true
    }
}

/// Takes the h2c upgrade exchange HTTP/1 just emitted out of `out`: its
/// request becomes HTTP/2 stream 1, reported once, by HTTP/2.
fn take_upgrade(out: &mut Vec<Box<Exchange>>, client: Direction) -> Upgrade {
    let found = out
        .iter()
        .rposition(|e| e.proto == Proto::Http1 && e.flags.contains(Flags::UPGRADE));
    match found.map(|i| out.remove(i)) {
        Some(ex) => {
            let settings = ex
                .request
                .headers
                .get(b"http2-settings")
                .and_then(decode_http2_settings);
            Upgrade {
                client,
                method: ex.method,
                path: ex.path,
                authority: ex.authority,
                request: ex.request,
                settings,
            }
        }
        // HTTP/1 always emits the upgrade before switching; should it not,
        // stream 1 still gets its response, with an unknown request.
        None => Upgrade {
            client,
            method: String::new(),
            path: String::new(),
            authority: None,
            request: Default::default(),
            settings: None,
        },
    }
}

/// Stream 1 of an h2c upgrade answered `101 Switching Protocols` first.
fn mark_upgraded(exchanges: &mut [Box<Exchange>]) {
    for e in exchanges {
        if e.proto == Proto::Http2
            && e.stream_id == Some(1)
            && e.flags.contains(Flags::UPGRADE)
            && !e.interim.contains(&101)
        {
            e.interim.insert(0, 101);
        }
    }
}
