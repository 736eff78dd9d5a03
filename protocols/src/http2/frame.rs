//! HTTP/2 frame headers and fixed-size payload fields (RFC 9113 §4, §6).
//!
//! ```text
//! +-----------------------------------------------+
//! |                 Length (24)                   |
//! +---------------+---------------+---------------+
//! |   Type (8)    |   Flags (8)   |
//! +-+-------------+---------------+-------------------------------+
//! |R|                 Stream Identifier (31)                      |
//! +=+=============================================================+
//! |                   Frame Payload (0...)                      ...
//! +---------------------------------------------------------------+
//! ```

/// RFC 9113 §4.1: the frame header is 9 octets.
pub const FRAME_HEADER_LEN: usize = 9;

/// RFC 9113 §3.4: the client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE starts at 2^14 ...
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;
/// ... and may be raised to 2^24-1, the largest length the header can carry.
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;

/// RFC 9113 §6: frame type codes. Unknown types are ignored (§4.1, §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    Goaway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl FrameType {
    pub fn from_u8(t: u8) -> FrameType {
        match t {
            0x0 => FrameType::Data,
            0x1 => FrameType::Headers,
            0x2 => FrameType::Priority,
            0x3 => FrameType::RstStream,
            0x4 => FrameType::Settings,
            0x5 => FrameType::PushPromise,
            0x6 => FrameType::Ping,
            0x7 => FrameType::Goaway,
            0x8 => FrameType::WindowUpdate,
            0x9 => FrameType::Continuation,
            t => FrameType::Unknown(t),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            FrameType::Data => 0x0,
            FrameType::Headers => 0x1,
            FrameType::Priority => 0x2,
            FrameType::RstStream => 0x3,
            FrameType::Settings => 0x4,
            FrameType::PushPromise => 0x5,
            FrameType::Ping => 0x6,
            FrameType::Goaway => 0x7,
            FrameType::WindowUpdate => 0x8,
            FrameType::Continuation => 0x9,
            FrameType::Unknown(t) => t,
        }
    }
}

/// DATA, HEADERS (RFC 9113 §6.1, §6.2).
pub const END_STREAM: u8 = 0x1;
/// SETTINGS, PING (§6.5, §6.7).
pub const ACK: u8 = 0x1;
/// HEADERS, PUSH_PROMISE, CONTINUATION (§6.2, §6.6, §6.10).
pub const END_HEADERS: u8 = 0x4;
/// DATA, HEADERS, PUSH_PROMISE.
pub const PADDED: u8 = 0x8;
/// HEADERS: exclusive flag, stream dependency and weight follow (§6.2).
pub const PRIORITY: u8 = 0x20;

/// RFC 9113 §6.5.2 setting identifiers we use.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: FrameType,
    pub flags: u8,
    pub stream: u32,
    /// The reserved bit R: ignored on receipt (§4.1), but a resync
    /// candidate with it set is rejected.
    pub reserved: bool,
}

impl FrameHeader {
    /// Parse the 9-octet header at the start of `buf`; `None` if shorter.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; FRAME_HEADER_LEN] = buf.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        let sid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: FrameType::from_u8(b[3]),
            flags: b[4],
            stream: sid & 0x7fff_ffff,
            reserved: sid & 0x8000_0000 != 0,
        })
    }

    /// Serialize (tests and fixtures build frames with this).
    pub fn write(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.len.to_be_bytes()[1..]);
        dst.push(self.kind.as_u8());
        dst.push(self.flags);
        let r = if self.reserved { 0x8000_0000 } else { 0 };
        dst.extend_from_slice(&(self.stream | r).to_be_bytes());
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Octets before the payload proper: pad length, priority fields,
    /// promised stream id (RFC 9113 §6.1, §6.2, §6.6).
    pub fn prefix_len(&self) -> u32 {
        let pad = if self.has(PADDED) { 1 } else { 0 };
        match self.kind {
            FrameType::Data => pad,
            FrameType::Headers => pad + if self.has(PRIORITY) { 5 } else { 0 },
            FrameType::PushPromise => pad + 4,
            _ => 0,
        }
    }

    /// The checks every frame must pass for us to trust its framing: fixed
    /// lengths and stream-id rules of RFC 9113 §6. A frame failing them
    /// means the bytes are not (or no longer) HTTP/2 frames as we think.
    pub fn well_formed(&self) -> bool {
        let stream_frame = self.stream != 0;
        match self.kind {
            FrameType::Data | FrameType::Headers | FrameType::PushPromise => {
                stream_frame && self.len >= self.prefix_len()
            }
            FrameType::Continuation => stream_frame,
            FrameType::Priority => stream_frame && self.len == 5,
            FrameType::RstStream => stream_frame && self.len == 4,
            FrameType::Settings => {
                !stream_frame
                    && if self.has(ACK) {
                        self.len == 0
                    } else {
                        self.len.is_multiple_of(6)
                    }
            }
            FrameType::Ping => !stream_frame && self.len == 8,
            FrameType::Goaway => !stream_frame && self.len >= 8,
            FrameType::WindowUpdate => self.len == 4,
            FrameType::Unknown(_) => true,
        }
    }

    /// The strict check used to find frame boundaries without context (late
    /// join, after lost bytes): well formed, a known type that can start a
    /// sequence (not CONTINUATION), only flags defined for the type, R clear,
    /// a length within `max_len`, and not an empty DATA frame without
    /// END_STREAM or an empty HEADERS frame: both are legal but useless, and
    /// runs of zero octets (padding) followed by a real header look like them.
    pub fn plausible(&self, max_len: u32) -> bool {
        let empty = self.len == self.prefix_len();
        match self.kind {
            FrameType::Data if empty && !self.has(END_STREAM) => return false,
            FrameType::Headers if empty => return false,
            _ => {}
        }
        let defined = match self.kind {
            FrameType::Data => END_STREAM | PADDED,
            FrameType::Headers => END_STREAM | END_HEADERS | PADDED | PRIORITY,
            FrameType::PushPromise => END_HEADERS | PADDED,
            FrameType::Settings | FrameType::Ping => ACK,
            FrameType::Priority
            | FrameType::RstStream
            | FrameType::Goaway
            | FrameType::WindowUpdate => 0,
            FrameType::Continuation | FrameType::Unknown(_) => return false,
        };
        !self.reserved && self.len <= max_len && self.flags & !defined == 0 && self.well_formed()
    }

    /// Strict check of the frame following a plausible `self`: a header block
    /// left open must be continued on the same stream.
    pub fn plausible_successor(&self, next: &FrameHeader, max_len: u32) -> bool {
        let open_block = matches!(self.kind, FrameType::Headers | FrameType::PushPromise)
            && !self.has(END_HEADERS);
        if open_block {
            next.kind == FrameType::Continuation
                && next.stream == self.stream
                && !next.reserved
                && next.flags & !END_HEADERS == 0
                && next.len <= max_len
        } else {
            next.plausible(max_len)
        }
    }
}

/// A 31-bit stream id from 4 octets, R bit dropped (RFC 9113 §6.6, §6.8).
pub fn stream_id(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b) & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write_round_trip() {
        let h = FrameHeader {
            len: MAX_FRAME_SIZE_LIMIT,
            kind: FrameType::Unknown(0xfa),
            flags: 0xff,
            stream: 0x7fff_ffff,
            reserved: true,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        assert_eq!(b.len(), FRAME_HEADER_LEN);
        assert_eq!(FrameHeader::parse(&b), Some(h));
        assert_eq!(FrameHeader::parse(&b[..8]), None);
    }

    #[test]
    fn strict_check() {
        let settings = FrameHeader::parse(&[0, 0, 12, 4, 0, 0, 0, 0, 0]).unwrap();
        assert!(settings.plausible(DEFAULT_MAX_FRAME_SIZE));
        let bad_len = FrameHeader::parse(&[0, 0, 13, 4, 0, 0, 0, 0, 0]).unwrap();
        assert!(!bad_len.plausible(DEFAULT_MAX_FRAME_SIZE));
        let bad_flag = FrameHeader::parse(&[0, 0, 12, 4, 2, 0, 0, 0, 0]).unwrap();
        assert!(!bad_flag.plausible(DEFAULT_MAX_FRAME_SIZE));
        let cont = FrameHeader::parse(&[0, 0, 1, 9, 4, 0, 0, 0, 1]).unwrap();
        assert!(!cont.plausible(DEFAULT_MAX_FRAME_SIZE));
        let headers = FrameHeader::parse(&[0, 0, 1, 1, 0, 0, 0, 0, 1]).unwrap();
        assert!(headers.plausible_successor(&cont, DEFAULT_MAX_FRAME_SIZE));
        assert!(!headers.plausible_successor(&settings, DEFAULT_MAX_FRAME_SIZE));
        let big = FrameHeader::parse(&[0, 0x40, 1, 0, 0, 0, 0, 0, 1]).unwrap();
        assert!(!big.plausible(DEFAULT_MAX_FRAME_SIZE));
        assert!(big.plausible(MAX_FRAME_SIZE_LIMIT));
    }
}
