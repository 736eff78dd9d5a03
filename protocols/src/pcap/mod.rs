//! Capture files (pcap, pcapng) to per-connection TCP segments, so recorded
//! traffic reaches the reassembly layer the way live kernel events do: each
//! payload with its connection, direction and byte position in the stream.
//!
//! Three sans-IO stages, usable one by one:
//! - [`file::Reader`]: file bytes to link-layer [`file::Frame`]s;
//! - [`net::decode`]: a frame to a [`net::TcpPacket`] (Ethernet with VLAN tags,
//!   BSD loopback, raw IP, Linux SLL/SLL2; IPv4 with options, IPv6 with
//!   extension headers);
//! - [`tcp::Tracker`]: packets to [`tcp::Segment`]s of [`tcp::Connection`]s.
//!
//! [`Capture::decode`] runs all three over a whole file in memory.
//!
//! Nothing is reassembled: retransmitted, overlapping and out-of-order
//! segments are passed on as captured, with their true positions.

pub mod file;
pub mod net;
pub mod tcp;

use std::fmt;

pub use file::{FileKind, Frame, LinkType, Parsed, Reader, Skip};
pub use net::{Decoded, TcpFlags, TcpPacket, decode};
pub use tcp::{ClientBy, ConnId, Connection, Dir, Segment, Tracked, Tracker};

/// Why a capture file could not be read (further).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcapError {
    /// The first four bytes are neither a pcap magic number nor a pcapng
    /// Section Header Block (shown big-endian).
    UnknownFormat { magic: u32 },
    /// A version of the format this reader does not know.
    UnsupportedVersion { offset: u64, major: u16, minor: u16 },
    /// A pcap record claims more than [`file::MAX_RECORD_LEN`] bytes.
    BadRecordLength { offset: u64, len: u32 },
    /// A pcapng block length is too small, not a multiple of 4, too large,
    /// or differs from the copy at the block's end.
    BadBlockLength { offset: u64, len: u32 },
    /// A pcapng Section Header Block without a valid byte-order magic.
    BadSectionHeader { offset: u64 },
    /// A pcapng section describes more than [`file::MAX_INTERFACES`] interfaces.
    TooManyInterfaces { offset: u64 },
    /// The file ends inside a header or record; `needed` bytes from `offset`
    /// were required, `have` were there.
    Truncated {
        offset: u64,
        needed: usize,
        have: usize,
    },
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::UnknownFormat { magic } => write!(
                f,
                "not a pcap or pcapng file (starts with {magic:#010x}); \
                 convert it with `editcap -F pcapng`"
            ),
            PcapError::UnsupportedVersion {
                offset,
                major,
                minor,
            } => write!(
                f,
                "unsupported file format version {major}.{minor} at byte {offset}"
            ),
            PcapError::BadRecordLength { offset, len } => write!(
                f,
                "pcap record at byte {offset} claims {len} bytes: the file is corrupt from there on"
            ),
            PcapError::BadBlockLength { offset, len } => write!(
                f,
                "pcapng block at byte {offset} has an invalid length {len}: the file is corrupt from there on"
            ),
            PcapError::BadSectionHeader { offset } => write!(
                f,
                "pcapng section header at byte {offset} has no valid byte-order magic"
            ),
            PcapError::TooManyInterfaces { offset } => write!(
                f,
                "pcapng section describes more than {} interfaces (block at byte {offset})",
                file::MAX_INTERFACES
            ),
            PcapError::Truncated {
                offset,
                needed,
                have,
            } => write!(
                f,
                "file ends inside the record at byte {offset} ({have} of {needed} bytes present); \
                 the packets before it were read"
            ),
        }
    }
}

impl std::error::Error for PcapError {}

/// What was read and what was passed over, never silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames read from the file.
    pub packets: u64,
    /// Frames holding a TCP segment.
    pub tcp: u64,
    /// Frames holding something else (UDP, ICMP, ARP, ...).
    pub non_tcp: u64,
    /// IP fragments (not reassembled, dropped).
    pub fragments: u64,
    /// Frames whose headers are inconsistent or cut before the TCP payload,
    /// and pcapng packet blocks that contradict themselves.
    pub malformed: u64,
    /// Frames the capture cut (captured length below the wire length).
    pub truncated: u64,
    /// Frames of a link type this reader does not know.
    pub unknown_link: u64,
    /// pcapng blocks of types that carry no packets for us.
    pub other_blocks: u64,
    /// TCP segments with neither payload nor SYN/FIN/RST.
    pub pure_acks: u64,
    /// TCP segments whose every byte lay before their stream's start.
    pub before_start: u64,
}

/// A whole capture file, decoded. Payloads borrow from the file's bytes.
#[derive(Clone, Debug)]
pub struct Capture<'a> {
    pub kind: FileKind,
    /// Segments in capture order.
    pub segments: Vec<Segment<'a>>,
    /// Connections in order of first appearance, indexed by [`ConnId::index`].
    pub connections: Vec<Connection>,
    pub counters: Counters,
    /// Why reading stopped before the end of the file, if it did (a truncated
    /// last record, a corrupt length). Everything before it was decoded.
    pub stopped: Option<PcapError>,
}

impl<'a> Capture<'a> {
    /// Decode a whole file. Fails only when the file header itself is not
    /// pcap or pcapng; later trouble ends the walk and is kept in
    /// [`Capture::stopped`].
    pub fn decode(data: &'a [u8]) -> Result<Capture<'a>, PcapError> {
        let mut reader = Reader::new();
        let mut tracker = Tracker::new();
        let mut counters = Counters::default();
        let mut segments = Vec::new();
        let mut stopped = None;
        let mut at = 0usize;
        while at < data.len() {
            let rest = &data[at..];
            match reader.next(rest) {
                Ok(Parsed::NeedMore { needed }) => {
                    stopped = Some(PcapError::Truncated {
                        offset: at as u64,
                        needed,
                        have: rest.len(),
                    });
                    break;
                }
                Ok(Parsed::Skipped { consumed, why }) => {
                    match why {
                        Skip::Header => {}
                        Skip::OtherBlock => counters.other_blocks += 1,
                        Skip::BadPacket => counters.malformed += 1,
                    }
                    at += consumed;
                }
                Ok(Parsed::Frame { consumed, frame }) => {
                    at += consumed;
                    counters.packets += 1;
                    if (frame.data.len() as u64) < frame.orig_len as u64 {
                        counters.truncated += 1;
                    }
                    match decode(frame.link, frame.data) {
                        Decoded::Tcp(p) => {
                            counters.tcp += 1;
                            match tracker.push(frame.ts_ns, &p) {
                                Tracked::Segment(s) => segments.push(s),
                                Tracked::PureAck => counters.pure_acks += 1,
                                Tracked::BeforeStart => counters.before_start += 1,
                                Tracked::TooManyConnections => counters.malformed += 1,
                            }
                        }
                        Decoded::NotTcp => counters.non_tcp += 1,
                        Decoded::Fragment => counters.fragments += 1,
                        Decoded::UnknownLink(_) => counters.unknown_link += 1,
                        Decoded::Malformed(_) => counters.malformed += 1,
                    }
                }
                Err(e) if at == 0 => return Err(e),
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
        }
        let kind = match reader.kind() {
            Some(k) => k,
            None => {
                return Err(stopped.unwrap_or(PcapError::Truncated {
                    offset: 0,
                    needed: 4,
                    have: data.len(),
                }));
            }
        };
        Ok(Capture {
            kind,
            segments,
            connections: tracker.into_connections(),
            counters,
            stopped,
        })
    }

    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.connections.get(id.index())
    }

    /// The segments of one direction of one connection, in capture order.
    pub fn segments_of(&self, id: ConnId, dir: Dir) -> impl Iterator<Item = &Segment<'a>> + '_ {
        self.segments
            .iter()
            .filter(move |s| s.conn == id && s.dir == dir)
    }
}

#[cfg(test)]
mod tests;
