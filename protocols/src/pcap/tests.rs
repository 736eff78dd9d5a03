//! Hand-built frames and files: every link type, IP version and file format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

// ---------------------------------------------------------------- builders

const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

/// A TCP header (with `opts` bytes of NOP options) and payload.
fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, opts: usize, payload: &[u8]) -> Vec<u8> {
    assert_eq!(opts % 4, 0);
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.push((((20 + opts) / 4) as u8) << 4);
    v.push(flags);
    v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(1u8, opts));
    v.extend_from_slice(payload);
    v
}

fn ipv4_full(proto: u8, opts: usize, frag: u16, l4: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts;
    let mut v = vec![0x40 | (ihl / 4) as u8, 0];
    v.extend_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&A4);
    v.extend_from_slice(&B4);
    v.extend(std::iter::repeat_n(1u8, opts)); // NOP options
    v.extend_from_slice(l4);
    v
}

fn ipv4(l4: &[u8]) -> Vec<u8> {
    ipv4_full(6, 0, 0x4000, l4) // DF set, not a fragment
}

/// IPv6 with extension headers given as (type, body without next/len bytes
/// for generic ones; whole 8 bytes for fragment).
fn ipv6_full(exts: &[(u8, Vec<u8>)], last: u8, l4: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (ty, body)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map(|e| e.0).unwrap_or(last);
        match ty {
            44 => {
                let mut b = body.clone();
                b[0] = next;
                chain.extend_from_slice(&b);
            }
            51 => {
                // AH: len in 4-byte units minus 2
                let total = 2 + body.len();
                assert_eq!(total % 4, 0);
                chain.push(next);
                chain.push((total / 4 - 2) as u8);
                chain.extend_from_slice(body);
            }
            _ => {
                let total = 2 + body.len();
                assert_eq!(total % 8, 0);
                chain.push(next);
                chain.push((total / 8 - 1) as u8);
                chain.extend_from_slice(body);
            }
        }
    }
    let first = exts.first().map(|e| e.0).unwrap_or(last);
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
    v.push(first);
    v.push(64);
    v.extend_from_slice(&A6);
    v.extend_from_slice(&B6);
    v.extend_from_slice(&chain);
    v.extend_from_slice(l4);
    v
}

fn ipv6(l4: &[u8]) -> Vec<u8> {
    ipv6_full(&[], 6, l4)
}

fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for t in tags {
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn null(family: u32, little: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = if little {
        family.to_le_bytes().to_vec()
    } else {
        family.to_be_bytes().to_vec()
    };
    v.extend_from_slice(payload);
    v
}

fn sll(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn sll2(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = proto.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(payload);
    v
}

#[derive(Clone, Copy)]
enum E {
    Le,
    Be,
}

fn w16(v: &mut Vec<u8>, e: E, x: u16) {
    match e {
        E::Le => v.extend_from_slice(&x.to_le_bytes()),
        E::Be => v.extend_from_slice(&x.to_be_bytes()),
    }
}

fn w32(v: &mut Vec<u8>, e: E, x: u32) {
    match e {
        E::Le => v.extend_from_slice(&x.to_le_bytes()),
        E::Be => v.extend_from_slice(&x.to_be_bytes()),
    }
}

struct Rec<'a> {
    ts_ns: u64,
    data: &'a [u8],
    orig: u32,
}

fn rec(ts_ns: u64, data: &[u8]) -> Rec<'_> {
    Rec {
        ts_ns,
        data,
        orig: data.len() as u32,
    }
}

fn pcap_file(e: E, nanos: bool, link: u16, recs: &[Rec<'_>]) -> Vec<u8> {
    let mut v = Vec::new();
    w32(&mut v, e, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, e, 2);
    w16(&mut v, e, 4);
    w32(&mut v, e, 0);
    w32(&mut v, e, 0);
    w32(&mut v, e, 262144);
    w32(&mut v, e, link as u32);
    for r in recs {
        let sec = r.ts_ns / 1_000_000_000;
        let frac = r.ts_ns % 1_000_000_000;
        w32(&mut v, e, sec as u32);
        w32(&mut v, e, if nanos { frac } else { frac / 1000 } as u32);
        w32(&mut v, e, r.data.len() as u32);
        w32(&mut v, e, r.orig);
        v.extend_from_slice(r.data);
    }
    v
}

fn block(v: &mut Vec<u8>, e: E, ty: u32, body: &[u8]) {
    let padded = (body.len() + 3) & !3;
    let len = (12 + padded) as u32;
    w32(v, e, ty);
    w32(v, e, len);
    v.extend_from_slice(body);
    v.extend(std::iter::repeat_n(0u8, padded - body.len()));
    w32(v, e, len);
}

fn shb(v: &mut Vec<u8>, e: E) {
    let mut b = Vec::new();
    w32(&mut b, e, 0x1a2b_3c4d);
    w16(&mut b, e, 1);
    w16(&mut b, e, 0);
    b.extend_from_slice(&[0xff; 8]); // section length unknown
    block(v, e, 0x0a0d_0d0a, &b);
}

fn idb(v: &mut Vec<u8>, e: E, link: u16, snaplen: u32, tsresol: Option<u8>) {
    let mut b = Vec::new();
    w16(&mut b, e, link);
    w16(&mut b, e, 0);
    w32(&mut b, e, snaplen);
    if let Some(r) = tsresol {
        w16(&mut b, e, 9);
        w16(&mut b, e, 1);
        b.extend_from_slice(&[r, 0, 0, 0]);
        w16(&mut b, e, 0);
        w16(&mut b, e, 0);
    }
    block(v, e, 1, &b);
}

fn epb(v: &mut Vec<u8>, e: E, iface: u32, ticks: u64, r: &Rec<'_>) {
    let mut b = Vec::new();
    w32(&mut b, e, iface);
    w32(&mut b, e, (ticks >> 32) as u32);
    w32(&mut b, e, ticks as u32);
    w32(&mut b, e, r.data.len() as u32);
    w32(&mut b, e, r.orig);
    b.extend_from_slice(r.data);
    block(v, e, 6, &b);
}

fn spb(v: &mut Vec<u8>, e: E, r: &Rec<'_>) {
    let mut b = Vec::new();
    w32(&mut b, e, r.orig);
    b.extend_from_slice(r.data);
    block(v, e, 3, &b);
}

fn sa4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn sa6(a: [u8; 16], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port)
}

fn tcp_of(d: Decoded<'_>) -> TcpPacket<'_> {
    match d {
        Decoded::Tcp(p) => p,
        other => panic!("expected TCP, got {other:?}"),
    }
}

// ---------------------------------------------------------------- link + IP

#[test]
fn every_link_type_reaches_tcp() {
    let seg = tcp(40000, 80, 7, PSH | ACK, 12, b"hello");
    let v4 = ipv4(&seg);
    let v6 = ipv6(&seg);
    let cases: Vec<(&str, LinkType, Vec<u8>, bool)> = vec![
        (
            "ethernet v4",
            LinkType::ETHERNET,
            ethernet(&[], 0x0800, &v4),
            false,
        ),
        (
            "ethernet v6",
            LinkType::ETHERNET,
            ethernet(&[], 0x86dd, &v6),
            true,
        ),
        (
            "802.1Q",
            LinkType::ETHERNET,
            ethernet(&[0x8100], 0x0800, &v4),
            false,
        ),
        (
            "QinQ",
            LinkType::ETHERNET,
            ethernet(&[0x88a8, 0x8100], 0x86dd, &v6),
            true,
        ),
        (
            "old QinQ",
            LinkType::ETHERNET,
            ethernet(&[0x9100, 0x8100], 0x0800, &v4),
            false,
        ),
        ("null le v4", LinkType::NULL, null(2, true, &v4), false),
        ("null be v4", LinkType::NULL, null(2, false, &v4), false),
        ("null linux v6", LinkType::NULL, null(10, true, &v6), true),
        ("null bsd v6", LinkType::NULL, null(24, true, &v6), true),
        (
            "null freebsd v6",
            LinkType::NULL,
            null(28, false, &v6),
            true,
        ),
        ("null macos v6", LinkType::NULL, null(30, true, &v6), true),
        ("loop v4", LinkType::LOOP, null(2, false, &v4), false),
        ("loop v6", LinkType::LOOP, null(24, false, &v6), true),
        ("raw v4", LinkType::RAW, v4.clone(), false),
        ("raw v6", LinkType::RAW, v6.clone(), true),
        ("raw 12", LinkType::RAW_OLD_12, v4.clone(), false),
        ("raw 14", LinkType::RAW_OLD_14, v6.clone(), true),
        ("ipv4", LinkType::IPV4, v4.clone(), false),
        ("ipv6", LinkType::IPV6, v6.clone(), true),
        ("sll v4", LinkType::LINUX_SLL, sll(0x0800, &v4), false),
        ("sll v6", LinkType::LINUX_SLL, sll(0x86dd, &v6), true),
        (
            "sll vlan",
            LinkType::LINUX_SLL,
            sll(0x8100, &{
                let mut t = vec![0, 100, 0x08, 0x00];
                t.extend_from_slice(&v4);
                t
            }),
            false,
        ),
        ("sll2 v4", LinkType::LINUX_SLL2, sll2(0x0800, &v4), false),
        ("sll2 v6", LinkType::LINUX_SLL2, sll2(0x86dd, &v6), true),
    ];
    for (name, link, frame, is6) in cases {
        let p = tcp_of(decode(link, &frame));
        let (src, dst) = if is6 {
            (sa6(A6, 40000), sa6(B6, 80))
        } else {
            (sa4(A4, 40000), sa4(B4, 80))
        };
        assert_eq!(p.src, src, "{name}");
        assert_eq!(p.dst, dst, "{name}");
        assert_eq!(p.seq, 7, "{name}");
        assert_eq!(p.payload, b"hello", "{name}");
        assert_eq!(p.wire_len, 5, "{name}");
        assert_eq!(p.flags, TcpFlags(PSH | ACK), "{name}");
    }
}

#[test]
fn what_is_not_tcp() {
    let seg = tcp(1, 2, 0, ACK, 0, b"x");
    let udp = ipv4_full(17, 0, 0, &[0; 8]);
    let cases: Vec<(&str, LinkType, Vec<u8>, Decoded<'static>)> = vec![
        ("udp", LinkType::RAW, udp.clone(), Decoded::NotTcp),
        (
            "arp",
            LinkType::ETHERNET,
            ethernet(&[], 0x0806, &[0; 28]),
            Decoded::NotTcp,
        ),
        (
            "802.3 length",
            LinkType::ETHERNET,
            ethernet(&[], 0x0040, &[0; 64]),
            Decoded::NotTcp,
        ),
        (
            "null unknown family",
            LinkType::NULL,
            null(7, true, &udp),
            Decoded::NotTcp,
        ),
        (
            "first fragment",
            LinkType::RAW,
            ipv4_full(6, 0, 0x2000, &seg),
            Decoded::Fragment,
        ),
        (
            "later fragment",
            LinkType::RAW,
            ipv4_full(6, 0, 0x0010, &seg),
            Decoded::Fragment,
        ),
        (
            "last fragment",
            LinkType::RAW,
            ipv4_full(6, 0, 0x0003, &seg),
            Decoded::Fragment,
        ),
        (
            "v6 fragment",
            LinkType::RAW,
            ipv6_full(&[(44, vec![0, 0, 0x00, 0x09, 0, 0, 0, 1])], 6, &seg),
            Decoded::Fragment,
        ),
        (
            "v6 esp",
            LinkType::RAW,
            ipv6_full(&[], 50, &[0; 16]),
            Decoded::NotTcp,
        ),
        (
            "v6 no next",
            LinkType::RAW,
            ipv6_full(&[], 59, &[]),
            Decoded::NotTcp,
        ),
        (
            "usb",
            LinkType(189),
            vec![0; 64],
            Decoded::UnknownLink(LinkType(189)),
        ),
        (
            "empty raw",
            LinkType::RAW,
            vec![],
            Decoded::Malformed("empty frame"),
        ),
        (
            "raw v5",
            LinkType::RAW,
            vec![0x50; 40],
            Decoded::Malformed("raw IP with unknown version"),
        ),
        (
            "short eth",
            LinkType::ETHERNET,
            vec![0; 13],
            Decoded::Malformed("Ethernet header cut"),
        ),
        (
            "short null",
            LinkType::NULL,
            vec![2, 0],
            Decoded::Malformed("loopback header cut"),
        ),
        (
            "short sll",
            LinkType::LINUX_SLL,
            vec![0; 15],
            Decoded::Malformed("SLL header cut"),
        ),
        (
            "short sll2",
            LinkType::LINUX_SLL2,
            vec![0; 19],
            Decoded::Malformed("SLL2 header cut"),
        ),
        (
            "vlan cut",
            LinkType::ETHERNET,
            ethernet(&[], 0x8100, &[0, 1]),
            Decoded::Malformed("VLAN tag cut"),
        ),
        (
            "vlan loop",
            LinkType::ETHERNET,
            ethernet(&[0x8100; 9], 0x0800, &ipv4(&seg)),
            Decoded::Malformed("too many VLAN tags"),
        ),
        (
            "ihl 4",
            LinkType::RAW,
            {
                let mut p = ipv4(&seg);
                p[0] = 0x44;
                p
            },
            Decoded::Malformed("IPv4 header length below 20"),
        ),
        (
            "tcp doff 4",
            LinkType::RAW,
            {
                let mut s = seg.clone();
                s[12] = 0x40;
                ipv4(&s)
            },
            Decoded::Malformed("TCP data offset below 20"),
        ),
        (
            "tcp cut",
            LinkType::RAW,
            ipv4(&seg)[..30].to_vec(),
            Decoded::Malformed("TCP header cut"),
        ),
        (
            "total below ihl",
            LinkType::RAW,
            {
                let mut p = ipv4(&seg);
                p[2] = 0;
                p[3] = 10;
                p
            },
            Decoded::Malformed("IPv4 total length below header length"),
        ),
        (
            "v6 ext cut",
            LinkType::RAW,
            ipv6_full(&[(0, vec![0; 6])], 6, &[])[..41].to_vec(),
            Decoded::Malformed("IPv6 extension header cut"),
        ),
        (
            "sll netlink",
            LinkType::LINUX_SLL,
            {
                let mut f = sll(0x0800, &ipv4(&seg));
                f[2] = 0x03;
                f[3] = 0x38;
                f
            },
            Decoded::NotTcp,
        ),
    ];
    for (name, link, frame, want) in cases {
        assert_eq!(decode(link, &frame), want, "{name}");
    }
}

#[test]
fn ip_options_and_extension_headers_are_skipped() {
    let seg = tcp(5000, 443, 1, ACK, 8, b"abc");
    let v4 = ipv4_full(6, 12, 0, &seg);
    let p = tcp_of(decode(LinkType::RAW, &v4));
    assert_eq!(p.payload, b"abc");
    let v6 = ipv6_full(
        &[
            (0, vec![1, 4, 0, 0, 0, 0]),                          // hop-by-hop, PadN
            (43, vec![0; 14]),                                    // routing, 16 bytes
            (44, vec![0, 0, 0, 0, 0, 0, 0, 9]),                   // atomic fragment
            (51, vec![0; 10]),                                    // AH, 12 bytes
            (60, vec![1, 4, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0]), // dest opts, 16
        ],
        6,
        &seg,
    );
    let p = tcp_of(decode(LinkType::RAW, &v6));
    assert_eq!(p.payload, b"abc");
    assert_eq!(p.wire_len, 3);
    assert_eq!(p.dst, sa6(B6, 443));
    let too_many = ipv6_full(&vec![(60, vec![0; 6]); 9], 6, &seg);
    assert_eq!(
        decode(LinkType::RAW, &too_many),
        Decoded::Malformed("too many IPv6 extension headers")
    );
}

#[test]
fn padding_is_dropped_and_cut_payload_is_reported() {
    let seg = tcp(1, 2, 0, ACK, 0, b"hi");
    // Ethernet pads short frames to 60 bytes: padding is not payload.
    let mut f = ethernet(&[], 0x0800, &ipv4(&seg));
    f.resize(60, 0);
    let p = tcp_of(decode(LinkType::ETHERNET, &f));
    assert_eq!(p.payload, b"hi");
    assert_eq!(p.wire_len, 2);
    // A snap length cutting the payload: wire length from the IP header.
    let big = tcp(1, 2, 0, ACK, 0, &[7u8; 1000]);
    let f = ipv4(&big);
    let p = tcp_of(decode(LinkType::RAW, &f[..100]));
    assert_eq!(p.payload.len(), 60);
    assert_eq!(p.wire_len, 1000);
    let f = ipv6(&big);
    let p = tcp_of(decode(LinkType::RAW, &f[..100]));
    assert_eq!(p.payload.len(), 40);
    assert_eq!(p.wire_len, 1000);
    // IPv4 total length 0 (TSO): the captured length is the length.
    let mut f = ipv4(&big);
    f[2] = 0;
    f[3] = 0;
    let p = tcp_of(decode(LinkType::RAW, &f));
    assert_eq!(p.wire_len, 1000);
}

// ---------------------------------------------------------------- files

/// Three packets of one connection: SYN, data, FIN.
fn three(link: LinkType) -> Vec<Vec<u8>> {
    let wrap = |l4: Vec<u8>| -> Vec<u8> {
        let ip = ipv4(&l4);
        match link {
            LinkType::ETHERNET => ethernet(&[], 0x0800, &ip),
            LinkType::NULL => null(2, true, &ip),
            LinkType::LINUX_SLL => sll(0x0800, &ip),
            LinkType::LINUX_SLL2 => sll2(0x0800, &ip),
            _ => ip,
        }
    };
    vec![
        wrap(tcp(50000, 80, 99, SYN, 0, b"")),
        wrap(tcp(50000, 80, 100, PSH | ACK, 0, b"GET / HTTP/1.1\r\n\r\n")),
        wrap(tcp(50000, 80, 118, FIN | ACK, 0, b"")),
    ]
}

fn check_three(cap: &Capture<'_>, ts: [u64; 3]) {
    assert_eq!(cap.stopped, None);
    assert_eq!(cap.counters.packets, 3);
    assert_eq!(cap.counters.tcp, 3);
    assert_eq!(cap.connections.len(), 1);
    let c = &cap.connections[0];
    assert_eq!(c.client, sa4(A4, 50000));
    assert_eq!(c.server, sa4(B4, 80));
    assert_eq!(c.client_by, ClientBy::Syn);
    assert_eq!((c.first_ns, c.last_ns), (ts[0], ts[2]));
    let segs: Vec<_> = cap
        .segments
        .iter()
        .map(|s| (s.pos, s.ts_ns, s.payload, s.syn(), s.fin()))
        .collect();
    assert_eq!(
        segs,
        vec![
            (0, ts[0], &b""[..], true, false),
            (0, ts[1], &b"GET / HTTP/1.1\r\n\r\n"[..], false, false),
            (18, ts[2], &b""[..], false, true),
        ]
    );
}

#[test]
fn pcap_byte_orders_and_resolutions() {
    let ts_ns = [
        1_700_000_000_123_456_789,
        1_700_000_000_223_456_789,
        1_700_000_001_000_000_001,
    ];
    let ts_us = ts_ns.map(|t| t / 1000 * 1000);
    for link in [
        LinkType::ETHERNET,
        LinkType::NULL,
        LinkType::RAW,
        LinkType::LINUX_SLL,
        LinkType::LINUX_SLL2,
    ] {
        let frames = three(link);
        for (e, nanos) in [(E::Le, false), (E::Be, false), (E::Le, true), (E::Be, true)] {
            let recs: Vec<_> = frames.iter().zip(ts_ns).map(|(f, t)| rec(t, f)).collect();
            let file = pcap_file(e, nanos, link.0, &recs);
            let cap = Capture::decode(&file).unwrap();
            assert_eq!(cap.kind, FileKind::Pcap);
            check_three(&cap, if nanos { ts_ns } else { ts_us });
        }
    }
}

#[test]
fn pcap_modified_format() {
    let frames = three(LinkType::RAW);
    let mut v = Vec::new();
    w32(&mut v, E::Le, 0xa1b2_cd34);
    w16(&mut v, E::Le, 2);
    w16(&mut v, E::Le, 4);
    v.extend_from_slice(&[0; 8]);
    w32(&mut v, E::Le, 65535);
    w32(&mut v, E::Le, 101);
    for (i, f) in frames.iter().enumerate() {
        w32(&mut v, E::Le, 10 + i as u32);
        w32(&mut v, E::Le, 0);
        w32(&mut v, E::Le, f.len() as u32);
        w32(&mut v, E::Le, f.len() as u32);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(f);
    }
    let cap = Capture::decode(&v).unwrap();
    check_three(&cap, [10_000_000_000, 11_000_000_000, 12_000_000_000]);
}

#[test]
fn pcapng_byte_orders_resolutions_and_interfaces() {
    let ts = [
        1_700_000_000_123_456_789u64,
        1_700_000_000_223_456_789,
        1_700_000_001_000_000_001,
    ];
    for e in [E::Le, E::Be] {
        // Interface 0 is Ethernet in microseconds (default), interface 1 raw
        // IP in nanoseconds, interface 2 SLL2 in 2^-20 s: the connection's
        // packets come over all three, with an unknown block in between.
        let eth = three(LinkType::ETHERNET);
        let raw = three(LinkType::RAW);
        let sll2 = three(LinkType::LINUX_SLL2);
        let mut v = Vec::new();
        shb(&mut v, e);
        idb(&mut v, e, 1, 0, None);
        idb(&mut v, e, 101, 0, Some(9));
        idb(&mut v, e, 276, 0, Some(0x80 | 20));
        epb(&mut v, e, 0, ts[0] / 1000, &rec(0, &eth[0]));
        block(&mut v, e, 5, &[0; 12]); // interface statistics
        block(&mut v, e, 0x0bad, &[1, 2, 3]); // custom
        epb(&mut v, e, 1, ts[1], &rec(0, &raw[1]));
        let secs = ts[2] / 1_000_000_000;
        let frac = ts[2] % 1_000_000_000;
        let ticks = (secs << 20) + ((frac << 20) / 1_000_000_000);
        epb(&mut v, e, 2, ticks, &rec(0, &sll2[2]));
        let cap = Capture::decode(&v).unwrap();
        assert_eq!(cap.kind, FileKind::Pcapng);
        assert_eq!(cap.counters.other_blocks, 2);
        let t2 = ((ticks as u128 * 1_000_000_000) >> 20) as u64;
        check_three(&cap, [ts[0] / 1000 * 1000, ts[1], t2]);
    }
}

#[test]
fn pcapng_simple_packets_and_sections() {
    let raw = three(LinkType::RAW);
    let eth = three(LinkType::ETHERNET);
    let mut v = Vec::new();
    // Section 1, little-endian: raw IP, SYN in an EPB, data in an SPB.
    shb(&mut v, E::Le);
    idb(&mut v, E::Le, 101, 0, None);
    epb(&mut v, E::Le, 0, 5_000_000, &rec(0, &raw[0]));
    spb(&mut v, E::Le, &rec(0, &raw[1]));
    // Section 2, big-endian: interface 0 is now Ethernet, and interface 1
    // of the old section is gone.
    shb(&mut v, E::Be);
    idb(&mut v, E::Be, 1, 0, None);
    epb(&mut v, E::Be, 1, 0, &rec(0, &eth[2]));
    epb(&mut v, E::Be, 0, 6_000_000, &rec(0, &eth[2]));
    let cap = Capture::decode(&v).unwrap();
    assert_eq!(cap.counters.malformed, 1, "interface 1 is undefined");
    check_three(&cap, [5_000_000_000, 5_000_000_000, 6_000_000_000]);
}

#[test]
fn spb_length_is_limited_by_snaplen() {
    let raw = three(LinkType::RAW);
    let mut v = Vec::new();
    shb(&mut v, E::Le);
    idb(&mut v, E::Le, 101, 50, None);
    spb(&mut v, E::Le, &rec(0, &raw[1]));
    let cap = Capture::decode(&v).unwrap();
    assert_eq!(cap.counters.truncated, 1);
    let s = &cap.segments[0];
    assert_eq!(s.payload.len(), 10);
    assert_eq!(s.wire_len, 18);
    assert!(s.cut());
}

// ---------------------------------------------------------------- errors

fn sample_pcap() -> Vec<u8> {
    let frames = three(LinkType::ETHERNET);
    let recs: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| rec(i as u64, f))
        .collect();
    pcap_file(E::Le, false, 1, &recs)
}

fn sample_pcapng() -> Vec<u8> {
    let frames = three(LinkType::ETHERNET);
    let mut v = Vec::new();
    shb(&mut v, E::Be);
    idb(&mut v, E::Be, 1, 0, Some(9));
    for (i, f) in frames.iter().enumerate() {
        epb(&mut v, E::Be, 0, i as u64, &rec(0, f));
    }
    v
}

#[test]
fn truncated_last_record_keeps_what_came_before() {
    for file in [sample_pcap(), sample_pcapng()] {
        let cut = &file[..file.len() - 5];
        let cap = Capture::decode(cut).unwrap();
        assert_eq!(cap.counters.packets, 2);
        assert_eq!(cap.segments.len(), 2);
        match cap.stopped {
            Some(PcapError::Truncated { needed, have, .. }) => assert!(have < needed),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_prefix_reads_a_prefix() {
    for file in [sample_pcap(), sample_pcapng()] {
        let full = Capture::decode(&file).unwrap();
        for n in 0..file.len() {
            match Capture::decode(&file[..n]) {
                Ok(cap) => {
                    assert_eq!(cap.segments[..], full.segments[..cap.segments.len()]);
                }
                Err(PcapError::Truncated { offset: 0, .. }) => {}
                Err(e) => panic!("prefix {n}: {e}"),
            }
        }
    }
}

#[test]
fn corrupt_files_give_errors() {
    assert_eq!(
        Capture::decode(b"GET / HTTP/1.1\r\n").unwrap_err(),
        PcapError::UnknownFormat { magic: 0x4745_5420 }
    );
    assert!(matches!(
        Capture::decode(b"").unwrap_err(),
        PcapError::Truncated { .. }
    ));

    // A pcap record claiming 1 GiB.
    let mut f = sample_pcap();
    f[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let cap = Capture::decode(&f).unwrap();
    assert_eq!(cap.counters.packets, 0);
    assert_eq!(
        cap.stopped,
        Some(PcapError::BadRecordLength {
            offset: 24,
            len: 1 << 30
        })
    );

    // pcapng: trailing length differs from the leading one.
    let mut f = sample_pcapng();
    let n = f.len();
    f[n - 1] ^= 4;
    let cap = Capture::decode(&f).unwrap();
    assert_eq!(cap.counters.packets, 2);
    assert!(matches!(
        cap.stopped,
        Some(PcapError::BadBlockLength { .. })
    ));

    // pcapng: a block length that is not a multiple of 4, and one below 12.
    for bad in [13u32, 8] {
        let mut f = sample_pcapng();
        let shb_len = u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as usize;
        f[shb_len + 4..shb_len + 8].copy_from_slice(&bad.to_be_bytes());
        let cap = Capture::decode(&f).unwrap();
        assert_eq!(
            cap.stopped,
            Some(PcapError::BadBlockLength {
                offset: shb_len as u64,
                len: bad
            })
        );
    }

    // pcapng: version 2 is not ours.
    let mut f = sample_pcapng();
    f[12..14].copy_from_slice(&2u16.to_be_bytes());
    assert!(matches!(
        Capture::decode(&f).unwrap_err(),
        PcapError::UnsupportedVersion { major: 2, .. }
    ));

    // pcapng: section header without byte-order magic.
    let mut f = sample_pcapng();
    f[8] = 0;
    assert_eq!(
        Capture::decode(&f).unwrap_err(),
        PcapError::BadSectionHeader { offset: 0 }
    );

    // Messages say what happened.
    let msg = PcapError::BadBlockLength { offset: 7, len: 3 }.to_string();
    assert!(msg.contains("byte 7"), "{msg}");
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic sweep; the fuzz target goes further.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for base in [sample_pcap(), sample_pcapng()] {
        for _ in 0..2000 {
            let mut f = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % f.len();
                f[i] = (x >> 32) as u8;
            }
            let _ = Capture::decode(&f);
        }
    }
}

// ---------------------------------------------------------------- tracking

/// Decode raw IPv4 packets given as (ts, from-client?, seq, flags, payload)
/// between 10.0.0.1:50000 and 10.0.0.2:80 (ports given per call).
fn track(pkts: &[(u16, u16, u32, u8, &[u8])]) -> Capture<'static> {
    let recs: Vec<Vec<u8>> = pkts
        .iter()
        .map(|&(sp, dp, seq, fl, pl)| {
            let mut ip = ipv4(&tcp(sp, dp, seq, fl, 0, pl));
            if sp == 80 {
                // server to client: swap addresses
                ip[12..16].copy_from_slice(&B4);
                ip[16..20].copy_from_slice(&A4);
            }
            ip
        })
        .collect();
    let rs: Vec<_> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| rec(i as u64 * 1000, r))
        .collect();
    let file = pcap_file(E::Le, true, 101, &rs);
    let cap = Capture::decode(Box::leak(file.into_boxed_slice())).unwrap();
    assert_eq!(cap.stopped, None);
    cap
}

fn summary(cap: &Capture<'_>) -> Vec<(u32, Dir, u64, String, u8)> {
    cap.segments
        .iter()
        .map(|s| {
            (
                s.conn.0,
                s.dir,
                s.pos,
                String::from_utf8_lossy(s.payload).into_owned(),
                s.flags.0 & (SYN | FIN | RST),
            )
        })
        .collect()
}

use Dir::{ToClient as C, ToServer as S};

#[test]
fn handshake_positions_retransmissions_and_reordering() {
    let cap = track(&[
        (50000, 80, 1000, SYN, b""),
        (80, 50000, 5000, SYN | ACK, b""),
        (50000, 80, 1001, ACK, b""),
        (50000, 80, 1001, PSH | ACK, b"GET /"),
        (50000, 80, 1006, PSH | ACK, b" HTTP/1.1\r\n\r\n"),
        (50000, 80, 1001, PSH | ACK, b"GET /"), // retransmission
        (80, 50000, 5009, PSH | ACK, b"world"), // out of order
        (80, 50000, 5001, PSH | ACK, b"hello, w"),
        (50000, 80, 1019, FIN | ACK, b""),
        (80, 50000, 5014, FIN | ACK, b""),
    ]);
    assert_eq!(
        summary(&cap),
        vec![
            (0, S, 0, "".into(), SYN),
            (0, C, 0, "".into(), SYN),
            (0, S, 0, "GET /".into(), 0),
            (0, S, 5, " HTTP/1.1\r\n\r\n".into(), 0),
            (0, S, 0, "GET /".into(), 0),
            (0, C, 8, "world".into(), 0),
            (0, C, 0, "hello, w".into(), 0),
            (0, S, 18, "".into(), FIN),
            (0, C, 13, "".into(), FIN),
        ]
    );
    assert_eq!(cap.counters.pure_acks, 1);
    let c = &cap.connections[0];
    assert_eq!(c.syn, [true, true]);
    assert_eq!(c.fin, [true, true]);
    assert_eq!(c.end, [18, 13]);
    assert_eq!(c.wire_bytes, [23, 13]);
    assert!(c.closed());
    assert_eq!((c.first_ns, c.last_ns), (0, 9000));
}

#[test]
fn sequence_wrap_around_widens_positions() {
    let isn = u32::MAX - 3;
    let cap = track(&[
        (50000, 80, isn, SYN, b""),
        (50000, 80, isn.wrapping_add(1), ACK, b"abcdef"),
        (50000, 80, isn.wrapping_add(7), ACK, b"ghij"),
        (50000, 80, isn.wrapping_add(1), ACK, b"abc"), // old retransmission
    ]);
    let pos: Vec<_> = cap.segments.iter().map(|s| s.pos).collect();
    assert_eq!(pos, vec![0, 0, 6, 0]);

    // Past 4 GiB: positions keep growing instead of wrapping to 0.
    let mut t = Tracker::new();
    let mut seq = 7u32;
    let chunk = [0u8; 60000];
    let mut last = 0;
    for i in 0..80_000u64 {
        let p = TcpPacket {
            src: sa4(A4, 50000),
            dst: sa4(B4, 80),
            seq,
            ack: 0,
            flags: TcpFlags(ACK),
            payload: &chunk,
            wire_len: chunk.len() as u32,
        };
        match t.push(i, &p) {
            Tracked::Segment(s) => {
                assert_eq!(s.pos, i * 60000);
                last = s.pos;
            }
            other => panic!("{other:?}"),
        }
        seq = seq.wrapping_add(60000);
    }
    assert!(last > u32::MAX as u64);
}

#[test]
fn no_handshake_uses_ports_and_first_sequence() {
    let cap = track(&[
        (80, 50000, 777, PSH | ACK, b"HTTP/1.1 200 OK\r\n"),
        (50000, 80, 10, PSH | ACK, b"GET /b"),
        (50000, 80, 5, PSH | ACK, b"hello GET"), // starts before the stream
        (50000, 80, 0, PSH | ACK, b"zzz"),       // entirely before
    ]);
    let c = &cap.connections[0];
    assert_eq!(c.client_by, ClientBy::Ports);
    assert_eq!(c.client, sa4(A4, 50000));
    assert_eq!(c.syn, [false, false]);
    assert_eq!(
        summary(&cap),
        vec![
            (0, C, 0, "HTTP/1.1 200 OK\r\n".into(), 0),
            (0, S, 0, "GET /b".into(), 0),
            (0, S, 0, " GET".into(), 0),
        ]
    );
    assert_eq!(c.before_start_bytes, [8, 0]);
    assert_eq!(cap.counters.before_start, 1);
}

#[test]
fn syn_ack_alone_names_the_client() {
    let cap = track(&[(80, 50000, 9, SYN | ACK, b""), (50000, 80, 3, ACK, b"x")]);
    let c = &cap.connections[0];
    assert_eq!(c.client_by, ClientBy::SynAck);
    assert_eq!(c.client, sa4(A4, 50000));
    assert_eq!(c.syn, [false, true]);
}

#[test]
fn port_reuse_opens_a_new_connection() {
    let cap = track(&[
        (50000, 80, 100, SYN, b""),
        (50000, 80, 100, SYN, b""), // retransmitted SYN: same connection
        (50000, 80, 101, ACK, b"one"),
        (50000, 80, 104, FIN | ACK, b""),
        (80, 50000, 1, RST | ACK, b""),
        (50000, 80, 9000, SYN, b""), // same 4-tuple, after FIN/RST
        (50000, 80, 9001, ACK, b"two"),
        (50000, 80, 20000, SYN, b""), // a new ISN without closing: new attempt
        (50000, 80, 20001, ACK, b"three"),
    ]);
    assert_eq!(cap.connections.len(), 3);
    assert_eq!(
        summary(&cap),
        vec![
            (0, S, 0, "".into(), SYN),
            (0, S, 0, "".into(), SYN),
            (0, S, 0, "one".into(), 0),
            (0, S, 3, "".into(), FIN),
            (0, C, 0, "".into(), RST),
            (1, S, 0, "".into(), SYN),
            (1, S, 0, "two".into(), 0),
            (2, S, 0, "".into(), SYN),
            (2, S, 0, "three".into(), 0),
        ]
    );
    assert!(cap.connections[0].rst[1]);
}

#[test]
fn cut_segments_report_both_lengths() {
    let seg = tcp(50000, 80, 1, ACK, 0, &[b'a'; 300]);
    let ip = ipv4(&seg);
    let r = Rec {
        ts_ns: 0,
        data: &ip[..140],
        orig: ip.len() as u32,
    };
    let file = pcap_file(E::Le, false, 101, &[r]);
    let cap = Capture::decode(&file).unwrap();
    assert_eq!(cap.counters.truncated, 1);
    let s = cap.segments[0];
    assert_eq!((s.payload.len(), s.wire_len, s.end()), (100, 300, 300));
    assert_eq!(cap.connections[0].cut_bytes, [200, 0]);
}

#[test]
fn streaming_reader_gives_the_same_frames() {
    // Feed the file a few bytes at a time, as a sans-IO caller would.
    for file in [sample_pcap(), sample_pcapng()] {
        let mut r = Reader::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut frames = Vec::new();
        for chunk in file.chunks(7) {
            buf.extend_from_slice(chunk);
            loop {
                match r.next(&buf).unwrap() {
                    Parsed::NeedMore { needed } => {
                        assert!(needed > buf.len());
                        break;
                    }
                    Parsed::Skipped { consumed, .. } => {
                        buf.drain(..consumed);
                    }
                    Parsed::Frame { consumed, frame } => {
                        frames.push((frame.ts_ns, frame.data.to_vec()));
                        buf.drain(..consumed);
                    }
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames.len(), 3);
        assert_eq!(r.offset(), file.len() as u64);
        assert_eq!(frames[1].1, three(LinkType::ETHERNET)[1]);
    }
}
