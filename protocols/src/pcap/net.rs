//! Link layer, IPv4/IPv6 and TCP headers: from a captured frame to a TCP
//! segment, or the reason there is none.
//!
//! Checksums are not verified: on loopback and with offload they are routinely
//! wrong in captures, and a sniffer must not drop what the peer accepted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::file::LinkType;

/// Most 802.1Q / 802.1ad tags we strip from one Ethernet frame. QinQ uses two;
/// the bound only stops a frame of repeated tags from costing more work.
pub const MAX_VLAN_TAGS: usize = 8;

/// Most IPv6 extension headers we walk before giving up on a packet. RFC 8200
/// §4.1 recommends each appear at most once (twice for Destination Options),
/// so a real chain is short.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100; // 802.1Q
const ETHERTYPE_QINQ: u16 = 0x88a8; // 802.1ad
const ETHERTYPE_QINQ_OLD: u16 = 0x9100; // pre-standard QinQ

const IPPROTO_TCP: u8 = 6;

/// TCP header flags (RFC 9293 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A TCP segment as it was on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    /// The payload's length on the wire (from the IP length fields);
    /// `payload.len() < wire_len` when the capture cut the frame.
    pub wire_len: u32,
}

/// What a frame turned out to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Tcp(TcpPacket<'a>),
    /// IP but not TCP (UDP, ICMP, ...), or not IP at all (ARP, LLDP, ...).
    NotTcp,
    /// An IP fragment: we do not reassemble fragments, so it is counted and
    /// dropped (TCP avoids fragmenting with path MTU discovery).
    Fragment,
    /// A link type this reader does not know.
    UnknownLink(LinkType),
    /// Headers that are inconsistent or cut before the TCP payload.
    Malformed(&'static str),
}

/// Decode one link-layer frame down to TCP.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    match link {
        LinkType::ETHERNET => ethernet(frame),
        LinkType::NULL | LinkType::LOOP => {
            // A 4-byte address family, host byte order for NULL (the capturing
            // host's, not ours) and network order for LOOP: accept either.
            let Some(fam) = frame.get(..4) else {
                return Decoded::Malformed("loopback header cut");
            };
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let family = if le <= 0xffff { le } else { be };
            match family {
                2 => ipv4(&frame[4..]),
                // AF_INET6 is 10 on Linux, 24 on NetBSD/OpenBSD, 28 on FreeBSD,
                // 30 on macOS.
                10 | 24 | 28 | 30 => ipv6(&frame[4..]),
                _ => Decoded::NotTcp,
            }
        }
        LinkType::RAW | LinkType::RAW_OLD_12 | LinkType::RAW_OLD_14 => match frame.first() {
            Some(b) if b >> 4 == 4 => ipv4(frame),
            Some(b) if b >> 4 == 6 => ipv6(frame),
            Some(_) => Decoded::Malformed("raw IP with unknown version"),
            None => Decoded::Malformed("empty frame"),
        },
        LinkType::IPV4 => ipv4(frame),
        LinkType::IPV6 => ipv6(frame),
        LinkType::LINUX_SLL => {
            // packet type u16 | ARPHRD u16 | address length u16 | address [8] | protocol u16
            if frame.len() < 16 {
                return Decoded::Malformed("SLL header cut");
            }
            let arphrd = u16::from_be_bytes([frame[2], frame[3]]);
            if arphrd == ARPHRD_NETLINK {
                return Decoded::NotTcp;
            }
            ethertype(u16::from_be_bytes([frame[14], frame[15]]), &frame[16..])
        }
        LinkType::LINUX_SLL2 => {
            // protocol u16 | reserved u16 | ifindex u32 | ARPHRD u16 | packet type u8 |
            // address length u8 | address [8]
            if frame.len() < 20 {
                return Decoded::Malformed("SLL2 header cut");
            }
            let arphrd = u16::from_be_bytes([frame[8], frame[9]]);
            if arphrd == ARPHRD_NETLINK {
                return Decoded::NotTcp;
            }
            ethertype(u16::from_be_bytes([frame[0], frame[1]]), &frame[20..])
        }
        other => Decoded::UnknownLink(other),
    }
}

/// In SLL headers the protocol field of netlink captures is a netlink family,
/// not an Ethertype.
const ARPHRD_NETLINK: u16 = 824;

fn ethernet(frame: &[u8]) -> Decoded<'_> {
    // dst [6] | src [6] | ethertype u16
    if frame.len() < 14 {
        return Decoded::Malformed("Ethernet header cut");
    }
    ethertype(u16::from_be_bytes([frame[12], frame[13]]), &frame[14..])
}

/// Dispatch on an Ethertype, stripping VLAN tags (TCI u16 | inner type u16).
fn ethertype(mut ty: u16, mut rest: &[u8]) -> Decoded<'_> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ty {
            ETHERTYPE_IPV4 => return ipv4(rest),
            ETHERTYPE_IPV6 => return ipv6(rest),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                if rest.len() < 4 {
                    return Decoded::Malformed("VLAN tag cut");
                }
                ty = u16::from_be_bytes([rest[2], rest[3]]);
                rest = &rest[4..];
            }
            _ => return Decoded::NotTcp,
        }
    }
    Decoded::Malformed("too many VLAN tags")
}

fn ipv4(p: &[u8]) -> Decoded<'_> {
    // version/IHL u8 | TOS u8 | total length u16 | id u16 | flags/fragment offset u16 |
    // TTL u8 | protocol u8 | checksum u16 | src [4] | dst [4] | options
    if p.len() < 20 {
        return Decoded::Malformed("IPv4 header cut");
    }
    if p[0] >> 4 != 4 {
        return Decoded::Malformed("IPv4 version is not 4");
    }
    let ihl = (p[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Decoded::Malformed("IPv4 header length below 20");
    }
    if p.len() < ihl {
        return Decoded::Malformed("IPv4 options cut");
    }
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    // Total length 0 is what Linux captures show for TSO super-packets: the
    // real length is whatever was captured.
    let total = if total == 0 { None } else { Some(total) };
    if let Some(t) = total
        && t < ihl
    {
        return Decoded::Malformed("IPv4 total length below header length");
    }
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let more_fragments = frag & 0x2000 != 0;
    let offset = frag & 0x1fff;
    if more_fragments || offset != 0 {
        return Decoded::Fragment;
    }
    if p[9] != IPPROTO_TCP {
        return Decoded::NotTcp;
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let wire = total.map(|t| t - ihl);
    tcp(src, dst, &p[ihl..], wire)
}

fn ipv6(p: &[u8]) -> Decoded<'_> {
    // version/class/flow u32 | payload length u16 | next header u8 | hop limit u8 |
    // src [16] | dst [16]
    if p.len() < 40 {
        return Decoded::Malformed("IPv6 header cut");
    }
    if p[0] >> 4 != 6 {
        return Decoded::Malformed("IPv6 version is not 6");
    }
    let payload_len = u16::from_be_bytes([p[4], p[5]]) as usize;
    let mut next = p[6];
    let mut src = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&p[24..40]);
    // Payload length 0: a jumbogram or a TSO super-packet; use what was captured.
    let mut wire = if payload_len == 0 {
        None
    } else {
        Some(payload_len)
    };
    let mut rest = &p[40..];
    for _ in 0..=MAX_IPV6_EXT_HEADERS {
        let ext_len = match next {
            IPPROTO_TCP => {
                return tcp(
                    IpAddr::V6(Ipv6Addr::from(src)),
                    IpAddr::V6(Ipv6Addr::from(dst)),
                    rest,
                    wire,
                );
            }
            // Hop-by-Hop, Routing, Destination Options, Mobility, HIP, Shim6:
            // next u8 | length u8 (8-byte units, not counting the first 8).
            0 | 43 | 60 | 135 | 139 | 140 => {
                if rest.len() < 2 {
                    return Decoded::Malformed("IPv6 extension header cut");
                }
                (rest[1] as usize + 1) * 8
            }
            // Fragment: next u8 | reserved u8 | offset/flags u16 | id u32.
            44 => {
                if rest.len() < 8 {
                    return Decoded::Malformed("IPv6 fragment header cut");
                }
                let off_flags = u16::from_be_bytes([rest[2], rest[3]]);
                if off_flags & 0xfff9 != 0 {
                    // Offset != 0 or more fragments: a real fragment. (An
                    // "atomic fragment", offset 0 and M = 0, is whole.)
                    return Decoded::Fragment;
                }
                8
            }
            // Authentication Header: length in 4-byte units, minus 2.
            51 => {
                if rest.len() < 2 {
                    return Decoded::Malformed("IPv6 AH header cut");
                }
                (rest[1] as usize + 2) * 4
            }
            // ESP (encrypted), No Next Header, UDP, ICMPv6, ...
            _ => return Decoded::NotTcp,
        };
        if rest.len() < ext_len {
            return Decoded::Malformed("IPv6 extension header cut");
        }
        if let Some(w) = wire {
            match w.checked_sub(ext_len) {
                Some(w) => wire = Some(w),
                None => return Decoded::Malformed("IPv6 payload length below its headers"),
            }
        }
        next = rest[0];
        rest = &rest[ext_len..];
    }
    Decoded::Malformed("too many IPv6 extension headers")
}

/// `seg` is everything captured after the IP headers; `wire`, when known, is
/// the IP payload's length on the wire (it tells real bytes from Ethernet
/// padding, and captured bytes from cut ones).
fn tcp<'a>(src: IpAddr, dst: IpAddr, seg: &'a [u8], wire: Option<usize>) -> Decoded<'a> {
    // src port u16 | dst port u16 | seq u32 | ack u32 | data offset u4, flags u12 |
    // window u16 | checksum u16 | urgent u16 | options
    if seg.len() < 20 {
        return Decoded::Malformed("TCP header cut");
    }
    let doff = (seg[12] >> 4) as usize * 4;
    if doff < 20 {
        return Decoded::Malformed("TCP data offset below 20");
    }
    if seg.len() < doff {
        return Decoded::Malformed("TCP options cut");
    }
    let wire = wire.unwrap_or(seg.len());
    if wire < doff {
        return Decoded::Malformed("IP length below TCP header length");
    }
    let wire_len = wire - doff;
    // Captured bytes past the IP length are link padding or a trailer.
    let end = seg.len().min(wire);
    let Ok(wire_len) = u32::try_from(wire_len) else {
        return Decoded::Malformed("TCP payload length overflows");
    };
    Decoded::Tcp(TcpPacket {
        src: SocketAddr::new(src, u16::from_be_bytes([seg[0], seg[1]])),
        dst: SocketAddr::new(dst, u16::from_be_bytes([seg[2], seg[3]])),
        seq: u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]),
        ack: u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]),
        flags: TcpFlags(seg[13]),
        payload: &seg[doff..end],
        wire_len,
    })
}
