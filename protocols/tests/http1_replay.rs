//! Real peers: every HTTP/1 recording in `fixtures` (curl, python
//! http.server, node, nginx, Go) replayed segment by segment through
//! `Connection`, the way live capture feeds it, and checked against what the
//! client itself reported.

use protocols::conn::{Config, Connection, Detected, Stats};
use protocols::pcap::{Capture, Dir};
use protocols::record::{Direction, Exchange, Flags, Side};

/// One TCP connection of a recording, replayed. `client_view`: the traced
/// process is the client (its writes are requests); otherwise the server.
struct Replayed {
    client_port: u16,
    exchanges: Vec<Box<Exchange>>,
    stats: Stats,
    detected: Detected,
    side: Option<Side>,
}

fn replay(name: &str, client_view: bool) -> Vec<Replayed> {
    let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
    let mut out = Vec::new();
    for conn in &cap.connections {
        let mut c = Connection::new(&Config::default());
        let mut ex = Vec::new();
        for s in cap.segments.iter().filter(|s| s.conn == conn.id) {
            let dir = match (s.dir, client_view) {
                (Dir::ToServer, true) | (Dir::ToClient, false) => Direction::Egress,
                _ => Direction::Ingress,
            };
            if !s.payload.is_empty() {
                c.data(dir, s.pos, s.ts_ns, s.payload, &mut ex);
            }
            if s.cut() {
                // The snap length cut the frame: the rest is a known hole.
                let have = s.payload.len() as u64;
                c.lost(dir, s.pos + have, s.wire_len as u64 - have, &mut ex);
            }
        }
        c.close(conn.last_ns, &mut ex);
        out.push(Replayed {
            client_port: conn.client.port(),
            exchanges: ex,
            stats: c.stats(),
            detected: c.detected(),
            side: c.side(),
        });
    }
    out
}

/// (method, path, status, request body, response body, interim) as the
/// client reported them, per client port.
type Seen = (String, String, Option<u16>, u64, u64, Vec<u16>);

fn client_account(name: &str, port: u16) -> Vec<Seen> {
    fixtures::recording(name)
        .unwrap()
        .exchanges
        .iter()
        .filter(|e| e.client_port == Some(port))
        .map(|e| {
            (
                e.method.clone(),
                e.path.clone(),
                e.status,
                e.request_body,
                e.response_body,
                e.interim.clone(),
            )
        })
        .collect()
}

fn ours(ex: &[Box<Exchange>]) -> Vec<Seen> {
    ex.iter()
        .map(|e| {
            (
                e.method.clone(),
                e.path.clone(),
                e.status,
                e.request.body_len,
                e.response.as_ref().map_or(0, |r| r.body_len),
                e.interim.clone(),
            )
        })
        .collect()
}

const CLEAN: &[&str] = &[
    "h1-chunked-node",
    "h1-curl-keepalive-nginx",
    "h1-expect-continue-node",
    "h1-go-nethttp",
    "h1-large-nginx",
    "h1-nginx-static-ipv6",
    "h1-pipelined-node",
    "h1-python-http10",
];

#[test]
fn every_http1_recording_is_covered() {
    let mut http1: Vec<_> = fixtures::recordings()
        .unwrap()
        .into_iter()
        .filter(|r| r.protocol == fixtures::Protocol::Http1)
        .map(|r| r.name)
        .collect();
    http1.sort();
    let mut covered: Vec<_> = CLEAN.iter().map(|s| s.to_string()).collect();
    covered.push("h1-snaplen-nginx".into());
    covered.sort();
    assert_eq!(
        http1, covered,
        "a new HTTP/1 recording needs a replay assertion"
    );
}

#[test]
fn clean_recordings_match_the_client_exactly() {
    for name in CLEAN {
        let meta = fixtures::recording(name).unwrap();
        let conns = replay(name, true);
        assert_eq!(conns.len() as u32, meta.connections, "{name}");
        let mut total = 0;
        for c in &conns {
            let what = format!("{name} port {}", c.client_port);
            assert_eq!(
                ours(&c.exchanges),
                client_account(name, c.client_port),
                "{what}"
            );
            for e in &c.exchanges {
                assert!(
                    e.flags.is_empty(),
                    "{what}: {} {} {:?}",
                    e.method,
                    e.path,
                    e.flags
                );
                assert_eq!(e.side, Side::Client, "{what}");
                assert!(e.latency_ns().is_some_and(|l| l > 0), "{what}");
                let r = e.response.as_ref().unwrap();
                assert!(e.request.first_ns <= e.request.last_ns, "{what}");
                assert!(
                    e.request.first_ns <= r.first_ns && r.first_ns <= r.last_ns,
                    "{what}"
                );
                assert!(e.authority.is_some(), "{what}: Host");
            }
            let s = c.stats;
            assert_eq!(
                (
                    s.lost_bytes,
                    s.resync_skipped_bytes,
                    s.invalid,
                    s.incomplete
                ),
                (0, 0, 0, 0),
                "{what}: {s:?}"
            );
            assert_eq!(c.detected, Detected::Http1, "{what}");
            assert_eq!(c.side, Some(Side::Client), "{what}");
            total += c.exchanges.len();
        }
        assert_eq!(total, meta.exchanges.len(), "{name}");
    }
}

#[test]
fn clean_recordings_from_the_server_side() {
    // The same bytes seen by the server process: requests are what it reads.
    for name in CLEAN {
        for (client, server) in replay(name, true).iter().zip(replay(name, false).iter()) {
            assert_eq!(server.side, Some(Side::Server), "{name}");
            assert_eq!(ours(&server.exchanges), ours(&client.exchanges), "{name}");
            assert!(
                server.exchanges.iter().all(|e| e.side == Side::Server),
                "{name}"
            );
        }
    }
}

#[test]
fn python_http10_close_delimited_cgi_body() {
    let conns = replay("h1-python-http10", true);
    let cgi = conns
        .iter()
        .flat_map(|c| &c.exchanges)
        .find(|e| e.path == "/cgi-bin/stream.py")
        .unwrap();
    // curl asked in HTTP/1.1 (the exchange's version is the request's); the
    // server answered in HTTP/1.0, without a length: the body ends at close.
    assert_eq!(cgi.version, "HTTP/1.1");
    let r = cgi.response.as_ref().unwrap();
    assert_eq!(r.headers.get(b"content-length"), None);
    assert_eq!(r.body_len, 3720);
}

#[test]
fn pipelined_node_head_has_no_body_and_chunked_is_dechunked() {
    let conns = replay("h1-pipelined-node", true);
    let ex = &conns[0].exchanges;
    let head = ex.iter().find(|e| e.method == "HEAD").unwrap();
    let r = head.response.as_ref().unwrap();
    assert!(
        r.headers.get(b"content-length").is_some(),
        "HEAD answered with a length"
    );
    assert_eq!(r.body_len, 0);
    let chunked = ex.iter().find(|e| e.path == "/chunked/3000/3").unwrap();
    let r = chunked.response.as_ref().unwrap();
    assert_eq!(r.headers.get(b"transfer-encoding"), Some(&b"chunked"[..]));
    assert!(r.wire_len > r.body_len, "chunk framing counted on the wire");
}

#[test]
fn snap_length_cuts_are_reported_not_hidden() {
    let name = "h1-snaplen-nginx";
    let meta = fixtures::recording(name).unwrap();
    let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
    let cut: u64 = cap.connections[0].cut_bytes.iter().sum();
    let conns = replay(name, true);
    let c = &conns[0];
    // Every byte the snap length cut is counted lost, as a known loss.
    assert_eq!(c.stats.lost_bytes, cut);
    assert_eq!(c.stats.lost_known_bytes, cut);
    // Every request the client made is there, in order, with its status
    // (status lines fit in the 94 captured bytes); bytes were lost in each.
    let got: Vec<_> = c
        .exchanges
        .iter()
        .map(|e| (e.method.as_str(), e.path.as_str(), e.status))
        .collect();
    let want: Vec<_> = meta
        .exchanges
        .iter()
        .map(|e| (e.method.as_str(), e.path.as_str(), e.status))
        .collect();
    assert_eq!(got, want);
    // The heads were cut before Content-Length: each response is known to
    // be cut short (its length is not), and says so.
    for e in &c.exchanges {
        let want = Flags::GAP | Flags::TRUNCATED | Flags::INCOMPLETE;
        assert!(e.flags.contains(want), "{} {:?}", e.path, e.flags);
    }
}

#[test]
fn h2c_upgrade_is_handed_over() {
    let name = "h2c-curl-upgrade";
    let meta = fixtures::recording(name).unwrap();
    let conns = replay(name, true);
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    // The upgrade request is HTTP/2 stream 1 (after its 101); every request
    // the client made comes out once, as the client saw it.
    let got: Vec<_> = c
        .exchanges
        .iter()
        .map(|e| {
            (
                e.method.clone(),
                e.path.clone(),
                e.status,
                e.response.as_ref().map_or(0, |r| r.body_len),
                e.interim.clone(),
            )
        })
        .collect();
    let want: Vec<_> = meta
        .exchanges
        .iter()
        .map(|e| {
            (
                e.method.clone(),
                e.path.clone(),
                e.status,
                e.response_body,
                e.interim.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let ids: Vec<_> = c.exchanges.iter().map(|e| e.stream_id).collect();
    assert_eq!(ids, [Some(1), Some(3), Some(5)]);
    assert!(c.exchanges[0].flags.contains(Flags::UPGRADE));
    assert_eq!(c.detected, Detected::Http2);
    assert_eq!(c.stats.opaque_bytes, 0);
    assert_eq!(c.stats.lost_bytes, 0);
}
