//! Replays of the `fixtures` crate's HTTP/2 and gRPC captures (real peers:
//! curl, nghttp/nghttpd, node, Go h2c, grpc-go, grpcio) through
//! `protocols::pcap` and `protocols::http2`, checked against what each client
//! said it did, plus a late join at every HEADERS frame of each connection.

mod http2_support;

use http2_support::{Feeder, assert_no_wrong_header};
use protocols::http2::frame::{FRAME_HEADER_LEN, FrameHeader, FrameType, PREFACE};
use protocols::http2::{Http2Config, Start, Upgrade};
use protocols::pcap::{Capture, Dir};
use protocols::record::{Direction, Exchange, Flags, GrpcKind, Side};

/// One connection's bytes per direction, in capture order, as (dir, ts, bytes).
type Chunks = Vec<(Dir, u64, Vec<u8>)>;

fn connections(name: &str) -> Vec<(u16, Chunks)> {
    let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
    let mut out = Vec::new();
    for (i, c) in cap.connections.iter().enumerate() {
        let mut next = [0u64; 2];
        let mut chunks = Vec::new();
        for s in cap.segments.iter().filter(|s| s.conn.index() == i) {
            if s.payload.is_empty() {
                continue;
            }
            let d = s.dir.index();
            assert_eq!(s.pos, next[d], "{name}: segments out of order");
            assert!(!s.cut());
            next[d] = s.end();
            chunks.push((s.dir, s.ts_ns, s.payload.to_vec()));
        }
        out.push((c.client.port(), chunks));
    }
    out
}

fn dir(d: Dir) -> Direction {
    // The traced process is the client: what it writes is egress.
    if d.from_client() {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// Bytes before the HTTP/2 part of an h2c upgrade (request head, 101 head).
fn upgrade_split(chunks: &Chunks) -> Option<(String, Vec<u8>, [usize; 2])> {
    let client: Vec<u8> = chunks
        .iter()
        .filter(|c| c.0.from_client())
        .flat_map(|c| c.2.clone())
        .collect();
    if client.starts_with(PREFACE) {
        return None;
    }
    let server: Vec<u8> = chunks
        .iter()
        .filter(|c| !c.0.from_client())
        .flat_map(|c| c.2.clone())
        .collect();
    let end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&client[..end(&client)]).into_owned();
    let settings = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("http2-settings")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| protocols::http2::decode_http2_settings(v.as_bytes()))
        .unwrap_or_default();
    Some((head, settings, [end(&client), end(&server)]))
}

fn replay(chunks: &Chunks, start_at: Option<(usize, usize)>) -> (Vec<Box<Exchange>>, Feeder) {
    let cfg = Http2Config::default();
    let up = upgrade_split(chunks);
    let start = match (&up, start_at) {
        (_, Some(_)) => Start::LateJoin,
        (None, None) => Start::Preface,
        (Some((head, settings, _)), None) => {
            let mut words = head.split(' ');
            Start::Upgrade(Box::new(Upgrade {
                client: Direction::Egress,
                method: words.next().unwrap().into(),
                path: words.next().unwrap().into(),
                authority: None,
                request: Default::default(),
                settings: Some(settings.clone()),
            }))
        }
    };
    let mut f = Feeder::new(&cfg, start);
    let mut skip = up.as_ref().map(|u| u.2).unwrap_or([0, 0]);
    let mut other_started = false;
    for (i, (d, ts, b)) in chunks.iter().enumerate() {
        let mut b = &b[..];
        let k = d.index();
        let n = skip[k].min(b.len());
        skip[k] -= n;
        b = &b[n..];
        if let Some((ci, off)) = start_at {
            let joined = chunks[ci].0;
            if i < ci {
                continue;
            }
            if i == ci {
                b = &b[off..];
            } else if *d != joined && !other_started {
                other_started = true;
            }
        }
        if !b.is_empty() {
            f.feed(dir(*d), b, *ts);
        }
    }
    let mut out = std::mem::take(&mut f.out);
    f.conn.close(0, &mut out);
    (out, f)
}

fn kind(k: GrpcKind) -> &'static str {
    k.as_str()
}

#[test]
fn fixtures_match_what_clients_saw() {
    let mut checked = 0;
    for name in fixtures::list() {
        let meta = fixtures::recording(name).unwrap();
        if meta.protocol == fixtures::Protocol::Http1 {
            continue;
        }
        let conns = connections(name);
        assert_eq!(conns.len() as u32, meta.connections, "{name}");
        let mut ours: Vec<(u16, Box<Exchange>)> = Vec::new();
        for (port, chunks) in &conns {
            let (ex, f) = replay(chunks, None);
            let c = f.conn.counters();
            assert_eq!(
                (
                    c.malformed_frames,
                    c.hpack_errors,
                    c.resyncs,
                    c.unknown_refs
                ),
                (0, 0, 0, 0),
                "{name}: {c:?}"
            );
            let mut ex = ex;
            ex.sort_by_key(|e| e.stream_id);
            ours.extend(ex.into_iter().map(|e| (*port, e)));
        }
        for want in &meta.exchanges {
            let what = format!("{name} {} {}", want.method, want.path);
            let pos = ours
                .iter()
                .position(|(port, e)| {
                    want.client_port.is_none_or(|p| p == *port)
                        && e.path == want.path
                        && want.stream_id.is_none_or(|s| e.stream_id == Some(s))
                })
                .unwrap_or_else(|| panic!("{what}: not found"));
            let (_, e) = ours.remove(pos);
            assert_eq!(e.side, Side::Client, "{what}");
            assert_eq!(e.method, want.method, "{what}");
            if want.status.is_some() {
                assert_eq!(e.status, want.status, "{what}");
            }
            assert_eq!(e.request.body_len, want.request_body, "{what}");
            let resp = e.response.as_ref().unwrap();
            assert_eq!(resp.body_len, want.response_body, "{what}");
            for t in &want.trailers {
                assert!(
                    resp.trailers.get(t.as_bytes()).is_some(),
                    "{what}: trailer {t}"
                );
            }
            if want.interim.contains(&101) {
                assert!(e.flags.contains(Flags::UPGRADE), "{what}");
            }
            let bad = Flags::INCOMPLETE | Flags::INVALID | Flags::GAP | Flags::HEADERS_PARTIAL;
            assert!(e.flags.0 & bad.0 == 0, "{what}: {:?}", e.flags);
            if let Some(g) = &want.grpc {
                let ours = e.grpc.as_ref().unwrap_or_else(|| panic!("{what}: no gRPC"));
                assert_eq!(ours.service, g.service, "{what}");
                assert_eq!(ours.method, g.method, "{what}");
                assert_eq!(kind(ours.kind), g.kind, "{what}");
                assert_eq!(
                    (ours.req_messages, ours.resp_messages),
                    (g.requests, g.responses),
                    "{what}"
                );
                assert_eq!(ours.status, Some(g.status), "{what}");
                assert_eq!(ours.message, g.message, "{what}");
            }
            checked += 1;
        }
        assert!(
            ours.is_empty(),
            "{name}: exchanges the client did not make: {ours:?}"
        );
    }
    assert!(checked >= 20, "{checked}");
}

/// Join each fixture connection at every HEADERS frame: nothing wrong, ever.
#[test]
fn fixtures_late_join_never_shows_a_wrong_header() {
    let mut joins = 0;
    for name in fixtures::list() {
        let meta = fixtures::recording(name).unwrap();
        if meta.protocol == fixtures::Protocol::Http1 {
            continue;
        }
        for (_, chunks) in connections(name) {
            let (full, _) = replay(&chunks, None);
            let up = upgrade_split(&chunks).map(|u| u.2).unwrap_or([0, 0]);
            // HEADERS frame positions per direction.
            let mut bufs = [Vec::new(), Vec::new()];
            let mut next = [0usize; 2];
            let mut pos = [0usize; 2];
            next[0] = up[0];
            next[1] = up[1];
            if up == [0, 0] {
                next[Dir::ToServer.index()] = PREFACE.len();
            } else {
                next[Dir::ToServer.index()] += PREFACE.len();
            }
            let mut starts = Vec::new();
            for (i, (d, _, b)) in chunks.iter().enumerate() {
                let k = d.index();
                let start = pos[k];
                bufs[k].extend_from_slice(b);
                pos[k] += b.len();
                while next[k] + FRAME_HEADER_LEN <= bufs[k].len() {
                    let h = FrameHeader::parse(&bufs[k][next[k]..]).unwrap();
                    if h.kind == FrameType::Headers && next[k] >= start {
                        starts.push((i, next[k] - start));
                    }
                    next[k] += FRAME_HEADER_LEN + h.len as usize;
                }
            }
            for at in starts {
                joins += 1;
                let (late, f) = replay(&chunks, Some(at));
                assert_eq!(f.conn.counters().hpack_errors, 0, "{name} {at:?}");
                for e in &late {
                    let full_e = full
                        .iter()
                        .find(|x| x.stream_id == e.stream_id)
                        .unwrap_or_else(|| panic!("{name} {at:?}: invented {:?}", e.stream_id));
                    let what = format!("{name} join {at:?} stream {:?}", e.stream_id);
                    if e.flags.contains(Flags::SIDE_UNKNOWN) && e.side != full_e.side {
                        continue;
                    }
                    assert_no_wrong_header(&full_e.request.headers, &e.request.headers, &what);
                    if let (Some(a), Some(b)) = (&full_e.response, &e.response) {
                        assert_no_wrong_header(&a.headers, &b.headers, &what);
                        assert_no_wrong_header(&a.trailers, &b.trailers, &what);
                    }
                }
            }
        }
    }
    assert!(joins > 30, "{joins}");
    eprintln!("{joins} late joins over the fixtures");
}

/// The same captures driven through the reassembly layer (`DataStream`,
/// positions from the pcap) with [`Http2Conn::drive`], as `conn.rs` will:
/// identical exchanges; and with each segment dropped in turn (the hole is
/// given up on by `flush`), nothing invented and no wrong header.
#[test]
fn fixtures_through_data_stream_and_drive() {
    use protocols::http2::Http2Conn;
    use protocols::stream::DataStream;
    let mut drops = 0;
    for name in fixtures::list() {
        let meta = fixtures::recording(name).unwrap();
        if meta.protocol == fixtures::Protocol::Http1 {
            continue;
        }
        let cap = Capture::decode(fixtures::pcap(name).unwrap()).unwrap();
        for (ci, (_, chunks)) in connections(name).into_iter().enumerate() {
            if upgrade_split(&chunks).is_some() {
                continue; // the HTTP/1.1 part is conn.rs's business
            }
            let (full, _) = replay(&chunks, None);
            let segs: Vec<_> = cap
                .segments
                .iter()
                .filter(|s| s.conn.index() == ci && !s.payload.is_empty())
                .collect();
            for victim in std::iter::once(None).chain((0..segs.len()).map(Some)) {
                let mut conn = Http2Conn::new(&Http2Config::default(), Start::Preface);
                let mut streams = [DataStream::new(1 << 20), DataStream::new(1 << 20)];
                let mut out = Vec::new();
                for (i, s) in segs.iter().enumerate() {
                    if Some(i) == victim {
                        continue;
                    }
                    let d = dir(s.dir);
                    streams[d.index()].push(s.pos, s.ts_ns, s.payload);
                    conn.drive(d, &mut streams[d.index()], &mut out);
                }
                for d in [Direction::Egress, Direction::Ingress] {
                    streams[d.index()].flush();
                    conn.drive(d, &mut streams[d.index()], &mut out);
                }
                conn.close(0, &mut out);
                if victim.is_none() {
                    assert_eq!(out, full, "{name}");
                    continue;
                }
                drops += 1;
                for e in &out {
                    let what = format!(
                        "{name} without segment {victim:?}, stream {:?}",
                        e.stream_id
                    );
                    let full_e = full
                        .iter()
                        .find(|x| x.stream_id == e.stream_id)
                        .unwrap_or_else(|| panic!("{what}: invented"));
                    let cut = e.flags.contains(Flags::GAP);
                    let check = |a: &protocols::record::Headers, b: &protocols::record::Headers| {
                        http2_support::assert_no_wrong_header_prefix(a, b, cut, &what);
                    };
                    if !(e.flags.contains(Flags::SIDE_UNKNOWN) && e.side != full_e.side) {
                        check(&full_e.request.headers, &e.request.headers);
                        if let (Some(a), Some(b)) = (&full_e.response, &e.response) {
                            check(&a.headers, &b.headers);
                            check(&a.trailers, &b.trailers);
                        }
                    }
                }
            }
        }
    }
    assert!(drops > 50, "{drops}");
}
