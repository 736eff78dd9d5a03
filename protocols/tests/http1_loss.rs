//! Loss: drop bytes on purpose, assert exactly which exchanges survive, with
//! which flags, and how many bytes were lost or skipped.

mod http1_support;

use http1_support::*;
use protocols::conn::Config;

#[test]
fn known_hole_inside_a_request_body_stays_in_sync() {
    let mut f = Feed::new();
    f.send(REQ, b"POST /u HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
    f.truncated(REQ, &[b'a'; 100], 40);
    f.send(RESP, &ok("done"));
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok(""));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("POST", "/u", Some(200), 100, Some(4), &["truncated", "gap"]),
            x("GET", "/2", Some(200), 0, Some(0), &[]),
        ]
    );
    assert_eq!(got[0].request.body_preview, vec![b'a'; 40]);
    let st = f.conn.stats();
    assert_eq!(st.lost_bytes, 60);
    assert_eq!(st.lost_known_bytes, 60);
    assert_eq!(st.resync_skipped_bytes, 0);
}

#[test]
fn known_hole_ending_a_body_exactly() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    f.truncated(RESP, b"0123456789", 3);
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("x"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(10), &["truncated", "gap"]),
            x("GET", "/2", Some(200), 0, Some(1), &[]),
        ]
    );
    assert_eq!(f.conn.stats().lost_bytes, 7);
}

#[test]
fn unknown_hole_inside_a_response_body_after_the_window() {
    let cfg = Config {
        reorder_window: 64,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    f.send(REQ, &get("/1"));
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n");
    f.send(RESP, &[b'x'; 50]);
    f.drop_bytes(RESP, 50);
    f.send(RESP, &[b'y'; 100]);
    // 100 bytes wait beyond the hole: more than the window, so it is skipped
    // without a flush and the exchange completes.
    assert_eq!(
        sums(&f.out),
        vec![x("GET", "/1", Some(200), 0, Some(200), &["gap"])]
    );
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("z"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(200), &["gap"]),
            x("GET", "/2", Some(200), 0, Some(1), &[]),
        ]
    );
    assert_eq!(
        got[0].response.as_ref().unwrap().body_preview,
        vec![b'x'; 50]
    );
    assert_eq!(f.conn.stats().lost_bytes, 50);
    assert_eq!(f.conn.stats().lost_known_bytes, 0);
}

#[test]
fn unknown_hole_waits_for_a_late_chunk() {
    // The hole is filled before the window runs out: nothing is lost.
    let mut f = Feed::new();
    let resp = ok("abcdefghij");
    f.send(REQ, &get("/1"));
    let (a, b) = resp.split_at(30);
    let pos = f.pos[RESP.index()];
    f.conn.data(RESP, pos + 30, 5, b, &mut f.out);
    assert!(f.out.is_empty());
    f.conn.data(RESP, pos, 4, a, &mut f.out);
    assert_eq!(
        sums(&f.out),
        vec![x("GET", "/1", Some(200), 0, Some(10), &[])]
    );
    assert_eq!(f.conn.stats().lost_bytes, 0);
}

#[test]
fn whole_request_lost_sequential() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.send(RESP, &ok("a"));
    let lost = get("/2").len();
    f.drop_bytes(REQ, lost);
    f.send(RESP, &ok("bb"));
    f.send(REQ, &get("/3"));
    f.send(RESP, &ok("ccc"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(1), &[]),
            x("", "", Some(200), 0, Some(2), &["gap", "no_request"]),
            x("GET", "/3", Some(200), 0, Some(3), &["resynced"]),
        ]
    );
    let st = f.conn.stats();
    assert_eq!(st.lost_bytes, lost as u64);
    assert_eq!(st.resync_skipped_bytes, 0);
    assert_eq!(st.no_request, 1);
}

#[test]
fn whole_response_lost_sequential() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.send(RESP, &ok("a"));
    f.send(REQ, &get("/2"));
    let lost = ok("bb").len();
    f.drop_bytes(RESP, lost);
    f.send(REQ, &get("/3"));
    f.send(RESP, &ok("ccc"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(1), &[]),
            x("GET", "/2", None, 0, None, &["gap", "incomplete"]),
            x("GET", "/3", Some(200), 0, Some(3), &["resynced"]),
        ]
    );
    assert_eq!(f.conn.stats().lost_bytes, lost as u64);
}

#[test]
fn gap_across_a_chunk_boundary_resyncs() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.send(
        RESP,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    f.send(RESP, b"5\r\nhello\r\n");
    f.drop_bytes(RESP, b"5\r\nworld\r\n".len());
    f.send(RESP, b"0\r\n\r\n");
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("x"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(5), &["gap", "incomplete"]),
            x("GET", "/2", Some(200), 0, Some(1), &["resynced"]),
        ]
    );
    let st = f.conn.stats();
    assert_eq!(st.lost_bytes, 10);
    assert_eq!(st.resync_skipped_bytes, 5, "the last-chunk line");
}

#[test]
fn gap_inside_chunk_data_stays_in_sync() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.send(
        RESP,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    );
    f.drop_bytes(RESP, 2);
    f.send(RESP, b"\r\n3\r\nabc\r\n0\r\n\r\n");
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("x"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(8), &["gap"]),
            x("GET", "/2", Some(200), 0, Some(1), &[]),
        ]
    );
    assert_eq!(got[0].response.as_ref().unwrap().body_preview, b"hel");
    assert_eq!(f.conn.stats().lost_bytes, 2);
}

#[test]
fn gap_inside_a_request_head() {
    let mut f = Feed::new();
    f.send(REQ, b"GET /1 HTTP/1.1\r\nHo");
    f.drop_bytes(REQ, 9);
    f.send(RESP, &ok("a"));
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("b"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(1), &["gap", "incomplete"]),
            x("GET", "/2", Some(200), 0, Some(1), &["resynced"]),
        ]
    );
    let st = f.conn.stats();
    assert_eq!(st.lost_bytes, 9);
    assert_eq!(st.resync_skipped_bytes, 19, "the cut head");
}

#[test]
fn first_bytes_of_the_connection_lost() {
    let mut f = Feed::new();
    let lost = get("/1").len();
    f.drop_bytes(REQ, lost);
    f.send(RESP, &ok("a"));
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("b"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("", "", Some(200), 0, Some(1), &["gap", "no_request"]),
            x(
                "GET",
                "/2",
                Some(200),
                0,
                Some(1),
                // Lost bytes, not a late join: the connection was seen from
                // its start.
                &["resynced"]
            ),
        ]
    );
    assert_eq!(f.conn.stats().lost_bytes, lost as u64);
}

#[test]
fn pipelined_request_lost_in_the_middle() {
    // Three requests written in three syscalls, the second event lost; the
    // responses come back in one read.
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    f.drop_bytes(REQ, get("/2").len());
    f.send(REQ, &get("/3"));
    f.flush();
    let mut resp = ok("1");
    resp.extend_from_slice(&ok("22"));
    resp.extend_from_slice(&ok("333"));
    f.send(RESP, &resp);
    let got = f.close();
    // All three responses start at the same timestamp, after every request:
    // timestamps can't tell which request was lost, FIFO pairs the rest.
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(1), &[]),
            x("GET", "/3", Some(200), 0, Some(2), &["resynced"]),
            x("", "", Some(200), 0, Some(3), &["no_request"]),
        ]
    );
}

#[test]
fn retransmissions_change_nothing() {
    let mut clean = Feed::new();
    let mut dup = Feed::new();
    let req = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    let resp = ok("world");
    clean.send(REQ, req).send(RESP, &resp);
    // Same bytes, with repeats and overlapping segments.
    dup.conn.data(REQ, 0, 1000, &req[..20], &mut dup.out);
    dup.conn.data(REQ, 10, 1000, &req[10..30], &mut dup.out);
    dup.conn.data(REQ, 0, 1000, &req[..30], &mut dup.out);
    dup.conn.data(REQ, 25, 1000, &req[25..], &mut dup.out);
    dup.conn.data(RESP, 0, 2000, &resp, &mut dup.out);
    dup.conn.data(RESP, 0, 2000, &resp, &mut dup.out);
    let a = clean.close();
    let b = dup.close();
    assert_eq!(a, b);
    assert_eq!(
        dup.conn.stats().duplicate_bytes,
        10 + 30 + 5 + resp.len() as u64
    );
    assert_eq!(dup.conn.stats().lost_bytes, 0);
}

#[test]
fn reordered_chunks_give_the_same_exchanges() {
    let mut conversation: Vec<(protocols::record::Direction, Vec<u8>)> = Vec::new();
    for i in 0..5 {
        conversation.push((
            REQ,
            format!("POST /{i} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").into_bytes(),
        ));
        conversation.push((RESP, ok(&"r".repeat(i + 1))));
    }
    let mut clean = Feed::new();
    for (d, b) in &conversation {
        clean.send(*d, b);
    }
    let want = clean.close();
    // Cut each direction into 7-byte chunks and deliver each pair of
    // chunks swapped.
    let mut shuffled = Feed::new();
    for dir in [REQ, RESP] {
        let all: Vec<u8> = conversation
            .iter()
            .filter(|(d, _)| *d == dir)
            .flat_map(|(_, b)| b.clone())
            .collect();
        let chunks: Vec<(usize, &[u8])> =
            all.chunks(7).enumerate().map(|(i, c)| (i * 7, c)).collect();
        for pair in chunks.chunks(2) {
            for (pos, c) in pair.iter().rev() {
                shuffled
                    .conn
                    .data(dir, *pos as u64, 0, c, &mut shuffled.out);
            }
        }
    }
    let got = shuffled.close();
    assert_eq!(sums(&got), sums(&want));
    assert_eq!(shuffled.conn.stats().lost_bytes, 0);
}

#[test]
fn capture_cap_cuts_a_response_head() {
    // A 300-byte head written in one syscall, only 40 bytes captured.
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    let mut resp = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n".to_vec();
    resp.extend_from_slice(
        format!("X-Pad: {}\r\nContent-Length: 0\r\n\r\n", "p".repeat(230)).as_bytes(),
    );
    f.truncated(RESP, &resp, 40);
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("x"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x(
                "GET",
                "/1",
                Some(503),
                0,
                Some(0),
                &["truncated", "gap", "incomplete"]
            ),
            x("GET", "/2", Some(200), 0, Some(1), &["resynced"]),
        ]
    );
    assert_eq!(got[0].reason.as_deref(), Some("Service Unavailable"));
    let st = f.conn.stats();
    assert_eq!(st.lost_known_bytes, resp.len() as u64 - 40);
    assert_eq!(st.resync_skipped_bytes, 40);
}

#[test]
fn capture_cap_in_a_chunked_body_across_chunks_resyncs() {
    // Known loss that swallows chunk boundaries: the body's end can't be
    // found, the next response is found by resync.
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        resp.extend_from_slice(b"100\r\n");
        resp.extend_from_slice(&[b'd'; 256]);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    f.truncated(RESP, &resp, 100);
    f.send(REQ, &get("/2"));
    f.send(RESP, &ok("yz"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x(
                "GET",
                "/1",
                Some(200),
                0,
                Some(48),
                &["truncated", "gap", "incomplete"]
            ),
            x("GET", "/2", Some(200), 0, Some(2), &["resynced"]),
        ]
    );
    assert_eq!(f.conn.stats().lost_bytes, resp.len() as u64 - 100);
}

#[test]
fn memory_stays_bounded() {
    use protocols::record::Direction;
    let cfg = Config::default();
    // 1. Bodies are not buffered: a 4 MiB body in 16 KiB reads.
    let mut f = Feed::config(&cfg);
    f.send(REQ, &get("/big"));
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n");
    for _ in 0..256 {
        f.send(RESP, &[b'z'; 16384]);
        assert_eq!(f.conn.buffered(), [0, 0]);
    }
    assert_eq!(f.close().len(), 1);
    // 2. Out-of-order chunks beyond an unknown hole: bounded by the window.
    let mut f = Feed::config(&cfg);
    f.send(REQ, &get("/big"));
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n");
    f.drop_bytes(RESP, 100);
    for _ in 0..64 {
        f.send(RESP, &[b'z'; 16384]);
        assert!(f.conn.buffered()[Direction::Ingress.index()] <= cfg.reorder_window + 16384);
    }
    // 3. A response held for its request: bounded by the window, then let go.
    let mut f = Feed::config(&cfg);
    f.send(RESP, b"HTTP/1.1 200 OK\r\n\r\n");
    for _ in 0..64 {
        f.send(RESP, &[b'z'; 16384]);
        assert!(f.conn.buffered()[Direction::Ingress.index()] <= cfg.reorder_window + 16384);
    }
    // 4. A head that never ends: cut at the head cap, recorded invalid.
    let mut f = Feed::config(&cfg);
    f.send(REQ, &get("/1"));
    f.send(RESP, &ok(""));
    f.send(REQ, b"GET /endless HTTP/1.1\r\n");
    for _ in 0..64 {
        f.send(REQ, &[b'X'; 4096]);
        assert!(f.conn.buffered()[REQ.index()] <= cfg.max_head + 4096);
    }
    assert_eq!(f.conn.stats().invalid, 0, "counted when emitted");
    let got = f.close();
    assert_eq!(got.len(), 2);
    assert!(got[1].flags.contains(protocols::record::Flags::INVALID));
    assert!(
        got[1]
            .flags
            .contains(protocols::record::Flags::HEADERS_TRUNCATED)
    );
}

/// Joined mid-way while the server's read of a request was in flight: the
/// first response we see answers a request we never saw. It must come out
/// on its own, and the next response must pair with the next request, never
/// shifted by one.
#[test]
fn late_join_with_the_first_request_missed_pairs_nothing_wrongly() {
    use protocols::conn::{Config, Connection};
    use protocols::record::{Direction, Flags};
    let mut c = Connection::new_late(&Config::default());
    let mut out = Vec::new();
    // Server's view: ingress = requests, egress = responses. Response to
    // /a (request missed), then request /b and its response.
    c.data(
        Direction::Egress,
        0,
        10,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA",
        &mut out,
    );
    c.data(
        Direction::Ingress,
        0,
        20,
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        &mut out,
    );
    c.data(
        Direction::Egress,
        39,
        30,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nB",
        &mut out,
    );
    c.close(40, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|e| {
            (
                e.path.clone(),
                e.status,
                e.flags.contains(Flags::NO_REQUEST),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (String::new(), Some(200), true),
            ("/b".to_string(), Some(404), false),
        ]
    );
}
