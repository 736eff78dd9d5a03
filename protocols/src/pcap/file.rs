//! The capture file formats: classic pcap and pcapng, turned into link-layer
//! frames with a timestamp and their link type.
//!
//! Sans-IO: [`Reader::next`] is handed the unconsumed bytes of the file and says
//! how many it used. Running out of bytes is [`Parsed::NeedMore`], never an error;
//! the caller decides whether the file really ended there (see
//! [`super::Capture::decode`]).
//!
//! ```text
//! pcap:   file header (24 bytes) | record header (16) + frame | record header + frame | ...
//! pcapng: block | block | ...    where a block is
//!         type u32 | total length u32 | body ... | total length u32 (again)
//! ```

use super::PcapError;

/// Largest frame or block we accept. Real link types stop at 256 KiB (USB and
/// D-Bus captures go higher, 128 MiB, but carry no TCP); anything beyond this
/// is a corrupt length, and waiting for that many bytes would stall a stream.
pub const MAX_RECORD_LEN: u32 = 16 << 20;

/// Most interfaces one pcapng section may describe. Each costs a few bytes of
/// state; a garbage file could otherwise make us allocate per block forever.
pub const MAX_INTERFACES: usize = 4096;

/// A link-layer header type (the LINKTYPE_* registry, as stored in files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3, possibly with 802.1Q / 802.1ad tags.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP as some old systems wrote it (DLT_RAW was 12 or 14 there).
    pub const RAW_OLD_12: LinkType = LinkType(12);
    pub const RAW_OLD_14: LinkType = LinkType(14);
    /// Raw IP: the frame is an IPv4 or IPv6 packet.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family, network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux "cooked" capture v1 (16-byte header), e.g. `tcpdump -i any`.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux "cooked" capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch (the file's clock).
    pub ts_ns: u64,
    pub link: LinkType,
    /// pcapng interface index (0 for classic pcap).
    pub interface: u32,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire; larger than `data.len()` when the
    /// capture cut it.
    pub orig_len: u32,
}

/// What one call to [`Reader::next`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The next header or record is incomplete: call again with at least
    /// `needed` bytes (counted from the same start). Nothing was consumed.
    NeedMore { needed: usize },
    /// A frame, using `consumed` bytes of the input.
    Frame { consumed: usize, frame: Frame<'a> },
    /// `consumed` bytes held no frame: a file or section header, an interface
    /// description, statistics, a block type we do not read.
    Skipped { consumed: usize, why: Skip },
}

/// Why bytes were consumed without giving a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// File header, section header, interface description: state, not data.
    Header,
    /// A pcapng block type that carries no packets for us (statistics, name
    /// resolution, custom, decryption secrets, unknown types).
    OtherBlock,
    /// A packet block naming an interface the section never described, or
    /// whose lengths contradict its block: counted as malformed.
    BadPacket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        match self {
            Endian::Little => u16::from_le_bytes(v),
            Endian::Big => u16::from_be_bytes(v),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Endian::Little => u32::from_le_bytes(v),
            Endian::Big => u32::from_be_bytes(v),
        }
    }

    fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        match self {
            Endian::Little => u64::from_le_bytes(v),
            Endian::Big => u64::from_be_bytes(v),
        }
    }
}

/// How timestamps of one interface are scaled to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsUnit {
    /// Units of 10^-n seconds.
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

impl TsUnit {
    fn to_ns(self, ticks: u64, offset_s: i64) -> u64 {
        let ns: u128 = match self {
            TsUnit::Decimal(n) if n <= 9 => ticks as u128 * 10u128.pow(9 - n as u32),
            // Finer than a nanosecond: divide. 10^38 overflows u128, so past
            // that every tick count rounds to 0 anyway.
            TsUnit::Decimal(n) => match 10u128.checked_pow(n as u32 - 9) {
                Some(d) => ticks as u128 / d,
                None => 0,
            },
            TsUnit::Binary(n) if n < 64 => (ticks as u128 * 1_000_000_000) >> n,
            TsUnit::Binary(_) => 0,
        };
        let off = offset_s as i128 * 1_000_000_000;
        let total = ns as i128 + off;
        total.clamp(0, u64::MAX as i128) as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    unit: TsUnit,
    offset_s: i64,
}

#[derive(Clone, Debug)]
enum Format {
    /// Nothing read yet.
    Unknown,
    Pcap {
        endian: Endian,
        nanos: bool,
        /// Kuznetsov's patched format: 8 more bytes per record header.
        modified: bool,
        link: LinkType,
    },
    Pcapng {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// Which file format the reader found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Pcap,
    Pcapng,
}

/// Classic pcap magic numbers, as read little-endian from the first 4 bytes.
const PCAP_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_NANOS: u32 = 0xa1b2_3c4d;
const PCAP_MODIFIED: u32 = 0xa1b2_cd34;
const PCAP_HEADER_LEN: usize = 24;

/// pcapng block types (draft-ietf-opsawg-pcapng §4).
const BT_SHB: u32 = 0x0a0d_0d0a;
const BT_IDB: u32 = 0x0000_0001;
const BT_OPB: u32 = 0x0000_0002; // obsolete Packet Block
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Block type + total length at the front, total length again at the end.
const BLOCK_OVERHEAD: usize = 12;

/// IDB options we use (§4.2).
const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Reads a pcap or pcapng file frame by frame.
#[derive(Clone, Debug)]
pub struct Reader {
    format: Format,
    /// Bytes consumed so far, for error offsets.
    offset: u64,
    /// Timestamp of the last frame: Simple Packet Blocks have none of their
    /// own and get this one.
    last_ts_ns: u64,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    pub fn new() -> Self {
        Reader {
            format: Format::Unknown,
            offset: 0,
            last_ts_ns: 0,
        }
    }

    /// The format, once the file header has been read.
    pub fn kind(&self) -> Option<FileKind> {
        match self.format {
            Format::Unknown => None,
            Format::Pcap { .. } => Some(FileKind::Pcap),
            Format::Pcapng { .. } => Some(FileKind::Pcapng),
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Read the next record from `input`, the unconsumed rest of the file.
    ///
    /// An error means the file cannot be followed past this point (framing is
    /// lost); frames returned before it stay valid.
    pub fn next<'a>(&mut self, input: &'a [u8]) -> Result<Parsed<'a>, PcapError> {
        let r = match &self.format {
            Format::Unknown => self.file_header(input),
            Format::Pcap {
                endian,
                nanos,
                modified,
                link,
            } => {
                let (e, n, m, l) = (*endian, *nanos, *modified, *link);
                self.pcap_record(input, e, n, m, l)
            }
            Format::Pcapng { endian, .. } => {
                let e = *endian;
                self.pcapng_block(input, e)
            }
        }?;
        match &r {
            Parsed::Frame { consumed, frame } => {
                self.offset += *consumed as u64;
                self.last_ts_ns = frame.ts_ns;
            }
            Parsed::Skipped { consumed, .. } => self.offset += *consumed as u64,
            Parsed::NeedMore { .. } => {}
        }
        Ok(r)
    }

    fn file_header<'a>(&mut self, input: &'a [u8]) -> Result<Parsed<'a>, PcapError> {
        if input.len() < 4 {
            return Ok(Parsed::NeedMore { needed: 4 });
        }
        let le = u32::from_le_bytes([input[0], input[1], input[2], input[3]]);
        let be = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
        if le == BT_SHB {
            // The section header is read like any other block.
            return self.pcapng_block(input, Endian::Little);
        }
        let (endian, magic) = match (le, be) {
            (PCAP_MICROS | PCAP_NANOS | PCAP_MODIFIED, _) => (Endian::Little, le),
            (_, PCAP_MICROS | PCAP_NANOS | PCAP_MODIFIED) => (Endian::Big, be),
            _ => return Err(PcapError::UnknownFormat { magic: be }),
        };
        if input.len() < PCAP_HEADER_LEN {
            return Ok(Parsed::NeedMore {
                needed: PCAP_HEADER_LEN,
            });
        }
        // magic u32 | major u16 | minor u16 | thiszone i32 | sigfigs u32 |
        // snaplen u32 | linktype u32 (low 16 bits; the top bits say FCS length)
        let major = endian.u16(input, 4);
        if major != 2 {
            return Err(PcapError::UnsupportedVersion {
                offset: 0,
                major,
                minor: endian.u16(input, 6),
            });
        }
        let link = LinkType((endian.u32(input, 20) & 0xffff) as u16);
        self.format = Format::Pcap {
            endian,
            nanos: magic == PCAP_NANOS,
            modified: magic == PCAP_MODIFIED,
            link,
        };
        Ok(Parsed::Skipped {
            consumed: PCAP_HEADER_LEN,
            why: Skip::Header,
        })
    }

    fn pcap_record<'a>(
        &mut self,
        input: &'a [u8],
        endian: Endian,
        nanos: bool,
        modified: bool,
        link: LinkType,
    ) -> Result<Parsed<'a>, PcapError> {
        // ts_sec u32 | ts_frac u32 | incl_len u32 | orig_len u32
        // (+ ifindex u32 | protocol u16 | pkt_type u8 | pad u8 when modified)
        let hdr = if modified { 24 } else { 16 };
        if input.len() < hdr {
            return Ok(Parsed::NeedMore { needed: hdr });
        }
        let sec = endian.u32(input, 0) as u64;
        let frac = endian.u32(input, 4) as u64;
        let incl = endian.u32(input, 8);
        let orig = endian.u32(input, 12);
        if incl > MAX_RECORD_LEN {
            return Err(PcapError::BadRecordLength {
                offset: self.offset,
                len: incl,
            });
        }
        let total = hdr + incl as usize;
        if input.len() < total {
            return Ok(Parsed::NeedMore { needed: total });
        }
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        Ok(Parsed::Frame {
            consumed: total,
            frame: Frame {
                ts_ns,
                link,
                interface: 0,
                data: &input[hdr..total],
                orig_len: orig.max(incl),
            },
        })
    }

    fn pcapng_block<'a>(
        &mut self,
        input: &'a [u8],
        endian: Endian,
    ) -> Result<Parsed<'a>, PcapError> {
        if input.len() < 8 {
            return Ok(Parsed::NeedMore { needed: 8 });
        }
        let btype = endian.u32(input, 0);
        if btype == BT_SHB {
            return self.section_header(input);
        }
        let len = endian.u32(input, 4);
        if !(BLOCK_OVERHEAD as u32..=MAX_RECORD_LEN).contains(&len) || !len.is_multiple_of(4) {
            return Err(PcapError::BadBlockLength {
                offset: self.offset,
                len,
            });
        }
        let len = len as usize;
        if input.len() < len {
            return Ok(Parsed::NeedMore { needed: len });
        }
        let trailer = endian.u32(input, len - 4) as usize;
        if trailer != len {
            return Err(PcapError::BadBlockLength {
                offset: self.offset,
                len: trailer as u32,
            });
        }
        let body = &input[8..len - 4];
        let skipped = |why| Ok(Parsed::Skipped { consumed: len, why });
        match btype {
            BT_IDB => {
                // linktype u16 | reserved u16 | snaplen u32 | options
                if body.len() < 8 {
                    return skipped(Skip::BadPacket);
                }
                let mut iface = Interface {
                    link: LinkType(endian.u16(body, 0)),
                    snaplen: endian.u32(body, 4),
                    unit: TsUnit::Decimal(6),
                    offset_s: 0,
                };
                for (code, value) in options(endian, &body[8..]) {
                    match (code, value.len()) {
                        (OPT_IF_TSRESOL, 1) => {
                            let v = value[0];
                            iface.unit = if v & 0x80 == 0 {
                                TsUnit::Decimal(v)
                            } else {
                                TsUnit::Binary(v & 0x7f)
                            };
                        }
                        (OPT_IF_TSOFFSET, 8) => iface.offset_s = endian.u64(value, 0) as i64,
                        _ => {}
                    }
                }
                if let Format::Pcapng { interfaces, .. } = &mut self.format {
                    if interfaces.len() >= MAX_INTERFACES {
                        return Err(PcapError::TooManyInterfaces {
                            offset: self.offset,
                        });
                    }
                    interfaces.push(iface);
                }
                skipped(Skip::Header)
            }
            BT_EPB | BT_OPB => {
                // EPB: interface u32 | ts_high u32 | ts_low u32 | caplen u32 | origlen u32 | data
                // OPB: interface u16 | drops u16 | ts_high u32 | ts_low u32 | caplen u32 | origlen u32 | data
                if body.len() < 20 {
                    return skipped(Skip::BadPacket);
                }
                let iface_id = if btype == BT_EPB {
                    endian.u32(body, 0)
                } else {
                    endian.u16(body, 0) as u32
                };
                let Some(iface) = self.interface(iface_id) else {
                    return skipped(Skip::BadPacket);
                };
                let ticks = ((endian.u32(body, 4) as u64) << 32) | endian.u32(body, 8) as u64;
                let caplen = endian.u32(body, 12) as usize;
                let orig = endian.u32(body, 16);
                if caplen > body.len() - 20 {
                    return skipped(Skip::BadPacket);
                }
                Ok(Parsed::Frame {
                    consumed: len,
                    frame: Frame {
                        ts_ns: iface.unit.to_ns(ticks, iface.offset_s),
                        link: iface.link,
                        interface: iface_id,
                        data: &body[20..20 + caplen],
                        orig_len: orig.max(caplen as u32),
                    },
                })
            }
            BT_SPB => {
                // origlen u32 | data (captured length = min(origlen, snaplen of interface 0))
                if body.len() < 4 {
                    return skipped(Skip::BadPacket);
                }
                let Some(iface) = self.interface(0) else {
                    return skipped(Skip::BadPacket);
                };
                let orig = endian.u32(body, 0);
                let mut caplen = (orig as usize).min(body.len() - 4);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                Ok(Parsed::Frame {
                    consumed: len,
                    frame: Frame {
                        ts_ns: self.last_ts_ns,
                        link: iface.link,
                        interface: 0,
                        data: &body[4..4 + caplen],
                        orig_len: orig.max(caplen as u32),
                    },
                })
            }
            _ => skipped(Skip::OtherBlock),
        }
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.format {
            Format::Pcapng { interfaces, .. } => interfaces.get(id as usize).copied(),
            _ => None,
        }
    }

    /// A Section Header Block: it fixes the byte order of everything up to the
    /// next one, and forgets the interfaces of the previous section.
    fn section_header<'a>(&mut self, input: &'a [u8]) -> Result<Parsed<'a>, PcapError> {
        // type u32 | total length u32 | byte-order magic u32 | major u16 | minor u16 |
        // section length i64 | options | total length u32
        if input.len() < 12 {
            return Ok(Parsed::NeedMore { needed: 12 });
        }
        let endian = match (
            u32::from_le_bytes([input[8], input[9], input[10], input[11]]),
            u32::from_be_bytes([input[8], input[9], input[10], input[11]]),
        ) {
            (BYTE_ORDER_MAGIC, _) => Endian::Little,
            (_, BYTE_ORDER_MAGIC) => Endian::Big,
            _ => {
                return Err(PcapError::BadSectionHeader {
                    offset: self.offset,
                });
            }
        };
        let len = endian.u32(input, 4);
        // The smallest section header: 12 bytes of framing + 16 of fields.
        if !(28..=MAX_RECORD_LEN).contains(&len) || !len.is_multiple_of(4) {
            return Err(PcapError::BadBlockLength {
                offset: self.offset,
                len,
            });
        }
        let len = len as usize;
        if input.len() < len {
            return Ok(Parsed::NeedMore { needed: len });
        }
        if endian.u32(input, len - 4) as usize != len {
            return Err(PcapError::BadBlockLength {
                offset: self.offset,
                len: endian.u32(input, len - 4),
            });
        }
        let major = endian.u16(input, 12);
        if major != 1 {
            return Err(PcapError::UnsupportedVersion {
                offset: self.offset,
                major,
                minor: endian.u16(input, 14),
            });
        }
        self.format = Format::Pcapng {
            endian,
            interfaces: Vec::new(),
        };
        Ok(Parsed::Skipped {
            consumed: len,
            why: Skip::Header,
        })
    }
}

/// pcapng options: code u16 | length u16 | value, padded to 4 bytes; ends at
/// `opt_endofopt` or at the end of the bytes. A length running past the end
/// stops the walk (options are advisory).
fn options(endian: Endian, mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = endian.u16(b, 0);
        let len = endian.u16(b, 2) as usize;
        if code == OPT_END || b.len() < 4 + len {
            return None;
        }
        let value = &b[4..4 + len];
        let padded = (4 + len + 3) & !3;
        b = b.get(padded..).unwrap_or(&[]);
        Some((code, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_units() {
        assert_eq!(TsUnit::Decimal(6).to_ns(1_500_000, 0), 1_500_000_000);
        assert_eq!(TsUnit::Decimal(9).to_ns(7, 0), 7);
        assert_eq!(TsUnit::Decimal(12).to_ns(7_000, 0), 7);
        assert_eq!(TsUnit::Binary(10).to_ns(1024, 0), 1_000_000_000);
        assert_eq!(TsUnit::Decimal(6).to_ns(0, 5), 5_000_000_000);
        assert_eq!(TsUnit::Decimal(6).to_ns(0, -5), 0);
        assert_eq!(TsUnit::Decimal(100).to_ns(u64::MAX, 0), 0);
        assert_eq!(TsUnit::Binary(127).to_ns(u64::MAX, 0), 0);
        assert_eq!(TsUnit::Decimal(0).to_ns(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn options_stop_at_garbage() {
        let b = [9, 0, 1, 0, 9, 0, 0, 0, 14, 0, 200, 0, 1, 2];
        let v: Vec<_> = options(Endian::Little, &b).collect();
        assert_eq!(v, vec![(9u16, &[9u8][..])]);
    }
}
