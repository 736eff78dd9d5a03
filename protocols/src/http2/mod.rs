//! HTTP/2 (RFC 9113) and gRPC reconstruction for one connection, sans-IO.
//!
//! [`Http2Conn`] is fed the contiguous bytes of each direction as they are
//! captured, and emits one [`Exchange`] per stream when the stream closes.
//! It keeps one HPACK decoder per direction ([`hpack`]) and can join a
//! connection mid-way: frame boundaries are found with a strict check
//! ([`frame::FrameHeader::plausible`], a chain of frames) and HPACK
//! references to entries from before we joined are reported as unknown
//! (`<unknown: dynamic index N>`, [`crate::record::FIELD_UNKNOWN`]), never
//! guessed.
//!
//! # Driving it
//!
//! From the reassembly layer (what `conn.rs` does): create it with the
//! [`Start`] that says how the connection was seen, then after each input
//! call [`Http2Conn::drive`] for each direction with its
//! [`DataStream`]; on close, [`Http2Conn::close`].
//!
//! - `Start::Preface`: the connection was seen from its first octet and a
//!   direction starts with the client preface. Feed both directions from
//!   position 0; the direction with the preface is the client's.
//! - `Start::Upgrade`: HTTP/1 saw `Upgrade: h2c` answered by `101`. Feed the
//!   client direction from the octet after the upgrade request (the preface
//!   comes next), the server direction from the octet after the 101 head.
//!   The upgrade request becomes stream 1, whose response is HTTP/2.
//! - `Start::LateJoin`: anything else that looks like HTTP/2 (a connection
//!   joined mid-way). Both directions look for frame boundaries.
//!
//! Or directly, over plain slices:
//!
//! - `feed(dir, bytes, ts, out)` consumes what it can and returns how many
//!   octets it consumed; the caller keeps the rest (a frame header, a short
//!   fixed prefix or SETTINGS entry, fewer than 9 octets in step; while
//!   looking for a frame boundary, up to [`RESYNC_LOOKAHEAD`] octets) and
//!   passes them again with the next bytes. Payloads (DATA, header blocks)
//!   are consumed as they come: no frame is ever buffered whole.
//! - `lost(dir, len, ts, out)`: `len` octets of `dir` are missing at the
//!   current position. Inside a DATA payload of known length the stream
//!   stays in step (body counted, `gap` flag); otherwise the direction
//!   resyncs and its HPACK decoder forgets its table. A caller holding
//!   unconsumed octets when a gap follows them drops them and counts them in
//!   `len` ([`Http2Conn::drive`] does).
//! - `close(ts, out)`: flush open streams as incomplete.
//!
//! # What is never done
//!
//! A header is never resolved from a table entry that might not be the
//! encoder's: after a late join, lost octets, an HPACK error, an interrupted
//! or skipped header block, the decoder forgets its table and resolves only
//! entries inserted since. The first frame of a resync chain (the least
//! certain boundary) is skipped. See `BENCHMARKS.md` and the HTTP/2 test
//! data README for the evidence.

pub mod frame;
pub mod grpc;
pub mod hpack;

use std::collections::VecDeque;

use crate::record::{Direction, Exchange, FIELD_UNKNOWN, Flags, Headers, Message, Proto, Side};
use crate::stream::DataStream;
use frame::{
    DEFAULT_MAX_FRAME_SIZE, END_HEADERS, END_STREAM, FRAME_HEADER_LEN, FrameHeader, FrameType,
    PADDED, PREFACE, SETTINGS_ENABLE_PUSH, SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_FRAME_SIZE,
};
use grpc::MessageCounter;
use hpack::Decoder;

/// Octets of dynamic table we track per decoder. Common peers use 4096;
/// browsers advertise 65536. Beyond the cap, old entries become unknown
/// (reported as such), so the cap bounds memory, never correctness.
pub const DEFAULT_MAX_TABLE_TRACKED: u64 = 64 * 1024;

/// Table size assumed after a late join until SETTINGS or a size update says
/// more (see [`hpack::table`]): the largest value common peers advertise.
pub const DEFAULT_ASSUMED_TABLE_SIZE: u64 = 65536;

/// Open streams tracked per connection. RFC 9113 leaves
/// SETTINGS_MAX_CONCURRENT_STREAMS unlimited; servers commonly allow 100 to
/// 250. Past the cap the least recently active stream is flushed as
/// incomplete, so streams whose end we missed cannot grow memory.
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 1024;

/// Interim (1xx) responses kept per stream. RFC 9110 §15.2 allows any
/// number; servers send one or two (100, 103). More are dropped and flagged.
pub const MAX_INTERIM: usize = 8;

/// Closed stream ids remembered, so that frames arriving after a stream was
/// emitted (WINDOW_UPDATE, a late RST_STREAM, a client still sending after
/// the server ended) do not start a second exchange for it.
const RECENTLY_CLOSED: usize = 256;

/// Longest frame accepted as a resync candidate: a boundary found with a
/// longer frame would need that much look-ahead held by the caller.
const RESYNC_MAX_FRAME: u32 = 1 << 16;

/// A resync candidate's stream id may exceed the highest id seen on the
/// connection by at most this much (ids grow by 2 per stream; 2048 streams
/// opened within one gap is far beyond what a lost chunk can hide).
const RESYNC_STREAM_WINDOW: u32 = 1 << 12;

/// Frames that must chain (each header plausible, each starting where the
/// previous ends) to accept a boundary, unless the input ends exactly at the
/// end of one of them (a write boundary).
const RESYNC_CHAIN: usize = 3;

/// Most octets `feed` leaves unconsumed while looking for a frame boundary:
/// the frames of a chain but the last one's payload.
pub const RESYNC_LOOKAHEAD: usize =
    RESYNC_CHAIN * FRAME_HEADER_LEN + (RESYNC_CHAIN - 1) * RESYNC_MAX_FRAME as usize;

/// Limits and options for one connection.
#[derive(Clone, Debug)]
pub struct Http2Config {
    /// Body octets kept per message in [`Message::body_preview`].
    pub body_preview: usize,
    /// Octets (names + values) stored per header list; see
    /// [`hpack::decoder::DEFAULT_MAX_LIST_BYTES`].
    pub max_header_list_bytes: usize,
    /// Fields stored per header list.
    pub max_header_fields: usize,
    /// See [`DEFAULT_MAX_TABLE_TRACKED`].
    pub max_table_tracked: u64,
    /// See [`DEFAULT_ASSUMED_TABLE_SIZE`].
    pub assumed_table_size: u64,
    /// See [`DEFAULT_MAX_OPEN_STREAMS`].
    pub max_open_streams: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            body_preview: 0,
            max_header_list_bytes: hpack::decoder::DEFAULT_MAX_LIST_BYTES,
            max_header_fields: hpack::decoder::DEFAULT_MAX_FIELDS,
            max_table_tracked: DEFAULT_MAX_TABLE_TRACKED,
            assumed_table_size: DEFAULT_ASSUMED_TABLE_SIZE,
            max_open_streams: DEFAULT_MAX_OPEN_STREAMS,
        }
    }
}

/// An h2c upgrade (RFC 7540 §3.2): the HTTP/1.1 request becomes stream 1,
/// whose response arrives as HTTP/2 after the `101 Switching Protocols`.
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// The direction that carried the HTTP/1.1 request.
    pub client: Direction,
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    /// The HTTP/1.1 request as parsed (headers, body length, timestamps).
    pub request: Message,
    /// The decoded `HTTP2-Settings` header (a SETTINGS payload), if any: see
    /// [`decode_http2_settings`].
    pub settings: Option<Vec<u8>>,
}

/// How we came to see this connection.
#[derive(Clone, Debug)]
pub enum Start {
    /// From its first octet: whichever direction starts with the client
    /// preface (RFC 9113 §3.4) is the client's.
    Preface,
    /// After an h2c upgrade: the server speaks HTTP/2 from the first octet
    /// after the 101 response, the client from the first octet after its
    /// request (it sends the preface first).
    Upgrade(Box<Upgrade>),
    /// Mid-way: no preface, frame boundaries and HPACK state unknown.
    LateJoin,
}

/// What happened on a connection, for statistics (no logging here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http2Counters {
    /// Frames parsed, all types.
    pub frames: u64,
    /// Frames of unknown types (ignored, RFC 9113 §4.1).
    pub unknown_frames: u64,
    /// Octets consumed per direction (index: [`Direction::index`]).
    pub bytes: [u64; 2],
    /// Frames violating RFC 9113 framing rules.
    pub malformed_frames: u64,
    /// Header blocks that failed to decode.
    pub hpack_errors: u64,
    /// HPACK references to unknown entries (joined mid-way or after loss).
    pub unknown_refs: u64,
    /// Times a direction lost frame sync and searched for a boundary.
    pub resyncs: u64,
    /// Octets skipped while searching for a frame boundary.
    pub resync_skipped: u64,
    /// Octets reported lost by the caller.
    pub lost_bytes: u64,
    pub streams_opened: u64,
    pub streams_closed: u64,
    /// Streams flushed early by [`Http2Config::max_open_streams`].
    pub streams_evicted: u64,
    /// Frames for streams already closed (ignored).
    pub frames_after_close: u64,
    pub resets: u64,
    pub goaways: u64,
    pub pushes: u64,
    /// Header lists cut by the caps.
    pub headers_truncated: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Expecting the client preface (or, failing that, frames).
    Preface,
    /// Expecting a 9-octet frame header.
    Header,
    /// Expecting the fixed part of the current frame's payload.
    Prefix,
    /// Streaming the current frame's payload.
    Payload,
    /// Skipping the current frame's padding.
    Padding,
    /// Looking for a frame boundary.
    Resync,
}

/// A header block in progress (HEADERS or PUSH_PROMISE, then CONTINUATION).
#[derive(Clone, Copy, Debug)]
struct BlockCtx {
    stream: u32,
    end_stream: bool,
    /// PUSH_PROMISE: the promised stream.
    promise: Option<u32>,
    /// The block started with PUSH_PROMISE (even if its promised id was lost).
    push: bool,
    /// Octets of the block were lost.
    lost: bool,
}

#[derive(Debug)]
struct Dir {
    phase: Phase,
    frame: FrameHeader,
    /// Payload octets of the current frame not yet consumed.
    remaining: u32,
    /// Padding octets at the end of the current frame.
    pad: u32,
    /// Octets of the current frame's fixed prefix.
    prefix: u32,
    /// Discard the rest of the current frame.
    skip: bool,
    decoder: Decoder,
    block: Option<BlockCtx>,
    block_out: Headers,
    /// SETTINGS_MAX_FRAME_SIZE of the receiving side, if seen.
    max_frame_size: Option<u32>,
    /// The next frame follows a resync: flag its stream.
    resynced: bool,
    /// The next frame starts a resync chain: its boundary is the least
    /// certain of the chain (a false start can land on a real boundary), so
    /// its payload is skipped, header block included (the decoder has
    /// forgotten its table already, so nothing is resolved wrongly).
    distrust_next: bool,
    /// The current frame is such a distrusted frame.
    distrusted: bool,
    /// This direction lost frame sync at some point: a stream the other
    /// side answers without our having seen it open may have been opened
    /// in the lost octets.
    lost_sync: bool,
}

impl Dir {
    fn new(phase: Phase, decoder: Decoder) -> Dir {
        Dir {
            phase,
            frame: FrameHeader {
                len: 0,
                kind: FrameType::Data,
                flags: 0,
                stream: 0,
                reserved: false,
            },
            remaining: 0,
            pad: 0,
            prefix: 0,
            skip: false,
            decoder,
            block: None,
            block_out: Headers::new(),
            max_frame_size: None,
            resynced: false,
            distrust_next: false,
            distrusted: false,
            lost_sync: false,
        }
    }
}

/// One direction of one stream.
#[derive(Debug, Default)]
struct Half {
    seen: bool,
    headers: Option<Headers>,
    trailers: Option<Headers>,
    interim: Vec<u16>,
    body_len: u64,
    preview: Vec<u8>,
    first_ns: u64,
    last_ns: u64,
    wire_len: u64,
    ended: bool,
    data_seen: bool,
    grpc: MessageCounter,
}

impl Half {
    fn touch(&mut self, ts: u64, wire: u64) {
        if !self.seen {
            self.seen = true;
            self.first_ns = ts;
        }
        self.last_ns = ts;
        self.wire_len += wire;
    }
}

#[derive(Debug)]
struct Stream {
    id: u32,
    halves: [Half; 2],
    /// Direction and kind of the first frame we saw of it.
    first_dir: Direction,
    first_was_headers: bool,
    pushed: bool,
    flags: Flags,
    reset_code: Option<u32>,
    last_ns: u64,
    /// h2c upgrade: the request came over HTTP/1.1.
    upgrade: Option<(String, String, Option<String>)>,
}

/// The HTTP/2 state of one connection.
#[derive(Debug)]
pub struct Http2Conn {
    cfg: Http2Config,
    dirs: [Dir; 2],
    streams: Vec<Stream>,
    recently_closed: VecDeque<u32>,
    /// Highest stream id opened so far, by parity (even, odd). Seen from the
    /// start, ids only grow (RFC 9113 §5.1.1): a lower id not open is closed.
    highest: [u32; 2],
    /// Timestamp of the last octet fed per direction (for losses).
    last_ts: [u64; 2],
    /// Highest stream id any frame carried (for the resync check).
    streams_seen_max: Option<u32>,
    client: Option<Direction>,
    flags: Flags,
    counters: Http2Counters,
    /// Emptied header lists of (recycled) records, taken by the next header
    /// blocks; at most [`SPARE_LISTS`].
    spare: Vec<Headers>,
}

/// Header lists kept for reuse per connection: a call in flight has three
/// (request, response, trailers).
const SPARE_LISTS: usize = 4;

impl Http2Conn {
    pub fn new(cfg: &Http2Config, start: Start) -> Self {
        let late = matches!(start, Start::LateJoin);
        let decoder = || {
            let mut d = if late {
                Decoder::new_late(cfg.max_table_tracked, cfg.assumed_table_size)
            } else {
                Decoder::new(cfg.max_table_tracked)
            };
            d.set_list_caps(cfg.max_header_list_bytes, cfg.max_header_fields);
            d
        };
        let phase = if late { Phase::Resync } else { Phase::Preface };
        let mut conn = Http2Conn {
            cfg: cfg.clone(),
            dirs: [Dir::new(phase, decoder()), Dir::new(phase, decoder())],
            streams: Vec::new(),
            recently_closed: VecDeque::new(),
            spare: Vec::new(),
            highest: [0; 2],
            last_ts: [0; 2],
            streams_seen_max: None,
            client: None,
            flags: if late { Flags::LATE_JOIN } else { Flags::NONE },
            counters: Http2Counters::default(),
        };
        if let Start::Upgrade(up) = start {
            let up = *up;
            conn.client = Some(up.client);
            // The server's first octets are its SETTINGS, not a preface.
            conn.dirs[up.client.opposite().index()].phase = Phase::Header;
            if let Some(s) = &up.settings {
                for e in s.as_chunks::<6>().0 {
                    // The client's settings bind the server's encoder.
                    conn.apply_setting(up.client, e);
                }
            }
            let mut half = Half {
                seen: true,
                headers: Some(up.request.headers),
                trailers: None,
                body_len: up.request.body_len,
                preview: up.request.body_preview,
                first_ns: up.request.first_ns,
                last_ns: up.request.last_ns,
                wire_len: up.request.wire_len,
                ended: true,
                ..Half::default()
            };
            if !up.request.trailers.is_empty() {
                half.trailers = Some(up.request.trailers);
            }
            let mut halves = [Half::default(), Half::default()];
            halves[up.client.index()] = half;
            conn.streams.push(Stream {
                id: 1,
                halves,
                first_dir: up.client,
                first_was_headers: true,
                pushed: false,
                flags: Flags::UPGRADE,
                reset_code: None,
                last_ns: up.request.last_ns,
                upgrade: Some((up.method, up.path, up.authority)),
            });
            conn.counters.streams_opened += 1;
            conn.highest[1] = 1;
        }
        conn
    }

    /// The traced process's side, once known.
    pub fn side(&self) -> Option<Side> {
        self.client.map(side_of)
    }

    /// The direction the client writes, once known.
    pub fn client_direction(&self) -> Option<Direction> {
        self.client
    }

    /// Connection-level flags: `late_join`, `invalid` (malformed frames or
    /// HPACK errors seen), `goaway`.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    pub fn counters(&self) -> Http2Counters {
        let mut c = self.counters;
        c.unknown_refs = self
            .dirs
            .iter()
            .map(|d| d.decoder.counters().unknown_refs)
            .sum();
        c
    }

    /// HPACK counters of the decoder for headers sent in `dir`.
    pub fn hpack_counters(&self, dir: Direction) -> hpack::HpackCounters {
        self.dirs[dir.index()].decoder.counters()
    }

    /// True when every dynamic-table index of headers sent in `dir` resolves
    /// (no entry from before we joined or lost bytes can still be referenced).
    pub fn hpack_fully_known(&self, dir: Direction) -> bool {
        self.dirs[dir.index()].decoder.table().fully_known()
    }

    /// Frees the header lists kept for the next header blocks (call it on
    /// an idle connection).
    pub fn release_spare(&mut self) {
        self.spare = Vec::new();
    }

    /// Streams currently open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Consume frames from `buf`, the next contiguous octets of `dir`;
    /// return how many octets were consumed. Completed exchanges are pushed
    /// to `out`.
    pub fn feed(
        &mut self,
        dir: Direction,
        buf: &[u8],
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) -> usize {
        self.feed_at(dir, buf, |_| ts, out)
    }

    /// Drive this connection from a reassembled direction: consume what its
    /// head allows, and turn each gap into [`Http2Conn::lost`] (octets left
    /// unconsumed before a gap can never complete: they are counted in the
    /// gap). Returns true if anything moved. This is all `conn.rs` needs.
    pub fn drive(
        &mut self,
        dir: Direction,
        stream: &mut DataStream,
        out: &mut Vec<Box<Exchange>>,
    ) -> bool {
        let mut moved = false;
        loop {
            let head = stream.head();
            let held = head.bytes.len();
            if held > 0 {
                let n = self.feed_at(dir, head.bytes, |off| head.ts_at(off), out);
                if n > 0 {
                    stream.consume(n);
                    moved = true;
                    continue;
                }
                if !stream.gap_follows() {
                    break;
                }
                stream.consume(held);
            }
            match stream.take_gap() {
                Some(gap) => {
                    let ts = self.last_ts[dir.index()];
                    let gap_flags = if gap.known {
                        // Cut by the capture cap: say so, as HTTP/1 does.
                        Flags::GAP | Flags::TRUNCATED
                    } else {
                        Flags::GAP
                    };
                    self.lose(dir, held as u64 + gap.len, gap_flags, ts, out);
                    moved = true;
                }
                None => break,
            }
        }
        moved
    }

    /// [`Http2Conn::feed`] with the capture timestamp of each octet offset.
    fn feed_at(
        &mut self,
        dir: Direction,
        buf: &[u8],
        ts_of: impl Fn(usize) -> u64,
        out: &mut Vec<Box<Exchange>>,
    ) -> usize {
        let d = dir.index();
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            if rest.is_empty() && self.dirs[d].phase != Phase::Preface {
                break;
            }
            let ts = ts_of(pos);
            self.last_ts[d] = ts;
            match self.dirs[d].phase {
                Phase::Preface => {
                    let n = rest.len().min(PREFACE.len());
                    if rest[..n] != PREFACE[..n] {
                        // Not the client's direction: frames from the start.
                        self.dirs[d].phase = Phase::Header;
                        continue;
                    }
                    if n < PREFACE.len() {
                        break;
                    }
                    pos += PREFACE.len();
                    self.client = Some(dir);
                    self.dirs[d].phase = Phase::Header;
                }
                Phase::Resync => {
                    let (skip, found) = self.resync(dir, rest);
                    pos += skip;
                    if !found {
                        break;
                    }
                }
                Phase::Header => {
                    let Some(h) = FrameHeader::parse(rest) else {
                        break;
                    };
                    pos += FRAME_HEADER_LEN;
                    self.frame_start(dir, h, ts, out);
                }
                Phase::Prefix => {
                    let need = self.dirs[d].prefix as usize;
                    if rest.len() < need {
                        break;
                    }
                    pos += need;
                    self.frame_prefix(dir, &rest[..need], ts, out);
                }
                Phase::Payload => {
                    if rest.is_empty() {
                        break;
                    }
                    let n = self.frame_payload(dir, rest, ts, out);
                    if n == 0 {
                        break;
                    }
                    pos += n;
                }
                Phase::Padding => {
                    if rest.is_empty() {
                        break;
                    }
                    let dd = &mut self.dirs[d];
                    let n = rest.len().min(dd.remaining as usize);
                    dd.remaining -= n as u32;
                    pos += n;
                    let sid = dd.frame.stream;
                    if let Some(i) = self.find(sid) {
                        self.streams[i].halves[d].wire_len += n as u64;
                    }
                    self.advance(dir, ts, out);
                }
            }
        }
        self.counters.bytes[d] += pos as u64;
        pos
    }

    /// `len` octets of `dir` were lost at the current position.
    pub fn lost(&mut self, dir: Direction, len: u64, ts: u64, out: &mut Vec<Box<Exchange>>) {
        self.lose(dir, len, Flags::GAP, ts, out);
    }

    /// [`Http2Conn::lost`], flagging the streams it touches `gap_flags`.
    fn lose(
        &mut self,
        dir: Direction,
        len: u64,
        gap_flags: Flags,
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) {
        let d = dir.index();
        self.counters.lost_bytes += len;
        if len == 0 {
            return;
        }
        let dd = &self.dirs[d];
        let in_frame = matches!(dd.phase, Phase::Prefix | Phase::Payload | Phase::Padding)
            && len <= dd.remaining as u64;
        if !in_frame {
            if dd.phase != Phase::Resync {
                self.lose_sync(dir, gap_flags);
            }
            return;
        }
        let frame = dd.frame;
        let stream = self.find(frame.stream);
        if let Some(i) = stream {
            self.streams[i].flags |= gap_flags;
            self.streams[i].halves[d].wire_len += len;
        }
        let dd = &mut self.dirs[d];
        match (dd.phase, frame.kind) {
            (Phase::Payload, FrameType::Data) if !dd.skip => {
                let data_left = (dd.remaining - dd.pad) as u64;
                let body = len.min(data_left);
                if let Some(i) = stream {
                    let h = &mut self.streams[i].halves[d];
                    h.body_len += body;
                    h.grpc.lost(body);
                }
            }
            (Phase::Payload, FrameType::Settings) => {
                // A lost SETTINGS_HEADER_TABLE_SIZE may have changed the table.
                self.dirs[dir.opposite().index()].decoder.settings_lost();
                self.dirs[d].skip = true;
            }
            (_, FrameType::Headers | FrameType::PushPromise | FrameType::Continuation) => {
                let dd = &mut self.dirs[d];
                if let Some(b) = &mut dd.block {
                    b.lost = true;
                }
                dd.decoder.forget();
                dd.skip = true;
                if let Some(i) = stream {
                    self.streams[i].flags |= Flags::HEADERS_PARTIAL;
                }
            }
            (Phase::Prefix, FrameType::Data) => {
                // Without the pad length the body length is unknown.
                if let Some(i) = stream {
                    self.streams[i].halves[d].grpc.lost_sync = true;
                }
                self.dirs[d].skip = true;
            }
            _ => self.dirs[d].skip = true,
        }
        let dd = &mut self.dirs[d];
        dd.remaining -= len as u32;
        // A loss that ran into the padding leaves only padding.
        dd.pad = dd.pad.min(dd.remaining);
        if dd.phase == Phase::Prefix {
            dd.phase = Phase::Payload;
        }
        self.advance(dir, ts, out);
    }

    /// The connection is gone (or capture ends): flush every open stream,
    /// flagged `incomplete` unless both ends had finished.
    pub fn close(&mut self, ts: u64, out: &mut Vec<Box<Exchange>>) {
        let _ = ts;
        while !self.streams.is_empty() {
            self.close_stream(0, Flags::INCOMPLETE, out);
        }
    }

    // ---- frames ----

    fn frame_start(
        &mut self,
        dir: Direction,
        h: FrameHeader,
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) {
        let d = dir.index();
        self.counters.frames += 1;
        {
            let dd = &mut self.dirs[d];
            dd.frame = h;
            dd.remaining = h.len;
            dd.pad = 0;
            dd.prefix = 0;
            dd.skip = false;
            dd.distrusted = false;
        }
        let oversized = h.len > self.frame_size_limit(dir);
        if !h.well_formed() || oversized {
            self.malformed(dir);
            if oversized {
                // Its length cannot be trusted to find the next frame.
                self.lose_sync(dir, Flags::GAP);
                return;
            }
            // A peer's malformed frame (HEADERS on stream 0, a SETTINGS of
            // 3 octets...): its header is sound, so its length still says
            // where the next frame starts (RFC 9113 §4.1). Skip it and keep
            // the sync; a header block in it may have changed the peer's
            // HPACK table, so that is forgotten.
            self.abandon_block(dir);
            if let Some(i) = self.find(h.stream) {
                self.streams[i].flags |= Flags::INVALID;
            }
            let dd = &mut self.dirs[d];
            if matches!(
                h.kind,
                FrameType::Headers | FrameType::PushPromise | FrameType::Continuation
            ) {
                dd.decoder.forget();
            }
            dd.skip = true;
            dd.phase = Phase::Payload;
            self.advance(dir, ts, out);
            return;
        }
        // A header block left open must be continued (RFC 9113 §6.10).
        if let Some(b) = self.dirs[d].block
            && (h.kind != FrameType::Continuation || h.stream != b.stream)
        {
            self.malformed(dir);
            self.abandon_block(dir);
        }
        if std::mem::take(&mut self.dirs[d].distrust_next) {
            // If it is real, the stream it names lost this frame.
            if let Some(i) = self.find(h.stream) {
                self.streams[i].flags |= Flags::GAP | Flags::RESYNCED;
            }
            let dd = &mut self.dirs[d];
            dd.skip = true;
            dd.distrusted = true;
            dd.phase = Phase::Payload;
            if matches!(h.kind, FrameType::Headers | FrameType::PushPromise) {
                // Its CONTINUATION frames are skipped with it.
                dd.decoder.begin_block();
                dd.decoder.forget();
                dd.block_out.clear();
                dd.block = Some(BlockCtx {
                    stream: h.stream,
                    end_stream: false,
                    promise: None,
                    push: h.kind == FrameType::PushPromise,
                    lost: true,
                });
            }
            self.advance(dir, ts, out);
            return;
        }
        if h.stream != 0 {
            self.streams_seen_max = Some(self.streams_seen_max.unwrap_or(0).max(h.stream));
        }
        let resynced = std::mem::take(&mut self.dirs[d].resynced);
        let wire = FRAME_HEADER_LEN as u64;
        match h.kind {
            FrameType::Data | FrameType::Headers => {
                // Only HEADERS opens a stream. DATA on a stream we never saw
                // open is an error (RFC 9113 §5.1) when we saw the whole
                // connection; joined late, its stream predates us.
                let create = h.kind == FrameType::Headers || !self.full_view();
                if !create && self.find(h.stream).is_none() {
                    let parity = (h.stream % 2) as usize;
                    if h.stream > self.highest[parity] {
                        self.malformed(dir);
                    }
                }
                if let Some(i) = self.stream(dir, h.stream, create, h.kind, ts, out) {
                    let s = &mut self.streams[i];
                    s.halves[d].touch(ts, wire);
                    s.last_ns = ts;
                    if resynced {
                        s.flags |= Flags::RESYNCED;
                    }
                    if h.kind == FrameType::Data {
                        s.halves[d].data_seen = true;
                    }
                } else if h.kind == FrameType::Data {
                    self.dirs[d].skip = true;
                }
                // A header block is always decoded, even for a stream we
                // ignore: skipping it would miss its table insertions.
                if h.kind == FrameType::Headers {
                    if h.has(frame::PRIORITY) && self.client.is_none() {
                        // Only clients prioritise (RFC 9113 §5.3.2).
                        self.client = Some(dir);
                    }
                    self.begin_block(dir, h.stream, h.has(END_STREAM), false);
                }
                self.dirs[d].prefix = h.prefix_len();
            }
            FrameType::PushPromise => {
                if let Some(i) = self.find(h.stream) {
                    self.streams[i].halves[d].touch(ts, wire);
                }
                self.begin_block(dir, h.stream, false, true);
                self.dirs[d].prefix = h.prefix_len();
            }
            FrameType::Continuation => {
                if self.dirs[d].block.is_none() {
                    // We missed the start of its block, and its insertions.
                    self.malformed(dir);
                    self.dirs[d].decoder.forget();
                    self.dirs[d].skip = true;
                } else if let Some(i) = self.find(h.stream) {
                    self.streams[i].halves[d].touch(ts, wire);
                }
            }
            FrameType::RstStream => self.dirs[d].prefix = 4,
            FrameType::Goaway => self.dirs[d].prefix = 8,
            FrameType::Settings | FrameType::Priority | FrameType::Ping => {}
            FrameType::WindowUpdate => {}
            FrameType::Unknown(_) => self.counters.unknown_frames += 1,
        }
        let dd = &mut self.dirs[d];
        dd.phase = if dd.prefix > 0 {
            Phase::Prefix
        } else {
            Phase::Payload
        };
        self.advance(dir, ts, out);
    }

    fn frame_prefix(&mut self, dir: Direction, p: &[u8], ts: u64, out: &mut Vec<Box<Exchange>>) {
        let d = dir.index();
        let h = self.dirs[d].frame;
        {
            let dd = &mut self.dirs[d];
            dd.remaining -= p.len() as u32;
            dd.phase = Phase::Payload;
        }
        if let Some(i) = self.find(h.stream) {
            self.streams[i].halves[d].wire_len += p.len() as u64;
        }
        match h.kind {
            FrameType::Data | FrameType::Headers | FrameType::PushPromise => {
                let pad = if h.has(PADDED) { p[0] as u32 } else { 0 };
                if pad > self.dirs[d].remaining {
                    // RFC 9113 §6.1: padding longer than the payload.
                    self.malformed(dir);
                    if h.kind != FrameType::Data {
                        self.abandon_block(dir);
                    }
                    self.dirs[d].skip = true;
                } else {
                    self.dirs[d].pad = pad;
                }
                if h.kind == FrameType::PushPromise {
                    let o = p.len() - 4;
                    let promised = frame::stream_id([p[o], p[o + 1], p[o + 2], p[o + 3]]);
                    self.promise(dir, h.stream, promised, ts, out);
                }
            }
            FrameType::RstStream => {
                let code = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                self.counters.resets += 1;
                if let Some(i) = self.find(h.stream) {
                    let s = &mut self.streams[i];
                    s.reset_code = Some(code);
                    s.halves[d].touch(ts, (FRAME_HEADER_LEN + 4) as u64);
                    self.close_stream(i, Flags::RESET, out);
                }
            }
            FrameType::Goaway => {
                let last = frame::stream_id([p[0], p[1], p[2], p[3]]);
                self.goaway(dir, last, out);
            }
            _ => {}
        }
        self.advance(dir, ts, out);
    }

    /// Consume payload octets; 0 means more input is needed.
    fn frame_payload(
        &mut self,
        dir: Direction,
        rest: &[u8],
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) -> usize {
        let d = dir.index();
        let dd = &mut self.dirs[d];
        let h = dd.frame;
        let body_left = (dd.remaining - dd.pad) as usize;
        let n = rest.len().min(body_left);
        let chunk = &rest[..n];
        if dd.skip {
            dd.remaining -= n as u32;
            self.advance(dir, ts, out);
            return n;
        }
        match h.kind {
            FrameType::Data => {
                dd.remaining -= n as u32;
                if let Some(i) = self.find(h.stream) {
                    let preview = self.cfg.body_preview;
                    let half = &mut self.streams[i].halves[d];
                    half.body_len += n as u64;
                    half.wire_len += n as u64;
                    half.last_ns = ts;
                    if half.preview.len() < preview {
                        let k = (preview - half.preview.len()).min(n);
                        half.preview.extend_from_slice(&chunk[..k]);
                    }
                    half.grpc.feed(chunk);
                }
            }
            FrameType::Headers | FrameType::PushPromise | FrameType::Continuation => {
                dd.remaining -= n as u32;
                dd.decoder.feed(chunk, &mut dd.block_out);
                if let Some(i) = self.find(h.stream) {
                    self.streams[i].halves[d].wire_len += n as u64;
                }
            }
            FrameType::Settings => {
                let n = n - n % 6;
                if n == 0 {
                    return 0;
                }
                dd.remaining -= n as u32;
                for e in rest[..n].as_chunks::<6>().0 {
                    self.apply_setting(dir, e);
                }
                self.advance(dir, ts, out);
                return n;
            }
            _ => dd.remaining -= n as u32,
        }
        self.advance(dir, ts, out);
        n
    }

    /// After consuming: move to padding, or end the frame.
    fn advance(&mut self, dir: Direction, ts: u64, out: &mut Vec<Box<Exchange>>) {
        let dd = &mut self.dirs[dir.index()];
        if dd.phase == Phase::Payload && dd.remaining > 0 && dd.remaining == dd.pad {
            dd.phase = Phase::Padding;
        }
        if dd.remaining == 0 && matches!(dd.phase, Phase::Payload | Phase::Padding) {
            dd.phase = Phase::Header;
            self.frame_end(dir, ts, out);
        }
    }

    fn frame_end(&mut self, dir: Direction, ts: u64, out: &mut Vec<Box<Exchange>>) {
        let d = dir.index();
        let h = self.dirs[d].frame;
        if self.dirs[d].distrusted {
            let dd = &mut self.dirs[d];
            if h.has(END_HEADERS) && dd.block.take().is_some() {
                let _ = dd.decoder.end_block();
                dd.block_out.clear();
            }
            return;
        }
        match h.kind {
            FrameType::Data => {
                if h.has(END_STREAM)
                    && let Some(i) = self.find(h.stream)
                {
                    self.end_half(i, dir, out);
                }
            }
            FrameType::Headers | FrameType::PushPromise | FrameType::Continuation
                if h.has(END_HEADERS) && self.dirs[d].block.is_some() =>
            {
                self.finish_block(dir, ts, out);
            }
            _ => {}
        }
    }

    fn apply_setting(&mut self, sender: Direction, e: &[u8]) {
        let id = u16::from_be_bytes([e[0], e[1]]);
        let value = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
        // The sender's settings bind what the other side sends it.
        let to_sender = sender.opposite().index();
        match id {
            SETTINGS_HEADER_TABLE_SIZE => self.dirs[to_sender]
                .decoder
                .settings_table_size(value as u64),
            SETTINGS_MAX_FRAME_SIZE => self.dirs[to_sender].max_frame_size = Some(value),
            // A server MUST NOT set SETTINGS_ENABLE_PUSH to 1 (RFC 9113 §6.5.2).
            SETTINGS_ENABLE_PUSH if value == 1 && self.client.is_none() => {
                self.client = Some(sender)
            }
            _ => {}
        }
    }

    // ---- header blocks ----

    fn begin_block(&mut self, dir: Direction, stream: u32, end_stream: bool, push: bool) {
        let dd = &mut self.dirs[dir.index()];
        dd.decoder.begin_block();
        dd.block_out.clear();
        dd.block = Some(BlockCtx {
            stream,
            end_stream,
            promise: None,
            push,
            lost: false,
        });
    }

    /// A block was interrupted by another frame: its insertions are lost.
    fn abandon_block(&mut self, dir: Direction) {
        let dd = &mut self.dirs[dir.index()];
        if let Some(b) = dd.block.take() {
            dd.decoder.forget();
            let _ = dd.decoder.end_block();
            dd.block_out.clear();
            if let Some(i) = self.find(b.stream) {
                self.streams[i].flags |= Flags::HEADERS_PARTIAL | Flags::INVALID;
            }
        }
    }

    fn promise(
        &mut self,
        dir: Direction,
        parent: u32,
        promised: u32,
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) {
        if let Some(b) = &mut self.dirs[dir.index()].block {
            b.promise = Some(promised);
        }
        // Only servers push: the receiving side is the client.
        if self.client.is_none() {
            self.client = Some(dir.opposite());
        }
        self.counters.pushes += 1;
        let _ = parent;
        if let Some(i) = self.stream(dir, promised, true, FrameType::PushPromise, ts, out) {
            let s = &mut self.streams[i];
            s.pushed = true;
            s.flags |= Flags::PUSH;
            let req = &mut s.halves[dir.opposite().index()];
            req.touch(ts, 0);
            req.ended = true;
        }
    }

    fn finish_block(&mut self, dir: Direction, ts: u64, out: &mut Vec<Box<Exchange>>) {
        let d = dir.index();
        let Some(ctx) = self.dirs[d].block.take() else {
            return;
        };
        let info = self.dirs[d].decoder.end_block();
        // Size the next list like this one: one allocation per list, not
        // one per doubling.
        let (n, b) = (
            self.dirs[d].block_out.len(),
            self.dirs[d].block_out.byte_len(),
        );
        let next = match self.spare.pop() {
            Some(mut h) => {
                h.reserve(n, b);
                h
            }
            None => Headers::with_capacity(n, b),
        };
        let headers = std::mem::replace(&mut self.dirs[d].block_out, next);
        let mut flags = Flags::NONE;
        if ctx.lost {
            flags |= Flags::GAP | Flags::HEADERS_PARTIAL;
        } else if info.error.is_some() {
            self.counters.hpack_errors += 1;
            self.flags |= Flags::INVALID;
            flags |= Flags::INVALID | Flags::HEADERS_PARTIAL;
        }
        if info.unknown > 0 {
            flags |= Flags::HEADERS_PARTIAL;
        }
        if info.truncated {
            self.counters.headers_truncated += 1;
            flags |= Flags::HEADERS_TRUNCATED;
        }
        let pseudo = Pseudo::of(&headers);
        if self.client.is_none() {
            if pseudo.method && !ctx.push {
                self.client = Some(dir);
            } else if pseudo.status.is_some()
                || pseudo.grpc_status
                || (ctx.stream % 2 == 0 && !ctx.push)
            {
                // Responses, gRPC trailers, and HEADERS on server-initiated
                // (even, RFC 9113 §5.1.1) streams come from the server.
                self.client = Some(dir.opposite());
            }
        }
        if ctx.push && ctx.promise.is_none() {
            // A PUSH_PROMISE whose promised stream id was lost: its request
            // belongs to no stream we can name.
            if let Some(i) = self.find(ctx.stream) {
                self.streams[i].flags |= Flags::GAP;
            }
            return;
        }
        if let Some(p) = ctx.promise {
            // The promised request (RFC 9113 §8.4): the pushed stream's request.
            if let Some(i) = self.find(p) {
                let s = &mut self.streams[i];
                s.flags |= flags;
                s.halves[dir.opposite().index()].headers = Some(headers);
            }
            if let Some(i) = self.find(ctx.stream) {
                self.streams[i].flags |= Flags(flags.0 & (Flags::GAP | Flags::INVALID).0);
            }
            return;
        }
        let Some(i) = self.find(ctx.stream) else {
            return;
        };
        let s = &mut self.streams[i];
        s.flags |= flags;
        s.last_ns = ts;
        let half = &mut s.halves[d];
        match pseudo.status {
            Some(code) if (100..200).contains(&code) => {
                if half.interim.len() < MAX_INTERIM {
                    half.interim.push(code);
                } else {
                    s.flags |= Flags::HEADERS_TRUNCATED;
                }
            }
            _ => {
                // Trailers always end the stream (RFC 9113 §8.1); a first
                // block without pseudo-headers we can read that ends it is
                // taken as trailers (their header block came before we did).
                let is_headers = half.headers.is_none() && (pseudo.any || !ctx.end_stream);
                if is_headers {
                    half.headers = Some(headers);
                } else if half.trailers.is_none() {
                    half.trailers = Some(headers);
                } else {
                    // A third header block on one side: not HTTP (§8.1).
                    self.counters.malformed_frames += 1;
                    s.flags |= Flags::INVALID;
                }
            }
        }
        if ctx.end_stream {
            self.end_half(i, dir, out);
        }
    }

    // ---- streams ----

    fn find(&self, id: u32) -> Option<usize> {
        if id == 0 {
            return None;
        }
        self.streams.iter().position(|s| s.id == id)
    }

    /// The stream `id`, created if `create` and not recently closed.
    fn stream(
        &mut self,
        dir: Direction,
        id: u32,
        create: bool,
        kind: FrameType,
        ts: u64,
        out: &mut Vec<Box<Exchange>>,
    ) -> Option<usize> {
        if let Some(i) = self.find(id) {
            return Some(i);
        }
        if !create || id == 0 {
            return None;
        }
        let parity = (id % 2) as usize;
        let closed = if self.full_view() {
            id <= self.highest[parity]
        } else {
            self.recently_closed.contains(&id)
        };
        if closed {
            self.counters.frames_after_close += 1;
            return None;
        }
        self.highest[parity] = self.highest[parity].max(id);
        if self.streams.len() >= self.cfg.max_open_streams.max(1) {
            // Flush the least recently active stream.
            if let Some((i, _)) = self
                .streams
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_ns)
            {
                self.counters.streams_evicted += 1;
                self.close_stream(i, Flags::INCOMPLETE, out);
            }
        }
        self.counters.streams_opened += 1;
        self.streams.push(Stream {
            id,
            halves: [Half::default(), Half::default()],
            first_dir: dir,
            first_was_headers: matches!(kind, FrameType::Headers | FrameType::PushPromise),
            pushed: false,
            flags: if self.dirs[dir.opposite().index()].lost_sync && !self.opens(dir, id) {
                // It may have been opened in the other side's lost octets.
                Flags(self.flags.0 & Flags::LATE_JOIN.0) | Flags::GAP | Flags::RESYNCED
            } else {
                Flags(self.flags.0 & Flags::LATE_JOIN.0)
            },
            reset_code: None,
            last_ns: ts,
            upgrade: None,
        });
        Some(self.streams.len() - 1)
    }

    /// Whether `dir` is the side that opens stream `id`: the client for odd
    /// ids, the server (push) for even ones.
    fn opens(&self, dir: Direction, id: u32) -> bool {
        self.client
            .is_some_and(|client| (client == dir) == (id % 2 == 1))
    }

    /// We saw the client open the stream (so its request is complete to us).
    fn saw_open(&self, s: &Stream) -> bool {
        s.pushed || s.upgrade.is_some() || (s.first_was_headers && Some(s.first_dir) == self.client)
    }

    fn end_half(&mut self, i: usize, dir: Direction, out: &mut Vec<Box<Exchange>>) {
        let s = &mut self.streams[i];
        s.halves[dir.index()].ended = true;
        let both = s.halves[0].ended && s.halves[1].ended;
        let server_done = self.client == Some(dir.opposite()) && !self.saw_open(&self.streams[i]);
        if both || server_done {
            self.close_stream(i, Flags::NONE, out);
        }
    }

    fn goaway(&mut self, sender: Direction, last: u32, out: &mut Vec<Box<Exchange>>) {
        self.counters.goaways += 1;
        self.flags |= Flags::GOAWAY;
        // Streams the receiver opened above `last` were not processed.
        let receiver_is_client = self.client.is_none_or(|c| c == sender.opposite());
        let parity = if receiver_is_client { 1 } else { 0 };
        let mut i = 0;
        while i < self.streams.len() {
            let s = &self.streams[i];
            if s.id > last && s.id % 2 == parity {
                self.close_stream(i, Flags::GOAWAY | Flags::INCOMPLETE, out);
            } else {
                i += 1;
            }
        }
    }

    /// We saw the connection from its start and never lost frame sync: every
    /// stream's opening and every SETTINGS frame went past us.
    fn full_view(&self) -> bool {
        !self.flags.contains(Flags::LATE_JOIN) && self.counters.resyncs == 0
    }

    /// The longest frame `dir` may send: the receiver's
    /// SETTINGS_MAX_FRAME_SIZE (16384 until it says otherwise) when we saw
    /// the connection from its start, else the most any frame can say.
    fn frame_size_limit(&self, dir: Direction) -> u32 {
        if self.full_view() {
            self.dirs[dir.index()]
                .max_frame_size
                .unwrap_or(DEFAULT_MAX_FRAME_SIZE)
                .max(DEFAULT_MAX_FRAME_SIZE)
        } else {
            u32::MAX
        }
    }

    fn malformed(&mut self, dir: Direction) {
        let _ = dir;
        self.counters.malformed_frames += 1;
        self.flags |= Flags::INVALID;
    }

    /// Frame sync is lost in `dir`: find a boundary, forget the HPACK table.
    fn lose_sync(&mut self, dir: Direction, gap_flags: Flags) {
        let d = dir.index();
        self.counters.resyncs += 1;
        if let Some(b) = self.dirs[d].block.take()
            && let Some(i) = self.find(b.stream)
        {
            self.streams[i].flags |= Flags::HEADERS_PARTIAL;
        }
        // SETTINGS may be among the lost frames: they bind the other
        // direction's encoder.
        self.dirs[dir.opposite().index()].decoder.settings_lost();
        let dd = &mut self.dirs[d];
        dd.decoder.forget();
        let _ = dd.decoder.end_block();
        dd.block_out.clear();
        dd.phase = Phase::Resync;
        dd.skip = false;
        dd.remaining = 0;
        dd.resynced = true;
        dd.lost_sync = true;
        // Frames of any open stream may be in the lost octets.
        for s in &mut self.streams {
            if !s.halves[d].ended {
                s.flags |= gap_flags;
            }
        }
    }

    /// Look for a frame boundary in `buf`: (octets to skip, found).
    fn resync(&mut self, dir: Direction, buf: &[u8]) -> (usize, bool) {
        let d = dir.index();
        let max_len = self.dirs[d]
            .max_frame_size
            .unwrap_or(DEFAULT_MAX_FRAME_SIZE)
            .clamp(DEFAULT_MAX_FRAME_SIZE, RESYNC_MAX_FRAME);
        if buf.starts_with(PREFACE) {
            self.client = Some(dir);
            self.dirs[d].phase = Phase::Header;
            return (PREFACE.len(), true);
        }
        let max_stream = self
            .streams_seen_max
            .map(|m| m.saturating_add(RESYNC_STREAM_WINDOW));
        // The very first octets captured of a direction joined mid-way
        // begin a syscall's bytes: for a write that is a frame boundary (peers
        // write whole frames). A chain verified from there needs no scan, so
        // its first frame is as certain as the others and is decoded.
        let at_capture_start = self.counters.bytes[d] == 0 && self.counters.lost_bytes == 0;
        let mut off = 0;
        while off + FRAME_HEADER_LEN <= buf.len() {
            let first = at_capture_start && off == 0;
            match chain(&buf[off..], max_len, first, max_stream) {
                Some(true) => {
                    self.counters.resync_skipped += off as u64;
                    self.dirs[d].phase = Phase::Header;
                    self.dirs[d].distrust_next = !first;
                    return (off, true);
                }
                // Wait for more octets before deciding.
                None => break,
                Some(false) => off += 1,
            }
        }
        self.counters.resync_skipped += off as u64;
        (off, false)
    }

    fn close_stream(&mut self, i: usize, extra: Flags, out: &mut Vec<Box<Exchange>>) {
        let s = self.streams.swap_remove(i);
        self.counters.streams_closed += 1;
        if self.recently_closed.len() >= RECENTLY_CLOSED {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back(s.id);
        out.push(self.exchange(s, extra));
    }

    fn exchange(&mut self, s: Stream, extra: Flags) -> Box<Exchange> {
        // Without evidence of sides, guess that the traced process serves.
        let client = self.client.unwrap_or(Direction::Ingress);
        let mut ex = Exchange::new(Proto::Http2, side_of(client));
        ex.stream_id = Some(s.id);
        ex.flags = s.flags | extra;
        if self.client.is_none() {
            ex.flags |= Flags::SIDE_UNKNOWN;
        }
        ex.reset_code = s.reset_code;
        let [h0, h1] = s.halves;
        let (req, resp) = if client == Direction::Egress {
            (h0, h1)
        } else {
            (h1, h0)
        };
        // One pass over each list (names are lowercase in HTTP/2, §8.2.1).
        let rq = Scan::of(req.headers.as_ref());
        let rs = Scan::of(resp.headers.as_ref());
        let rt = Scan::of(resp.trailers.as_ref());
        let qt = Scan::of(req.trailers.as_ref());
        if req.headers.is_some() {
            // Into the (possibly recycled) record's own buffers.
            push_text(&mut ex.method, rq.method);
            push_text(&mut ex.path, rq.path);
            if let Some(authority) = rq.authority.or(rq.host) {
                ex.set_authority(authority);
            }
        } else if s.upgrade.is_none() {
            ex.flags |= Flags::NO_REQUEST;
        }
        if let Some((m, p, a)) = s.upgrade {
            ex.method = m;
            ex.path = p;
            ex.authority = a;
        }
        ex.status = rs.status.and_then(parse_status);
        if !resp.interim.is_empty() {
            ex.interim = resp.interim.clone();
        }
        if rq.grpc || rs.grpc {
            // Status in trailers, or in the headers of a trailers-only response.
            let (status, message) = if rt.grpc_status.is_some() {
                (rt.grpc_status, rt.grpc_message)
            } else {
                (rs.grpc_status, rs.grpc_message)
            };
            ex.grpc = Some(grpc::build(grpc::CallParts {
                path: &ex.path,
                req: &req.grpc,
                resp: &resp.grpc,
                status,
                message,
            }));
        }
        if rq.unknown || rs.unknown || rt.unknown || qt.unknown {
            ex.flags |= Flags::HEADERS_PARTIAL;
        }
        let resp_seen = resp.seen;
        // The lists a recycled record brings serve the next header blocks.
        let old = std::mem::replace(&mut ex.request, message(req));
        self.keep_lists(old);
        if resp_seen {
            let old = std::mem::replace(ex.response_mut(), message(resp));
            self.keep_lists(old);
        }
        ex
    }

    fn keep_lists(&mut self, old: Message) {
        for mut h in [old.headers, old.trailers] {
            if self.spare.len() < SPARE_LISTS {
                h.clear();
                self.spare.push(h);
            }
        }
    }
}

/// Whether `buf`, the first bytes of a direction of a connection joined
/// mid-way, starts with HTTP/2 frames: a chain of plausible frame headers
/// (the same strict check as a resync). `None`: too few bytes to tell.
pub fn starts_with_frames(buf: &[u8]) -> Option<bool> {
    chain(buf, RESYNC_MAX_FRAME, true, None)
}

/// Is `buf` the start of a chain of [`RESYNC_CHAIN`] plausible frames?
/// `None`: cannot tell yet (the chain runs past the end of `buf`).
///
/// A chain of at least two frames ending exactly where `buf` ends is also
/// accepted (writes carry whole frames far more often than not), and a
/// single frame if `at_write_start` says `buf` starts at a write.
/// `max_stream`: stream ids above it are implausible.
fn chain(buf: &[u8], max_len: u32, at_write_start: bool, max_stream: Option<u32>) -> Option<bool> {
    let mut prev = FrameHeader::parse(buf)?;
    let stream_ok = |h: &FrameHeader| max_stream.is_none_or(|m| h.stream <= m);
    if !prev.plausible(max_len) || !stream_ok(&prev) {
        return Some(false);
    }
    let mut end = FRAME_HEADER_LEN + prev.len as usize;
    for i in 1..RESYNC_CHAIN {
        // Two chained frames ending exactly where the input ends.
        if end == buf.len() && (i > 1 || at_write_start) {
            return Some(true);
        }
        let next = FrameHeader::parse(buf.get(end..)?)?;
        if !prev.plausible_successor(&next, max_len) || !stream_ok(&next) {
            return Some(false);
        }
        end += FRAME_HEADER_LEN + next.len as usize;
        prev = next;
    }
    Some(true)
}

fn side_of(client: Direction) -> Side {
    match client {
        Direction::Egress => Side::Client,
        Direction::Ingress => Side::Server,
    }
}

fn message(h: Half) -> Message {
    Message {
        headers: h.headers.unwrap_or_default(),
        trailers: h.trailers.unwrap_or_default(),
        body_len: h.body_len,
        body_preview: h.preview,
        first_ns: h.first_ns,
        last_ns: h.last_ns,
        wire_len: h.wire_len,
    }
}

fn push_text(dst: &mut String, v: Option<&[u8]>) {
    if let Some(v) = v {
        match std::str::from_utf8(v) {
            Ok(s) => dst.push_str(s),
            Err(_) => dst.push_str(&String::from_utf8_lossy(v)),
        }
    }
}

fn parse_status(v: &[u8]) -> Option<u16> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The fields an exchange is built from, found in one pass over a list
/// (first occurrence; fields flagged unknown are never used).
#[derive(Default)]
struct Scan<'a> {
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    grpc: bool,
    grpc_status: Option<&'a [u8]>,
    grpc_message: Option<&'a [u8]>,
    unknown: bool,
}

impl<'a> Scan<'a> {
    fn of(h: Option<&'a Headers>) -> Scan<'a> {
        let mut s = Scan::default();
        let Some(h) = h else {
            return s;
        };
        for (name, value, flags) in h.iter() {
            if flags & FIELD_UNKNOWN != 0 {
                s.unknown = true;
                continue;
            }
            let slot = match name {
                b":method" => &mut s.method,
                b":path" => &mut s.path,
                b":authority" => &mut s.authority,
                b"host" => &mut s.host,
                b":status" => &mut s.status,
                b"grpc-status" => &mut s.grpc_status,
                b"grpc-message" => &mut s.grpc_message,
                b"content-type" => {
                    s.grpc |= grpc::is_grpc_content_type(value);
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        s
    }
}

/// Which pseudo-header fields a block carries (only known fields count).
struct Pseudo {
    any: bool,
    method: bool,
    status: Option<u16>,
    /// `grpc-status`: only servers send it.
    grpc_status: bool,
}

impl Pseudo {
    fn of(h: &Headers) -> Pseudo {
        let mut p = Pseudo {
            any: false,
            method: false,
            status: None,
            grpc_status: false,
        };
        for (name, value, flags) in h.iter() {
            if flags & FIELD_UNKNOWN != 0 {
                continue;
            }
            if name == b"grpc-status" {
                p.grpc_status = true;
            }
            if !name.starts_with(b":") {
                continue;
            }
            p.any = true;
            match name {
                b":method" => p.method = true,
                b":status" => {
                    p.status = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                }
                _ => {}
            }
        }
        p
    }
}

/// Decode an `HTTP2-Settings` header value (RFC 7540 §3.2.1: base64url of a
/// SETTINGS payload, no padding). `None` if malformed.
pub fn decode_http2_settings(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in value {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if out.len() % 6 != 0 {
        return None;
    }
    Some(out)
}
