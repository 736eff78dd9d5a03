//! Every real-peer recording through the pcap reader: the bytes of each TCP
//! connection, put in position order, are what tshark reassembled, and the
//! connections are the ones the client reported.

use protocols::pcap::{Capture, ClientBy, ConnId, Dir};

/// A test-only stand-in for reassembly: lays each segment's captured bytes at
/// its position (first writer wins on overlap) and counts bytes no segment
/// covered.
fn stream(cap: &Capture<'_>, conn: ConnId, dir: Dir) -> (Vec<u8>, u64) {
    let end = cap.connections[conn.index()].end[dir.index()] as usize;
    let mut bytes = vec![0u8; end];
    let mut have = vec![false; end];
    for s in cap.segments_of(conn, dir) {
        for (i, &b) in s.payload.iter().enumerate() {
            let at = s.pos as usize + i;
            if !have[at] {
                bytes[at] = b;
                have[at] = true;
            }
        }
    }
    let gaps = have.iter().filter(|h| !**h).count() as u64;
    (bytes, gaps)
}

/// What tshark follows when the snap length cut frames: each distinct
/// segment's captured bytes, in position order. The second value is always 0.
fn captured_only(cap: &Capture<'_>, conn: ConnId, dir: Dir) -> (Vec<u8>, u64) {
    let mut segs: Vec<_> = cap
        .segments_of(conn, dir)
        .filter(|s| !s.payload.is_empty())
        .collect();
    segs.sort_by_key(|s| s.pos);
    segs.dedup_by_key(|s| s.pos);
    (
        segs.iter()
            .flat_map(|s| s.payload.iter().copied())
            .collect(),
        0,
    )
}

#[test]
fn recordings_match_tshark_and_the_client() {
    let names = fixtures::list();
    assert!(!names.is_empty());
    for name in names {
        let meta = fixtures::recording(name).unwrap();
        let tshark = fixtures::tshark(name).unwrap();
        let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
        assert_eq!(cap.stopped, None, "{name}");
        let c = cap.counters;
        let cut = meta.snaplen < 262_144;
        assert_eq!(
            (c.malformed, c.non_tcp, c.fragments, c.unknown_link),
            (0, 0, 0, 0),
            "{name}: {c:?}"
        );
        assert_eq!(c.truncated > 0, cut, "{name}: {c:?}");
        assert_eq!(c.tcp, c.packets, "{name}");
        assert_eq!(cap.connections.len() as u32, meta.connections, "{name}");
        assert_eq!(cap.connections.len(), tshark.len(), "{name}");

        for (conn, ts) in cap.connections.iter().zip(&tshark) {
            let what = format!("{name} connection {}", conn.id.0);
            // Loopback captures start before the client connects.
            assert_eq!(conn.client_by, ClientBy::Syn, "{what}");
            assert_eq!(conn.syn, [true, true], "{what}");
            assert_eq!(conn.server.port(), meta.server_port, "{what}");
            assert_eq!(ts.node0_port(), Some(conn.client.port()), "{what}");
            assert_eq!(ts.node1_port(), Some(conn.server.port()), "{what}");
            assert!(conn.first_ns <= conn.last_ns, "{what}");
            // 2020-01-01 .. 2100-01-01: the timestamps were scaled right.
            assert!(
                (1_577_836_800_000_000_000..4_102_444_800_000_000_000).contains(&conn.first_ns),
                "{what}: {}",
                conn.first_ns
            );

            for (dir, len, digest) in [
                (Dir::ToServer, ts.node0_len, ts.node0_digest()),
                (Dir::ToClient, ts.node1_len, ts.node1_digest()),
            ] {
                let (bytes, gaps) = if cut {
                    captured_only(&cap, conn.id, dir)
                } else {
                    stream(&cap, conn.id, dir)
                };
                assert_eq!(gaps, 0, "{what} {dir:?}");
                assert_eq!(bytes.len() as u64, len, "{what} {dir:?}");
                assert_eq!(Some(fixtures::fnv1a64(&bytes)), digest, "{what} {dir:?}");
            }
        }

        for e in &meta.exchanges {
            if let Some(p) = e.client_port {
                assert!(
                    cap.connections.iter().any(|c| c.client.port() == p),
                    "{name}: no connection from client port {p}"
                );
            }
        }
    }
}

#[test]
fn request_lines_are_where_the_client_put_them() {
    // A light check on content: each HTTP/1 request the client reported
    // appears in its connection's client-to-server bytes, in order.
    for name in fixtures::list() {
        let meta = fixtures::recording(name).unwrap();
        if meta.protocol != fixtures::Protocol::Http1 {
            continue;
        }
        let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
        for conn in &cap.connections {
            let (bytes, _) = stream(&cap, conn.id, Dir::ToServer);
            let text = String::from_utf8_lossy(&bytes);
            let mut from = 0;
            for e in meta
                .exchanges
                .iter()
                .filter(|e| e.client_port == Some(conn.client.port()))
            {
                let line = format!("{} {} HTTP/1.1\r\n", e.method, e.path);
                let at = text[from..]
                    .find(&line)
                    .unwrap_or_else(|| panic!("{name}: {line:?} not found in order"));
                from += at + line.len();
            }
        }
    }
}

#[test]
fn snap_length_cuts_are_known_gaps() {
    // h1-snaplen-nginx: frames cut at 160 bytes. Wire lengths stay exact, so
    // the stream's extent is whole and the missing bytes are counted.
    let name = "h1-snaplen-nginx";
    let meta = fixtures::recording(name).unwrap();
    let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
    let conn = &cap.connections[0];
    let (_, gaps) = stream(&cap, conn.id, Dir::ToClient);
    assert!(gaps > 0);
    assert_eq!(gaps, conn.cut_bytes[Dir::ToClient.index()]);
    let bodies: u64 = meta.exchanges.iter().map(|e| e.response_body).sum();
    // Every response body byte is inside the stream's extent, heads too.
    assert!(conn.end[Dir::ToClient.index()] > bodies);
    for s in cap.segments_of(conn.id, Dir::ToClient) {
        assert!(s.payload.len() <= 94, "{s:?}");
        assert_eq!(s.cut(), s.wire_len > 94);
    }
}
