//! TCP connections and stream positions: each segment gets its connection,
//! its direction and the byte offset of its payload in that direction's
//! stream. Nothing is reassembled or de-duplicated here: retransmissions and
//! reordering reach the consumer with their true positions, and the
//! reassembly layer (position-keyed) sorts them out.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::net::{TcpFlags, TcpPacket};

/// Index of a connection in [`Tracker::connections`], in order of first
/// appearance in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl ConnId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Which way a segment travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to server: requests.
    ToServer,
    /// Server to client: responses.
    ToClient,
}

impl Dir {
    /// 0 for [`Dir::ToServer`], 1 for [`Dir::ToClient`]: an index into
    /// per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    pub fn opposite(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }

    pub fn from_client(self) -> bool {
        self == Dir::ToServer
    }
}

/// How the client end of a connection was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientBy {
    /// It sent the SYN (without ACK).
    Syn,
    /// The other end sent a SYN+ACK (the SYN itself was not captured).
    SynAck,
    /// No handshake seen: the end with the higher port is the client, since
    /// servers listen on fixed, usually lower ports and clients get ephemeral
    /// ones (32768-60999 on Linux, 49152-65535 elsewhere). Equal ports: the
    /// sender of the first captured segment is the client.
    Ports,
}

/// One TCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_by: ClientBy,
    /// Timestamps (ns) of the first and last captured segment.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Per direction ([`Dir::index`]): the SYN was seen, so positions count
    /// from the initial sequence number; otherwise from the first sequence
    /// number captured.
    pub syn: [bool; 2],
    /// Per direction: a FIN was seen.
    pub fin: [bool; 2],
    /// Per direction: a RST was seen.
    pub rst: [bool; 2],
    /// Per direction: segments (with payload or SYN/FIN/RST) passed on.
    pub segments: [u64; 2],
    /// Per direction: payload bytes on the wire, counting retransmissions.
    pub wire_bytes: [u64; 2],
    /// Per direction: payload bytes that were not captured (snap length).
    pub cut_bytes: [u64; 2],
    /// Per direction: payload bytes dropped because they lay before the
    /// stream's start (retransmissions of data sent before capture began,
    /// when the handshake was not captured).
    pub before_start_bytes: [u64; 2],
    /// Per direction: highest end position seen (`pos + len`).
    pub end: [u64; 2],
}

impl Connection {
    pub fn dir_of(&self, src: SocketAddr) -> Dir {
        if src == self.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Both directions closed (FIN each way) or reset.
    pub fn closed(&self) -> bool {
        (self.fin[0] && self.fin[1]) || self.rst[0] || self.rst[1]
    }
}

/// A TCP segment placed in its connection's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub conn: ConnId,
    pub dir: Dir,
    /// Offset of `payload[0]` in this direction's byte stream: counted from
    /// ISN + 1 when the SYN was seen, else from the first sequence number
    /// captured; 64-bit, so it keeps growing across sequence wrap-around.
    pub pos: u64,
    pub ts_ns: u64,
    /// The captured payload.
    pub payload: &'a [u8],
    /// The payload's length on the wire. Bytes `payload.len()..wire_len`
    /// (from `pos`) were not captured (snap length): a known gap.
    pub wire_len: u32,
    pub flags: TcpFlags,
}

impl Segment<'_> {
    pub fn syn(&self) -> bool {
        self.flags.syn()
    }
    pub fn fin(&self) -> bool {
        self.flags.fin()
    }
    pub fn rst(&self) -> bool {
        self.flags.rst()
    }
    /// The captured payload is shorter than the wire payload.
    pub fn cut(&self) -> bool {
        (self.payload.len() as u64) < self.wire_len as u64
    }
    /// Stream position just past this segment's wire payload.
    pub fn end(&self) -> u64 {
        self.pos + self.wire_len as u64
    }
}

/// Per-direction sequence state.
#[derive(Clone, Copy, Debug, Default)]
struct Seq {
    /// Sequence number of stream position 0 (ISN + 1, or the first seen).
    base: Option<u32>,
}

/// Endpoints in a fixed order, so both directions find the same entry.
type Key = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b { (a, b) } else { (b, a) }
}

/// Follows TCP connections across a capture.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    conns: Vec<Connection>,
    seqs: Vec<[Seq; 2]>,
    /// The current connection of each 4-tuple.
    by_key: HashMap<Key, ConnId>,
}

/// Outcome of [`Tracker::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked<'a> {
    Segment(Segment<'a>),
    /// A pure ACK (no payload, no SYN/FIN/RST): it moves no stream, so it is
    /// not passed on.
    PureAck,
    /// Every payload byte lay before the start of the stream (see
    /// [`Connection::before_start_bytes`]).
    BeforeStart,
    /// The tracker holds `u32::MAX` connections already.
    TooManyConnections,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every connection seen so far, indexed by [`ConnId::index`].
    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    pub fn into_connections(self) -> Vec<Connection> {
        self.conns
    }

    /// Place one captured TCP packet.
    pub fn push<'a>(&mut self, ts_ns: u64, p: &TcpPacket<'a>) -> Tracked<'a> {
        let k = key(p.src, p.dst);
        let flags = p.flags;
        let is_syn = flags.syn() && !flags.ack();
        let id = match self.by_key.get(&k).copied() {
            Some(id) if !(is_syn && self.starts_new(id, p)) => id,
            _ => match self.open(ts_ns, p) {
                Some(id) => id,
                None => return Tracked::TooManyConnections,
            },
        };
        let i = id.index();
        let conn = &mut self.conns[i];
        let dir = conn.dir_of(p.src);
        let d = dir.index();
        conn.last_ns = conn.last_ns.max(ts_ns);
        conn.first_ns = conn.first_ns.min(ts_ns);
        if flags.fin() {
            conn.fin[d] = true;
        }
        if flags.rst() {
            conn.rst[d] = true;
        }

        // The payload starts one past the SYN's own sequence number.
        let data_seq = p.seq.wrapping_add(flags.syn() as u32);
        let seq = &mut self.seqs[i][d];
        if flags.syn() && !conn.syn[d] {
            // A SYN fixes the origin even if data was seen before it (it
            // cannot have been, in a sane capture; the SYN wins).
            conn.syn[d] = true;
            seq.base = Some(data_seq);
        }
        let base = *seq.base.get_or_insert(data_seq);

        if p.wire_len == 0 && flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) == 0 {
            return Tracked::PureAck;
        }

        // Unwrap the 32-bit offset to the 64-bit position nearest the highest
        // one seen: a segment is never 2 GiB away from the stream's front.
        let off = data_seq.wrapping_sub(base);
        let reference = conn.end[d];
        let delta = off.wrapping_sub(reference as u32) as i32 as i64;
        let mut pos = reference as i64 + delta;
        let mut payload = p.payload;
        let mut wire_len = p.wire_len;
        if pos < 0 {
            // Before position 0: keep only what lies at or after it.
            let skip = pos.unsigned_abs();
            let before = skip.min(wire_len as u64);
            conn.before_start_bytes[d] += before;
            if skip >= wire_len as u64 && wire_len > 0 {
                return Tracked::BeforeStart;
            }
            payload = payload.get(before as usize..).unwrap_or(&[]);
            wire_len -= before as u32;
            pos = 0;
        }
        let pos = pos as u64;
        conn.segments[d] += 1;
        conn.wire_bytes[d] += wire_len as u64;
        conn.cut_bytes[d] += (wire_len as u64).saturating_sub(payload.len() as u64);
        conn.end[d] = conn.end[d].max(pos + wire_len as u64);
        Tracked::Segment(Segment {
            conn: id,
            dir,
            pos,
            ts_ns,
            payload,
            wire_len,
            flags,
        })
    }

    /// A SYN on a 4-tuple that already has a connection opens a new one when
    /// the old one is over (FIN or RST seen: port reuse), or when it carries a
    /// different initial sequence number than the SYN that opened the old one
    /// (a new attempt). A retransmitted SYN (same ISN) stays in the old one.
    fn starts_new(&self, id: ConnId, p: &TcpPacket<'_>) -> bool {
        let conn = &self.conns[id.index()];
        let over = conn.fin.iter().any(|&f| f) || conn.rst.iter().any(|&r| r);
        if over {
            return true;
        }
        let d = conn.dir_of(p.src).index();
        match (conn.syn[d], self.seqs[id.index()][d].base) {
            (true, Some(base)) => base != p.seq.wrapping_add(1),
            // Data was seen on this tuple without a handshake, then a SYN:
            // the old connection ended unseen.
            (false, Some(_)) => true,
            (_, None) => false,
        }
    }

    fn open(&mut self, ts_ns: u64, p: &TcpPacket<'_>) -> Option<ConnId> {
        let id = ConnId(u32::try_from(self.conns.len()).ok()?);
        let f = p.flags;
        let (client, server, client_by) = if f.syn() && !f.ack() {
            (p.src, p.dst, ClientBy::Syn)
        } else if f.syn() && f.ack() {
            (p.dst, p.src, ClientBy::SynAck)
        } else if p.src.port() < p.dst.port() {
            (p.dst, p.src, ClientBy::Ports)
        } else {
            (p.src, p.dst, ClientBy::Ports)
        };
        self.conns.push(Connection {
            id,
            client,
            server,
            client_by,
            first_ns: ts_ns,
            last_ns: ts_ns,
            syn: [false; 2],
            fin: [false; 2],
            rst: [false; 2],
            segments: [0; 2],
            wire_bytes: [0; 2],
            cut_bytes: [0; 2],
            before_start_bytes: [0; 2],
            end: [0; 2],
        });
        self.seqs.push([Seq::default(); 2]);
        self.by_key.insert(key(p.src, p.dst), id);
        Some(id)
    }
}
