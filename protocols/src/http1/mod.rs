//! HTTP/1.0 and HTTP/1.1 (RFC 9112) over the two byte streams of one
//! connection: heads ([`head`]), body framing ([`body`]), pairing
//! ([`stitch`]). Fed by [`crate::conn::Connection`].
//!
//! Each direction has its own parser state; the direction that carries
//! requests is learnt from the first start line seen (a request line or a
//! status line). Responses need their request (HEAD, CONNECT, 1xx/101), so
//! the connection drives the request direction first; a response whose
//! request has not been parsed yet is held (not consumed) until it arrives,
//! more than the reorder window piles up behind it, or the connection is
//! flushed.
//!
//! Known limits, by design:
//! - A loss that swallows a chunk boundary (chunked body) or a message
//!   boundary can't be crossed in sync: the direction resyncs at the next
//!   start line, and pairing after it is by timestamps (see [`stitch`]),
//!   exact for one request in flight at a time, a best guess when several
//!   pipelined requests straddle the loss.
//! - Resync trusts a line that looks like a start line (known method or
//!   `HTTP/1.x NNN`); a body that contains one can fool it.
//! - The first bytes of a direction must be a start line for the roles to be
//!   learnt; a connection joined inside a body resyncs first.

pub mod body;
pub mod head;
pub mod stitch;

use body::{Body, Chunk, GapFit, Sink, Step};
use head::{Declared, HeadError, HeadOutcome, UpgradeTo, Want};
use stitch::{MethodKind, Pick, Resp, Stitcher};

use crate::record::{Direction, Exchange, Flags, Headers, Message, Proto, Side};
use crate::stream::{DataStream, Gap, Head};

/// Limits the HTTP/1 parser works with (taken from [`crate::conn::Config`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub body_preview: usize,
    pub max_head: usize,
    pub wait_bytes: usize,
    pub max_pending: usize,
}

/// What the connection should do after driving a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// A 101 to `h2c` (RFC 7540 §3.2; RFC 9113 §3.1 deprecates the upgrade
    /// but peers still use it): the rest of both streams is HTTP/2, starting
    /// at their current read positions.
    H2c,
}

/// Counters of the HTTP/1 parser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http1Stats {
    /// Captured bytes passed over while looking for a message boundary.
    pub resync_skipped: u64,
    /// Bytes of tunnels and upgraded protocols, counted but not parsed.
    pub opaque: u64,
    /// Heads parsed (requests and responses, interim ones included).
    pub heads: u64,
    pub stitch: stitch::StitchStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Unknown,
    Requests,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a message boundary: a start line is expected.
    Start,
    /// Boundaries lost: looking for a start line.
    Resync,
    /// Inside the body of the current message.
    Body(Body),
    /// (Requests) after an Upgrade or CONNECT request: waiting for its
    /// response before reading on.
    AwaitSwitch,
    /// A tunnel or a protocol we don't parse: bytes are counted.
    Opaque,
    /// Bytes belong to another parser (h2c): not read here.
    Handoff,
}

struct Dir {
    role: Role,
    state: State,
    /// Flags the next message in this direction starts with.
    next_flags: Flags,
    /// No head parsed in this direction yet: bad bytes mean we joined late,
    /// not that a peer sent garbage.
    fresh: bool,
    /// Sequence number of the exchange the current message belongs to.
    cur: Option<u64>,
    /// A gap hit the current body: later bytes are not part of its preview.
    preview_open: bool,
}

impl Dir {
    fn new() -> Self {
        Dir {
            role: Role::Unknown,
            state: State::Start,
            next_flags: Flags::NONE,
            fresh: true,
            cur: None,
            preview_open: true,
        }
    }
}

/// How one step went: bytes consumed, and whether anything changed.
struct Progress {
    consumed: usize,
    changed: bool,
}

impl Progress {
    const STUCK: Progress = Progress {
        consumed: 0,
        changed: false,
    };
    fn used(n: usize) -> Progress {
        Progress {
            consumed: n,
            changed: true,
        }
    }
}

/// The HTTP/1 state of one connection.
pub struct Http1 {
    limits: Limits,
    dirs: [Dir; 2],
    req_dir: Option<Direction>,
    stitch: Stitcher,
    switch: Option<Switch>,
    /// The gap that follows the bytes of the current step, if any (set per
    /// step): flags for a message it cuts short.
    gap_next: Option<Gap>,
    /// Header fields of the head being parsed; swapped into the record
    /// (whose empty list comes back here), so no head allocates.
    fields: Headers,
    stats: Http1Stats,
    /// Joined mid-way: a direction's first bytes need not start a message.
    late: bool,
}

impl Http1 {
    /// `late`: the connection was joined mid-way; first exchanges are
    /// flagged [`Flags::LATE_JOIN`].
    pub fn new(limits: Limits, late: bool) -> Self {
        let mut dirs = [Dir::new(), Dir::new()];
        let mut stitch = Stitcher::new(limits.max_pending);
        if late {
            for d in &mut dirs {
                d.next_flags = Flags::LATE_JOIN;
            }
            // Requests may have been missed before we joined (a read in
            // flight when capture began): a response that began before the
            // first request we saw answers one of those, and is reported
            // without a request rather than paired with the wrong one.
            stitch.push_marker();
        }
        Http1 {
            limits,
            dirs,
            req_dir: None,
            stitch,
            switch: None,
            gap_next: None,
            fields: Headers::new(),
            stats: Http1Stats::default(),
            late,
        }
    }

    pub fn stats(&self) -> Http1Stats {
        let mut s = self.stats;
        s.stitch = self.stitch.stats;
        s
    }

    /// Frees the exchange queue's capacity when nothing is queued, and the
    /// header list kept for the next head.
    pub fn release_if_idle(&mut self) {
        self.stitch.release_if_empty();
        self.fields = Headers::new();
    }

    /// The direction carrying requests, once known.
    pub fn request_direction(&self) -> Option<Direction> {
        self.req_dir
    }

    /// Whether a message was read, or at least its start line (a head too
    /// large or malformed, reported invalid): the connection is HTTP.
    pub fn seen_message(&self) -> bool {
        self.stats.heads > 0 || self.req_dir.is_some()
    }

    /// A protocol switch that another parser must take over, if one happened.
    pub fn switch(&self) -> Option<Switch> {
        self.switch
    }

    /// Parses what `stream` (direction `dir`) holds. `flushing`: nothing more
    /// is worth waiting for (don't hold responses). `closing`: no more bytes
    /// will come at all. Returns true if anything moved.
    pub fn drive(
        &mut self,
        dir: Direction,
        stream: &mut DataStream,
        flushing: bool,
        closing: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> bool {
        let d = dir.index();
        let mut moved = false;
        loop {
            if self.dirs[d].state == State::Handoff {
                break;
            }
            let head = stream.head();
            if head.bytes.is_empty() {
                match stream.take_gap() {
                    Some(gap) => {
                        self.on_gap(dir, gap, out);
                        moved = true;
                        continue;
                    }
                    None => break,
                }
            }
            self.gap_next = stream.next_gap();
            let eof = self.gap_next.is_some() || closing;
            let may_wait = !flushing && stream.buffered() <= self.limits.wait_bytes;
            let p = self.step(dir, head, eof, may_wait, out);
            if p.consumed > 0 {
                stream.consume(p.consumed);
            }
            if !p.changed {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Parses a chunk in place: the fast path for a chunk that continues its
    /// direction with nothing held before it. Returns how many bytes were
    /// consumed; the caller keeps the rest in the stream. Inlined into its
    /// one caller (`Connection::data`), which the compiler doesn't do by
    /// itself: it runs once per captured chunk and is little more than its
    /// loop, so a call of its own is a good part of its cost.
    #[inline(always)]
    pub fn drive_slice(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Box<Exchange>>,
    ) -> usize {
        let d = dir.index();
        let mut off = 0;
        self.gap_next = None;
        while off < bytes.len() && self.dirs[d].state != State::Handoff {
            let head = Head::single(&bytes[off..], ts_ns);
            let may_wait = bytes.len() - off <= self.limits.wait_bytes;
            let p = self.step(dir, head, false, may_wait, out);
            off += p.consumed;
            if !p.changed {
                break;
            }
        }
        off
    }

    /// The connection closed: everything in progress is finished, queued
    /// requests without responses come out flagged [`Flags::INCOMPLETE`].
    pub fn close(&mut self, out: &mut Vec<Box<Exchange>>) {
        for d in 0..2 {
            let state = self.dirs[d].state;
            if let State::Body(body) = state {
                let complete = body == Body::Close;
                self.finish_message(d, !complete, out);
            } else if let Some(seq) = self.dirs[d].cur.take()
                && let Some(e) = self.stitch.get_mut(seq)
            {
                // A response that only had interim heads so far.
                e.ex.flags |= Flags::INCOMPLETE;
                e.resp = Resp::Done;
            }
        }
        self.stitch.drain(out);
    }

    fn step(
        &mut self,
        dir: Direction,
        head: Head<'_>,
        eof: bool,
        may_wait: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> Progress {
        let d = dir.index();
        match self.dirs[d].state {
            State::Handoff => Progress::STUCK,
            State::Opaque => {
                self.stats.opaque += head.bytes.len() as u64;
                Progress::used(head.bytes.len())
            }
            State::AwaitSwitch => {
                if may_wait {
                    Progress::STUCK
                } else {
                    // The answer never came: read on as HTTP/1.
                    self.dirs[d].state = State::Start;
                    Progress {
                        consumed: 0,
                        changed: true,
                    }
                }
            }
            State::Resync => self.resync(d, head, eof),
            State::Body(body) => self.body(d, body, head, eof, out),
            State::Start => {
                if self.dirs[d].fresh
                    && !self.in_sync(d)
                    && head::looks_like_http1(head.bytes) == Some(false)
                {
                    // Not a message start: we joined mid-message.
                    return self.bad_head(d);
                }
                match self.dirs[d].role {
                    Role::Requests => self.request_head(dir, head, eof, out),
                    Role::Responses => self.response_head(dir, head, eof, may_wait, out),
                    Role::Unknown => self.first_head(dir, head, eof),
                }
            }
        }
    }

    /// The first head of a connection decides which direction carries
    /// requests; only a head that parses does.
    fn first_head(&mut self, dir: Direction, head: Head<'_>, eof: bool) -> Progress {
        let d = dir.index();
        let (is_status, outcome) = match head::starts_with_status(head.bytes) {
            None if !eof => return Progress::STUCK,
            None => return self.damaged_tail(d, head),
            Some(true) => (
                true,
                head::parse_response(head.bytes, self.limits.max_head, &mut self.fields)
                    .map(|_| ()),
            ),
            Some(false) => (
                false,
                head::parse_request(head.bytes, self.limits.max_head, &mut self.fields).map(|_| ()),
            ),
        };
        match outcome {
            HeadOutcome::NeedMore if !eof => Progress::STUCK,
            HeadOutcome::NeedMore => self.damaged_tail(d, head),
            // Seen from its first byte, a connection's first message starts
            // here: a start line that reads as one is a peer's malformed
            // (or oversized) message, reported as such by the head parser
            // of its role.
            HeadOutcome::Invalid(_)
                if self.in_sync(d) && head::looks_like_http1(head.bytes) == Some(true) =>
            {
                self.set_roles(if is_status { dir.opposite() } else { dir });
                Progress {
                    consumed: 0,
                    changed: true,
                }
            }
            HeadOutcome::Invalid(_) => self.bad_head(d),
            HeadOutcome::Done { .. } => {
                self.set_roles(if is_status { dir.opposite() } else { dir });
                Progress {
                    consumed: 0,
                    changed: true,
                }
            }
        }
    }

    fn set_roles(&mut self, req_dir: Direction) {
        self.req_dir = Some(req_dir);
        self.dirs[req_dir.index()].role = Role::Requests;
        self.dirs[req_dir.opposite().index()].role = Role::Responses;
    }

    fn side(&self) -> Side {
        match self.req_dir {
            Some(Direction::Ingress) => Side::Server,
            _ => Side::Client,
        }
    }

    /// Bytes before a gap (or the close) that can't complete a head: dropped
    /// and counted; the direction resyncs after the gap.
    fn damaged_tail(&mut self, d: usize, head: Head<'_>) -> Progress {
        self.stats.resync_skipped += head.bytes.len() as u64;
        self.enter_resync(d);
        Progress::used(head.bytes.len())
    }

    fn enter_resync(&mut self, d: usize) {
        let late = self.late;
        let dir = &mut self.dirs[d];
        dir.state = State::Resync;
        dir.next_flags |= Flags::RESYNCED;
        if dir.fresh && late {
            dir.next_flags |= Flags::LATE_JOIN;
        }
    }

    fn resync(&mut self, d: usize, head: Head<'_>, eof: bool) -> Progress {
        let want = match self.dirs[d].role {
            Role::Requests => Want::Request,
            Role::Responses => Want::Response,
            Role::Unknown => Want::Any,
        };
        match head::find_start(head.bytes, want, self.limits.max_head) {
            head::Search::Found(at) => {
                self.stats.resync_skipped += at as u64;
                self.dirs[d].state = State::Start;
                Progress::used(at)
            }
            head::Search::NotFound { keep } => {
                let n = if eof { head.bytes.len() } else { keep };
                self.stats.resync_skipped += n as u64;
                Progress {
                    consumed: n,
                    changed: n > 0,
                }
            }
        }
    }

    /// A head failed to parse. At the start of a direction or while
    /// resyncing it just wasn't a boundary; in sync it is a peer's malformed
    /// message, recorded as invalid (the caller does that) before resyncing.
    /// Skips one byte so the search moves on.
    fn bad_head(&mut self, d: usize) -> Progress {
        self.stats.resync_skipped += 1;
        self.enter_resync(d);
        Progress::used(1)
    }

    /// Whether the next bytes of direction `d` start a message: after one
    /// that parsed, or at the very start of a connection seen from its
    /// start; not while resyncing.
    fn in_sync(&self, d: usize) -> bool {
        let dir = &self.dirs[d];
        (!dir.fresh || !self.late) && !dir.next_flags.contains(Flags::RESYNCED)
    }

    fn request_head(
        &mut self,
        dir: Direction,
        head: Head<'_>,
        eof: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> Progress {
        let d = dir.index();
        let parsed = head::parse_request(head.bytes, self.limits.max_head, &mut self.fields);
        // Matched by reference: the head is read where it was returned, not
        // copied out field by field first.
        let (h, len) = match &parsed {
            HeadOutcome::NeedMore if !eof => return Progress::STUCK,
            HeadOutcome::NeedMore => {
                // Cut by a gap or the close: report what the request line
                // says, so that its response still pairs with it.
                if let Some((method, target)) = head::partial_request_line(head.bytes) {
                    let mut ex = Exchange::new(Proto::Http1, self.side());
                    ex.flags = self.take_flags(d) | Flags::INCOMPLETE;
                    ex.flags |= self.gap_flags();
                    ex.method.push_str(method);
                    ex.path.push_str(target);
                    ex.request.first_ns = head.ts_at(0);
                    ex.request.last_ns = head.ts_at(head.bytes.len() - 1);
                    ex.request.wire_len = head.bytes.len() as u64;
                    self.dirs[d].fresh = false;
                    let seq = self
                        .stitch
                        .push_request(ex, MethodKind::Other, false, false, out);
                    if let Some(e) = self.stitch.get_mut(seq) {
                        e.req_done = true;
                    }
                }
                return self.damaged_tail(d, head);
            }
            HeadOutcome::Invalid(err) => {
                if self.in_sync(d) {
                    // A malformed request: queue it so that the response
                    // (often a 400) pairs with it, not with the next one.
                    let mut ex = Exchange::new(Proto::Http1, self.side());
                    ex.flags = Flags::INVALID | self.take_flags(d);
                    if *err == HeadError::Overflow {
                        ex.flags |= Flags::HEADERS_TRUNCATED;
                    }
                    // The start line may still read (a head too large, a
                    // bad header field): keep what it says.
                    if let Some((method, target)) = head::partial_request_line(head.bytes) {
                        ex.method.push_str(method);
                        ex.path.push_str(target);
                    }
                    ex.request.first_ns = head.ts_at(0);
                    ex.request.last_ns = head.ts_at(0);
                    self.dirs[d].fresh = false;
                    let seq = self
                        .stitch
                        .push_request(ex, MethodKind::Other, false, false, out);
                    if let Some(e) = self.stitch.get_mut(seq) {
                        e.req_done = true;
                    }
                }
                return self.bad_head(d);
            }
            HeadOutcome::Done { head: h, len } => (h, *len),
        };
        self.stats.heads += 1;
        let first_ns = head.ts_at(0);
        let last_ns = head.ts_at(len - 1);
        let mut flags = self.take_flags(d);
        self.dirs[d].fresh = false;
        let method = match h.method {
            "HEAD" => MethodKind::Head,
            "CONNECT" => MethodKind::Connect,
            _ => MethodKind::Other,
        };
        let wants_switch = method == MethodKind::Connect || h.framing.upgrade.is_some();
        let framing = h.framing;
        let mut body = match framing.declared {
            Declared::None | Declared::Length(0) => None,
            Declared::Length(n) => Some(Body::Length(n)),
            Declared::Chunked => Some(Body::Chunked(Chunk::Size)),
            // RFC 9112 §6.3 items 4 and 5: the length can't be known.
            Declared::OtherEncoding | Declared::BadLength => {
                flags |= Flags::INVALID;
                None
            }
        };
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        if h.minor == 0 && framing.declared == Declared::Chunked {
            flags |= Flags::INVALID;
            body = None;
        }
        if framing.te_and_cl {
            // §6.3 item 3: TE wins, but the pair is a smuggling signal.
            flags |= Flags::INVALID;
        }
        let lost_sync = body.is_none() && flags.contains(Flags::INVALID) && !framing.te_and_cl;
        let preview = match body {
            Some(Body::Length(n)) => self.limits.body_preview.min(n as usize),
            _ => 0,
        };
        let mut ex = Exchange::new(Proto::Http1, self.side());
        ex.flags = flags;
        // A new record is empty: strings and lists are appended to in the
        // buffers a recycled one brings.
        ex.method.push_str(h.method);
        ex.path.push_str(h.target);
        if let Some(host) = h.host {
            ex.set_authority(host);
        }
        ex.version = version(h.minor);
        std::mem::swap(&mut ex.request.headers, &mut self.fields);
        ex.request.first_ns = first_ns;
        ex.request.last_ns = last_ns;
        ex.request.wire_len = len as u64;
        reserve_preview(&mut ex.request.body_preview, preview);
        let seq = self
            .stitch
            .push_request(ex, method, wants_switch, framing.expect_continue, out);
        let dirst = &mut self.dirs[d];
        dirst.cur = Some(seq);
        dirst.preview_open = true;
        match body {
            Some(b) => dirst.state = State::Body(b),
            None => {
                self.finish_message(d, false, out);
                if lost_sync {
                    self.enter_resync(d);
                }
            }
        }
        Progress::used(len)
    }

    fn response_head(
        &mut self,
        dir: Direction,
        head: Head<'_>,
        eof: bool,
        may_wait: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> Progress {
        let d = dir.index();
        let parsed = head::parse_response(head.bytes, self.limits.max_head, &mut self.fields);
        let first_ns = head.ts_at(0);
        // By reference, as in `request_head`.
        let (h, len) = match &parsed {
            HeadOutcome::NeedMore if !eof => return Progress::STUCK,
            HeadOutcome::NeedMore => {
                // Cut by a gap or the close: keep the status if the status
                // line got through, on the exchange it answers.
                let lost = Flags::INCOMPLETE | self.gap_flags();
                if self.dirs[d].cur.is_none()
                    && let Some((code, reason)) = head::partial_status_line(head.bytes)
                {
                    let seq = match self.stitch.pick(first_ns, false) {
                        Pick::Entry(seq) => seq,
                        Pick::Wait | Pick::NoRequest { .. } => self
                            .stitch
                            .push_no_request(Exchange::new(Proto::Http1, self.side())),
                    };
                    let flags = self.take_flags(d);
                    if let Some(e) = self.stitch.get_mut(seq) {
                        e.ex.flags |= flags;
                        e.ex.status = Some(code);
                        e.ex.set_reason(reason);
                        let msg = e.ex.response_mut();
                        msg.first_ns = first_ns;
                        msg.last_ns = head.ts_at(head.bytes.len() - 1);
                        msg.wire_len = head.bytes.len() as u64;
                    }
                    self.dirs[d].fresh = false;
                    self.dirs[d].cur = Some(seq);
                }
                self.abort_response(d, lost, out);
                return self.damaged_tail(d, head);
            }
            HeadOutcome::Invalid(err) => {
                if self.in_sync(d) {
                    // The answer to the next request is malformed.
                    let seq = match self.dirs[d].cur {
                        Some(seq) => Some(seq),
                        None => match self.stitch.pick(first_ns, false) {
                            Pick::Entry(seq) => Some(seq),
                            _ => None,
                        },
                    };
                    if let Some(seq) = seq {
                        self.dirs[d].cur = Some(seq);
                        self.dirs[d].fresh = false;
                        if let Some(e) = self.stitch.get_mut(seq) {
                            // A response came, unreadable.
                            let msg = e.ex.response_mut();
                            msg.first_ns = first_ns;
                            msg.last_ns = first_ns;
                        }
                        let mut f = Flags::INVALID;
                        if *err == HeadError::Overflow {
                            f |= Flags::HEADERS_TRUNCATED;
                        }
                        self.abort_response(d, f, out);
                    }
                }
                return self.bad_head(d);
            }
            HeadOutcome::Done { head: h, len } => (h, *len),
        };
        let last_ns = head.ts_at(len - 1);
        // The exchange this response belongs to (kept across interim heads).
        let seq = match self.dirs[d].cur {
            Some(seq) => seq,
            None => match self.stitch.pick(first_ns, may_wait) {
                Pick::Wait => return Progress::STUCK,
                Pick::Entry(seq) => seq,
                Pick::NoRequest { gap } => {
                    let mut ex = Exchange::new(Proto::Http1, self.side());
                    ex.version = version(h.minor);
                    if gap {
                        ex.flags |= Flags::GAP;
                    }
                    self.stitch.push_no_request(ex)
                }
            },
        };
        self.stats.heads += 1;
        let flags = self.take_flags(d);
        self.dirs[d].fresh = false;
        self.dirs[d].cur = Some(seq);
        self.dirs[d].preview_open = true;
        let preview_cap = self.limits.body_preview;
        let Some(e) = self.stitch.get_mut(seq) else {
            // Evicted meanwhile: nothing to attach to.
            self.dirs[d].cur = None;
            return Progress::used(len);
        };
        e.ex.flags |= flags;
        let first_head = e.ex.response.is_none();
        let msg = e.ex.response_mut();
        if first_head {
            msg.first_ns = first_ns;
        }
        msg.wire_len += len as u64;
        msg.last_ns = last_ns;
        let code = h.code;
        if (100..200).contains(&code) && code != 101 {
            // Interim (RFC 9110 §15.2): the final response is still to come.
            e.ex.interim.push(code);
            return Progress::used(len);
        }
        // The record's empty list becomes the next head's (interim heads'
        // fields are not kept).
        std::mem::swap(&mut msg.headers, &mut self.fields);
        e.ex.status = Some(code);
        e.ex.set_reason(h.reason);
        let framing = h.framing;
        let method = e.method;
        let wants_switch = e.wants_switch;
        // A final answer before a 100-continue body started: the client may
        // never send it (RFC 9110 §10.1.1).
        let abandon_body = e.expect_continue && !e.req_done && e.ex.request.body_len == 0;
        // RFC 9112 §6.3: which responses have a body, and how long.
        let mut switch = None;
        let body = if code == 101 {
            e.ex.flags |= Flags::UPGRADE;
            switch = Some(framing.upgrade.unwrap_or(UpgradeTo::Other));
            None
        } else if method == MethodKind::Connect && (200..300).contains(&code) {
            e.ex.flags |= Flags::TUNNEL;
            switch = Some(UpgradeTo::Other);
            None
        } else if method == MethodKind::Head || code == 204 || code == 304 || code < 200 {
            None
        } else {
            match framing.declared {
                Declared::Chunked => Some(Body::Chunked(Chunk::Size)),
                Declared::OtherEncoding | Declared::None => Some(Body::Close),
                Declared::Length(0) => None,
                Declared::Length(n) => Some(Body::Length(n)),
                Declared::BadLength => {
                    e.ex.flags |= Flags::INVALID;
                    None
                }
            }
        };
        if framing.te_and_cl {
            e.ex.flags |= Flags::INVALID;
        }
        let lost_sync =
            framing.declared == Declared::BadLength && body.is_none() && switch.is_none();
        if let Some(Body::Length(n)) = body
            && let Some(msg) = e.ex.response.as_mut()
        {
            reserve_preview(&mut msg.body_preview, preview_cap.min(n as usize));
        }
        if abandon_body {
            let r = self.req_index(d);
            if self.dirs[r].cur == Some(seq) && matches!(self.dirs[r].state, State::Body(_)) {
                self.finish_message(r, false, out);
                // If the body comes anyway, the search skips it (and counts
                // it); if not, the next request is found at once.
                self.dirs[r].state = State::Resync;
            }
        }
        if wants_switch && switch.is_none() {
            // Not switched after all: the request side reads on as HTTP/1.
            let r = self.req_index(d);
            if self.dirs[r].state == State::AwaitSwitch {
                self.dirs[r].state = State::Start;
            }
        }
        match (switch, body) {
            (Some(to), _) => {
                self.finish_message(d, false, out);
                let (r, new_state) = (
                    self.req_index(d),
                    match to {
                        // HTTP/2 takes both streams from here (see conn.rs).
                        UpgradeTo::H2c => {
                            self.switch = Some(Switch::H2c);
                            State::Handoff
                        }
                        UpgradeTo::WebSocket | UpgradeTo::Other => State::Opaque,
                    },
                );
                if let State::Body(_) = self.dirs[r].state {
                    self.finish_message(r, true, out);
                }
                self.dirs[r].state = new_state;
                self.dirs[d].state = new_state;
            }
            (None, Some(b)) => self.dirs[d].state = State::Body(b),
            (None, None) => {
                self.finish_message(d, false, out);
                if lost_sync {
                    self.enter_resync(d);
                }
            }
        }
        Progress::used(len)
    }

    fn req_index(&self, resp_d: usize) -> usize {
        1 - resp_d
    }

    /// Ends the response in progress in direction `d` (if any) with `flags`.
    fn abort_response(&mut self, d: usize, flags: Flags, out: &mut Vec<Box<Exchange>>) {
        if let Some(seq) = self.dirs[d].cur.take() {
            if let Some(e) = self.stitch.get_mut(seq) {
                e.ex.flags |= flags;
                e.resp = Resp::Done;
            }
            self.stitch.emit_ready(out);
        }
    }

    /// GAP (and TRUNCATED for a known loss) if a gap cuts the current step.
    fn gap_flags(&self) -> Flags {
        match self.gap_next {
            Some(g) if g.known => Flags::GAP | Flags::TRUNCATED,
            Some(_) => Flags::GAP,
            None => Flags::NONE,
        }
    }

    fn take_flags(&mut self, d: usize) -> Flags {
        std::mem::take(&mut self.dirs[d].next_flags)
    }

    fn body(
        &mut self,
        d: usize,
        mut body: Body,
        head: Head<'_>,
        eof: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> Progress {
        let is_request = self.dirs[d].role == Role::Requests;
        let preview_open = self.dirs[d].preview_open;
        let mut scratch = None;
        let msg = match self.dirs[d].cur.and_then(|seq| self.stitch.get_mut(seq)) {
            Some(e) if is_request => &mut e.ex.request,
            Some(e) => e.ex.response.get_or_insert_default(),
            None => scratch.insert(Message::default()),
        };
        let mut sink = Sink {
            body_len: &mut msg.body_len,
            preview: &mut msg.body_preview,
            trailers: &mut msg.trailers,
            preview_cap: self.limits.body_preview,
            preview_open,
        };
        let step = body.feed(head.bytes, &mut sink, self.limits.max_head, eof);
        let consumed = match step {
            Step::More { consumed } | Step::Done { consumed, .. } | Step::Invalid { consumed } => {
                consumed
            }
        };
        msg.wire_len += consumed as u64;
        if consumed > 0 {
            msg.last_ns = head.ts_at(consumed - 1);
        }
        match step {
            Step::More { consumed } => {
                self.dirs[d].state = State::Body(body);
                Progress {
                    consumed,
                    changed: consumed > 0,
                }
            }
            Step::Done { consumed } => {
                self.finish_message(d, false, out);
                Progress::used(consumed)
            }
            Step::Invalid { consumed } => {
                if let Some(e) = self.dirs[d].cur.and_then(|seq| self.stitch.get_mut(seq)) {
                    e.ex.flags |= Flags::INVALID;
                }
                self.finish_message(d, false, out);
                self.enter_resync(d);
                Progress::used(consumed)
            }
        }
    }

    /// The message in progress in direction `d` ended (its body, or its head
    /// when it has none). `incomplete`: it was cut short.
    fn finish_message(&mut self, d: usize, incomplete: bool, out: &mut Vec<Box<Exchange>>) {
        let is_request = self.dirs[d].role == Role::Requests;
        let dir = &mut self.dirs[d];
        if matches!(dir.state, State::Body(_)) {
            dir.state = State::Start;
        }
        let Some(seq) = dir.cur.take() else {
            return;
        };
        let Some(e) = self.stitch.get_mut(seq) else {
            return;
        };
        if incomplete {
            e.ex.flags |= Flags::INCOMPLETE;
        }
        if is_request {
            e.req_done = true;
            if e.wants_switch && e.resp != Resp::Done && dir.state == State::Start {
                dir.state = State::AwaitSwitch;
            }
        } else {
            e.resp = Resp::Done;
        }
        self.stitch.emit_ready(out);
    }

    /// Bytes were lost in direction `dir` at the current read position.
    fn on_gap(&mut self, dir: Direction, gap: Gap, out: &mut Vec<Box<Exchange>>) {
        let d = dir.index();
        let lost = Flags::GAP
            | if gap.known {
                Flags::TRUNCATED
            } else {
                Flags::NONE
            };
        match self.dirs[d].state {
            State::Body(mut body) => {
                let is_request = self.dirs[d].role == Role::Requests;
                let entry = self.dirs[d].cur.and_then(|seq| self.stitch.get_mut(seq));
                let mut scratch = Message::default();
                let mut scratch_flags = Flags::NONE;
                let (msg, flags) = match entry {
                    Some(e) => {
                        let msg = if is_request {
                            &mut e.ex.request
                        } else {
                            e.ex.response.get_or_insert_default()
                        };
                        (msg, &mut e.ex.flags)
                    }
                    None => (&mut scratch, &mut scratch_flags),
                };
                *flags |= lost;
                match body.gap(gap.len, &mut msg.body_len) {
                    GapFit::Inside { done } => {
                        msg.wire_len += gap.len;
                        self.dirs[d].preview_open = false;
                        self.dirs[d].state = State::Body(body);
                        if done {
                            self.finish_message(d, false, out);
                        }
                    }
                    GapFit::Beyond => {
                        // The message ended somewhere in the gap, or its
                        // framing can't be followed across it.
                        if let Body::Length(left) = body {
                            msg.body_len += left;
                            msg.wire_len += left;
                        } else {
                            *flags |= Flags::INCOMPLETE;
                        }
                        self.finish_message(d, false, out);
                        self.lose_sync(d);
                    }
                }
            }
            State::Start | State::Resync => {
                if self.dirs[d].role == Role::Responses && self.dirs[d].cur.is_some() {
                    // Between interim and final heads.
                    self.abort_response(d, lost | Flags::INCOMPLETE, out);
                }
                self.lose_sync(d);
            }
            State::AwaitSwitch => {
                self.dirs[d].state = State::Start;
                self.lose_sync(d);
            }
            State::Opaque | State::Handoff => {}
        }
    }

    /// Messages may have vanished in a gap: resync, and tell the stitcher.
    fn lose_sync(&mut self, d: usize) {
        match self.dirs[d].role {
            Role::Requests => self.stitch.push_marker(),
            Role::Responses => self.stitch.resp_gap = true,
            Role::Unknown => {}
        }
        self.enter_resync(d);
    }
}

/// Makes room for `n` more preview bytes up front (one allocation, not
/// growth as data comes). A recycled record usually has the room: checked
/// here, inline, so that costs no call.
fn reserve_preview(preview: &mut Vec<u8>, n: usize) {
    if preview.capacity() - preview.len() < n {
        preview.reserve_exact(n);
    }
}

fn version(minor: u8) -> &'static str {
    if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" }
}
