//! HTTP/1.x through the public entry point, one case per framing and
//! stitching rule (RFC 9112 §6.3 and §9.3), table-driven.

mod http1_support;

use http1_support::*;
use protocols::conn::{Config, Connection, Detected};
use protocols::record::{Direction, Flags, Side};

type Steps = &'static [(Direction, &'static [u8])];

struct Case {
    name: &'static str,
    steps: Steps,
    want: Vec<Sum>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "content-length",
            steps: &[
                (REQ, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            ],
            want: vec![x("GET", "/a", Some(200), 0, Some(5), &[])],
        },
        Case {
            name: "keep-alive, split everywhere",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\nHo"),
                (REQ, b"st: h\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Len"),
                (RESP, b"gth: 3\r\n\r\nab"),
                (RESP, b"c"),
                (REQ, b"POST /2 HTTP/1.1\r\nContent-Length: 4\r\n\r\nwx"),
                (REQ, b"yz"),
                (RESP, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(3), &[]),
                x("POST", "/2", Some(201), 4, Some(0), &[]),
            ],
        },
        Case {
            name: "chunked with extensions and trailers",
            steps: &[
                (REQ, b"GET /c HTTP/1.1\r\n\r\n"),
                (
                    RESP,
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
                      4;ext=1\r\nWiki\r\n5\r\npedia\r\nE ; a ; b=\"c\"\r\n in\r\n\r\nchunks.\r\n\
                      0\r\nX-Sum: 42\r\n\r\n",
                ),
                (REQ, b"GET /next HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 204 No Content\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/c", Some(200), 0, Some(23), &[]),
                x("GET", "/next", Some(204), 0, Some(0), &[]),
            ],
        },
        Case {
            name: "chunked request body",
            steps: &[
                (REQ, b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ],
            want: vec![x("POST", "/up", Some(200), 3, Some(2), &[])],
        },
        Case {
            name: "close-delimited response ends at close",
            steps: &[
                (REQ, b"GET /f HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome "),
                (RESP, b"bytes"),
            ],
            want: vec![x("GET", "/f", Some(200), 0, Some(10), &[])],
        },
        Case {
            name: "HEAD response has no body despite Content-Length",
            steps: &[
                (REQ, b"HEAD /big HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
                (REQ, b"GET /small HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            ],
            want: vec![
                x("HEAD", "/big", Some(200), 0, Some(0), &[]),
                x("GET", "/small", Some(200), 0, Some(2), &[]),
            ],
        },
        Case {
            name: "204 and 304 have no body",
            steps: &[
                (REQ, b"DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nIf-None-Match: \"e\"\r\n\r\n"),
                (RESP, b"HTTP/1.1 204 No Content\r\n\r\n"),
                (RESP, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
            ],
            want: vec![
                x("DELETE", "/x", Some(204), 0, Some(0), &[]),
                x("GET", "/y", Some(304), 0, Some(0), &[]),
            ],
        },
        Case {
            name: "expect 100-continue",
            steps: &[
                (REQ, b"PUT /f HTTP/1.1\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n"),
                (RESP, b"HTTP/1.1 100 Continue\r\n\r\n"),
                (REQ, b"abcdef"),
                (RESP, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![x("PUT", "/f", Some(201), 6, Some(0), &[])],
        },
        Case {
            name: "several interim responses",
            steps: &[
                (REQ, b"GET /p HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"),
            ],
            want: vec![x("GET", "/p", Some(200), 0, Some(1), &[])],
        },
        Case {
            name: "pipelining: three requests before any response",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 1\r\n\r\nz"),
                (
                    RESP,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n\
                      HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\ncc",
                ),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(1), &[]),
                x("HEAD", "/2", Some(200), 0, Some(0), &[]),
                x("POST", "/3", Some(200), 1, Some(2), &[]),
            ],
        },
        Case {
            name: "HTTP/1.0 without keep-alive",
            steps: &[
                (REQ, b"GET /old HTTP/1.0\r\n\r\n"),
                (RESP, b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\n<html></html>"),
            ],
            want: vec![x("GET", "/old", Some(200), 0, Some(13), &[])],
        },
        Case {
            name: "HTTP/1.0 with keep-alive",
            steps: &[
                (REQ, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                (RESP, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na"),
                (REQ, b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                (RESP, b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/a", Some(200), 0, Some(1), &[]),
                x("GET", "/b", Some(404), 0, Some(0), &[]),
            ],
        },
        Case {
            name: "websocket upgrade: opaque tail",
            steps: &[
                (REQ, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
                (RESP, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
                (REQ, b"\x81\x85GET / HTTP/1.1\r\n\r\n"),
                (RESP, b"\x81\x02hi"),
            ],
            want: vec![x("GET", "/ws", Some(101), 0, Some(0), &["upgrade"])],
        },
        Case {
            name: "upgrade refused: stays HTTP/1",
            steps: &[
                (REQ, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
                (REQ, b"GET /after HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/ws", Some(400), 0, Some(0), &[]),
                x("GET", "/after", Some(200), 0, Some(0), &[]),
            ],
        },
        Case {
            name: "CONNECT tunnel",
            steps: &[
                (REQ, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 Connection Established\r\n\r\n"),
                (REQ, b"\x16\x03\x01\x00\x05hello"),
                (RESP, b"\x16\x03\x03\x00\x02hi"),
            ],
            want: vec![x("CONNECT", "example.com:443", Some(200), 0, Some(0), &["tunnel"])],
        },
        Case {
            name: "CONNECT refused: body framed, HTTP/1 goes on",
            steps: &[
                (REQ, b"CONNECT a:443 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndeny"),
                (REQ, b"CONNECT a:443 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\n\r\n"),
            ],
            want: vec![
                x("CONNECT", "a:443", Some(407), 0, Some(4), &[]),
                x("CONNECT", "a:443", Some(200), 0, Some(0), &["tunnel"]),
            ],
        },
        Case {
            name: "request without response at close",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"GET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(0), &[]),
                x("GET", "/2", None, 0, None, &["incomplete"]),
                x("GET", "/3", None, 0, None, &["incomplete"]),
            ],
        },
        Case {
            name: "response cut by close",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
            ],
            want: vec![x("GET", "/1", Some(200), 0, Some(3), &["incomplete"])],
        },
        Case {
            name: "response arrives before its request",
            steps: &[
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
                (REQ, b"HEAD /r HTTP/1.1\r\n\r\n"),
            ],
            // Held until the request came: framed as a HEAD response would be
            // is not possible (it had a body already parsed? no: held, then
            // parsed once the request was known).
            want: vec![x("HEAD", "/r", Some(200), 0, Some(0), &[])],
        },
        Case {
            name: "conflicting content-lengths: invalid, then resync",
            steps: &[
                (REQ, b"POST /bad HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
                (RESP, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"GET /good HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("POST", "/bad", Some(400), 0, Some(0), &["invalid"]),
                x("GET", "/good", Some(200), 0, Some(0), &["resynced"]),
            ],
        },
        Case {
            name: "bad chunk size: invalid, next exchange intact",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"),
                (REQ, b"GET /2 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(3), &["invalid"]),
                x("GET", "/2", Some(200), 0, Some(1), &["resynced"]),
            ],
        },
        Case {
            name: "malformed request line pairs with its 400",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"G\x01T /x HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"GET /3 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(0), &[]),
                x("", "", Some(400), 0, Some(0), &["invalid"]),
                x("GET", "/3", Some(200), 0, Some(0), &["resynced"]),
            ],
        },
        Case {
            name: "transfer-encoding with content-length: chunked wins, flagged",
            steps: &[
                (REQ, b"POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"GET /t HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("POST", "/s", Some(200), 1, Some(0), &["invalid"]),
                x("GET", "/t", Some(200), 0, Some(0), &[]),
            ],
        },
        Case {
            name: "response with an invalid content-length",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nxxxx"),
                (REQ, b"GET /2 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(0), &["invalid"]),
                x("GET", "/2", Some(200), 0, Some(0), &["resynced"]),
            ],
        },
        Case {
            name: "stray CRLF between pipelined requests",
            steps: &[
                (REQ, b"GET /1 HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ],
            want: vec![
                x("GET", "/1", Some(200), 0, Some(0), &[]),
                x("GET", "/2", Some(200), 0, Some(0), &[]),
            ],
        },
    ]
}

#[test]
fn table() {
    for case in cases() {
        let mut f = Feed::new();
        for (dir, bytes) in case.steps {
            f.send(*dir, bytes);
        }
        let got = f.close();
        assert_eq!(sums(&got), case.want, "case: {}", case.name);
        let st = f.conn.stats();
        assert_eq!(
            st.exchanges as usize,
            case.want.len(),
            "case: {}",
            case.name
        );
        assert_eq!(st.lost_bytes, 0, "case: {}", case.name);
    }
}

/// Feeding every case one byte at a time, alternating directions in the
/// original order, gives the same exchanges: no prefix is an error.
#[test]
fn table_byte_by_byte() {
    for case in cases() {
        let mut f = Feed::new();
        for (dir, bytes) in case.steps {
            for b in bytes.iter() {
                f.send(*dir, std::slice::from_ref(b));
            }
        }
        let got = f.close();
        let want: Vec<_> = case
            .want
            .iter()
            .map(|s| {
                (
                    s.method.clone(),
                    s.path.clone(),
                    s.status,
                    s.req_body,
                    s.resp_body,
                )
            })
            .collect();
        let got: Vec<_> = sums(&got)
            .into_iter()
            .map(|s| (s.method, s.path, s.status, s.req_body, s.resp_body))
            .collect();
        assert_eq!(got, want, "case: {}", case.name);
    }
}

#[test]
fn exchange_fields() {
    let mut f = Feed::new();
    f.send(
        REQ,
        b"POST /api/v1/items?id=7 HTTP/1.1\r\nHost: api.example.com\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Length: 10\r\n\r\n\x00\x01\x02\xffbinary",
    );
    f.send(RESP, b"HTTP/1.1 418 I'm a teapot\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\n");
    f.send(RESP, b"tea");
    let got = f.close();
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.side, Side::Client);
    assert_eq!(e.method, "POST");
    assert_eq!(e.path, "/api/v1/items?id=7");
    assert_eq!(e.authority.as_deref(), Some("api.example.com"));
    assert_eq!(e.version, "HTTP/1.1");
    assert_eq!(e.status, Some(418));
    assert_eq!(e.reason.as_deref(), Some("I'm a teapot"));
    let names: Vec<_> = e
        .request
        .headers
        .iter()
        .map(|(n, v, _)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(names[1], (b"X-Dup".to_vec(), b"1".to_vec()));
    assert_eq!(names[2], (b"x-dup".to_vec(), b"2".to_vec()));
    assert_eq!(e.request.body_preview, b"\x00\x01\x02\xffbinary");
    let resp = e.response.as_ref().unwrap();
    assert_eq!(resp.headers.get_all(b"set-cookie").count(), 2);
    assert_eq!(resp.body_preview, b"tea");
    // Timestamps: request in call 1, response head in call 2, last byte in call 3.
    assert_eq!(e.request.first_ns, 1000);
    assert_eq!(e.request.last_ns, 1000);
    assert_eq!(resp.first_ns, 2000);
    assert_eq!(resp.last_ns, 3000);
    assert_eq!(e.latency_ns(), Some(2000));
    assert_eq!(e.request.wire_len, 99 + 10);
    assert_eq!(resp.wire_len, 82 + 3);
}

#[test]
fn interim_codes_recorded_in_order() {
    let mut f = Feed::new();
    f.send(
        REQ,
        b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    );
    f.send(RESP, b"HTTP/1.1 100 Continue\r\n\r\n");
    f.send(REQ, b"x");
    f.send(
        RESP,
        b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let got = f.close();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].interim, [100, 103]);
    assert_eq!(got[0].status, Some(200));
    assert_eq!(
        got[0].response.as_ref().unwrap().first_ns,
        2000,
        "first byte of the first interim head"
    );
}

#[test]
fn server_side_is_inferred() {
    // The traced process reads requests (ingress) and writes responses.
    let mut f = Feed::new();
    f.send(Direction::Ingress, &get("/s"));
    f.send(Direction::Egress, &ok("x"));
    let got = f.close();
    assert_eq!(f.conn.side(), Some(Side::Server));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].side, Side::Server);
    assert_eq!(got[0].path, "/s");
}

#[test]
fn side_inferred_from_a_response_first() {
    let mut f = Feed::new();
    f.send(Direction::Egress, &ok("x"));
    assert_eq!(f.conn.side(), Some(Side::Server));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![x("", "", Some(200), 0, Some(1), &["no_request"])]
    );
}

#[test]
fn body_preview_is_capped_and_binary_safe() {
    let cfg = Config {
        body_preview: 4,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    f.send(
        REQ,
        b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n\x00\xff\x00\xffzz",
    );
    f.send(RESP, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\x00\x01\r\n3\r\n\x02\x03\x04\r\n0\r\n\r\n");
    let got = f.close();
    assert_eq!(got[0].request.body_len, 6);
    assert_eq!(got[0].request.body_preview, b"\x00\xff\x00\xff");
    let r = got[0].response.as_ref().unwrap();
    assert_eq!(r.body_len, 5);
    assert_eq!(r.body_preview, b"\x00\x01\x02\x03");
    assert!(
        got[0].flags.is_empty(),
        "a preview shorter than the body is not truncation"
    );
}

#[test]
fn trailers_are_kept() {
    let mut f = Feed::new();
    f.send(REQ, &get("/t"));
    f.send(RESP, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nGrpc-Status: 0\r\nX-A: b\r\n\r\n");
    let got = f.close();
    let r = got[0].response.as_ref().unwrap();
    assert_eq!(r.trailers.len(), 2);
    assert_eq!(r.trailers.get(b"grpc-status"), Some(&b"0"[..]));
}

#[test]
fn header_overflow_is_invalid_and_next_exchange_survives() {
    let cfg = Config {
        max_head: 256,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    f.send(REQ, &get("/1"));
    f.send(RESP, &ok(""));
    let mut big = b"GET /big HTTP/1.1\r\n".to_vec();
    for i in 0..20 {
        big.extend_from_slice(format!("X-Header-{i}: some value\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    f.send(REQ, &big);
    f.send(
        RESP,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    f.send(REQ, &get("/3"));
    f.send(RESP, &ok("abc"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/1", Some(200), 0, Some(0), &[]),
            // The request line still reads: it says what was asked.
            x(
                "GET",
                "/big",
                Some(431),
                0,
                Some(0),
                &["invalid", "headers_truncated"]
            ),
            x("GET", "/3", Some(200), 0, Some(3), &["resynced"]),
        ]
    );
    assert_eq!(f.conn.stats().invalid, 1);
    assert_eq!(f.conn.stats().resync_skipped_bytes, big.len() as u64);
}

#[test]
fn websocket_tail_is_counted() {
    let mut f = Feed::new();
    let req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    f.send(REQ, req);
    f.send(
        RESP,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    );
    f.send(REQ, &[0x81; 100]);
    f.send(RESP, &[0x82; 50]);
    let got = f.close();
    assert_eq!(got.len(), 1);
    assert_eq!(f.conn.stats().opaque_bytes, 150);
    assert_eq!(f.conn.detected(), Detected::Http1);
}

#[test]
fn websocket_bytes_sent_with_the_upgrade_request_stay_opaque() {
    // The client writes its first frame right behind the request; the
    // request side must not parse it before the 101 arrives.
    let mut f = Feed::new();
    let mut req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
    req.extend_from_slice(b"POST /not-http HTTP/1.1\r\n\r\n");
    f.send(REQ, &req);
    f.send(RESP, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![x("GET", "/ws", Some(101), 0, Some(0), &["upgrade"])]
    );
    assert_eq!(f.conn.stats().opaque_bytes, 27);
}

#[test]
fn h2c_upgrade_hands_over_to_http2() {
    let mut f = Feed::new();
    f.send(REQ, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n");
    f.send(RESP, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    f.send(
        REQ,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    );
    assert_eq!(f.conn.detected(), Detected::Http2);
    // Stream 1's response: HEADERS `:status: 200` (static index 8),
    // END_HEADERS | END_STREAM.
    f.send(RESP, b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x88");
    let got = f.close();
    // One record: the upgrade request is HTTP/2 stream 1, after a 101.
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e.proto, protocols::record::Proto::Http2);
    assert_eq!(e.stream_id, Some(1));
    assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/"));
    assert_eq!(e.status, Some(200));
    assert_eq!(e.interim, vec![101]);
    assert!(
        e.flags.contains(protocols::record::Flags::UPGRADE),
        "{:?}",
        e.flags
    );
    assert!(!e.flags.contains(protocols::record::Flags::INCOMPLETE));
    assert_eq!(f.conn.stats().opaque_bytes, 0);
}

#[test]
fn h2c_upgrade_without_a_response_is_incomplete_stream_1() {
    let mut f = Feed::new();
    f.send(REQ, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n");
    f.send(
        RESP,
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    let got = f.close();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].stream_id, Some(1));
    assert_eq!(got[0].status, None);
    assert!(got[0].flags.contains(protocols::record::Flags::INCOMPLETE));
}

#[test]
fn prior_knowledge_http2_is_detected() {
    let mut f = Feed::new();
    f.send(REQ, b"PRI * HTTP/2.0\r\n");
    assert_eq!(f.conn.detected(), Detected::Unknown);
    f.send(REQ, b"\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    assert_eq!(f.conn.detected(), Detected::Http2);
    assert_eq!(f.conn.side(), Some(Side::Client));
    let got = f.close();
    assert!(got.is_empty(), "a preface and SETTINGS carry no exchange");
    assert_eq!(
        f.conn.stats().opaque_bytes,
        0,
        "HTTP/2 is decoded, not skipped"
    );
}

#[test]
fn not_http_is_counted_not_parsed() {
    let mut f = Feed::new();
    f.send(REQ, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    f.send(RESP, b"\x16\x03\x03\x00\x7a");
    assert_eq!(f.conn.detected(), Detected::NotHttp);
    let got = f.close();
    assert!(got.is_empty());
    assert_eq!(f.conn.stats().opaque_bytes, 16);
}

#[test]
fn late_join_resyncs_at_the_next_message() {
    let mut f = Feed::late();
    // The middle of a response body, then the next exchange.
    f.send(RESP, b"ody of something we never saw\r\n");
    f.send(REQ, b"ers: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![x(
            "GET",
            "/next",
            Some(200),
            0,
            Some(2),
            &["resynced", "late_join"]
        )]
    );
    assert_eq!(f.conn.stats().resync_skipped_bytes, 31 + 10);
}

#[test]
fn late_join_not_http_after_detect_limit() {
    let cfg = Config {
        detect_limit: 1000,
        ..Config::default()
    };
    let mut f = Feed::with(Connection::new_late(&cfg));
    for _ in 0..20 {
        f.send(REQ, &[b'x'; 100]);
    }
    assert_eq!(f.conn.detected(), Detected::NotHttp);
    f.close();
    let st = f.conn.stats();
    assert_eq!(st.opaque_bytes + st.resync_skipped_bytes, 2000);
}

#[test]
fn late_join_at_a_boundary_flags_late_join_only() {
    let mut f = Feed::late();
    f.send(REQ, &get("/a"));
    f.send(RESP, &ok("x"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![x("GET", "/a", Some(200), 0, Some(1), &["late_join"])]
    );
}

#[test]
fn too_many_pipelined_requests_are_evicted() {
    let cfg = Config {
        max_pending_requests: 4,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    for i in 0..10 {
        f.send(REQ, &get(&format!("/{i}")));
    }
    assert_eq!(f.out.len(), 6);
    assert!(f.out.iter().all(|e| e.flags.contains(Flags::INCOMPLETE)));
    let got = f.close();
    assert_eq!(got.len(), 10);
    assert_eq!(f.conn.stats().evicted, 6);
}

#[test]
fn exchanges_come_out_as_soon_as_complete() {
    let mut f = Feed::new();
    f.send(REQ, &get("/1"));
    assert!(f.out.is_empty());
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no");
    assert!(f.out.is_empty());
    f.send(RESP, b"k");
    assert_eq!(f.out.len(), 1);
}

#[test]
fn held_response_released_by_flush() {
    // A response whose request never shows up (it was before the capture).
    let mut f = Feed::new();
    f.send(RESP, &ok("late"));
    assert!(f.out.is_empty(), "held: its request may still arrive");
    f.flush();
    assert_eq!(
        sums(&f.out),
        vec![x("", "", Some(200), 0, Some(4), &["no_request"])]
    );
}

#[test]
fn unanswered_upgrade_releases_the_request_side_on_flush() {
    let mut f = Feed::new();
    f.send(
        REQ,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
    );
    assert_eq!(
        f.conn.stats().heads,
        1,
        "waits for the answer before reading on"
    );
    f.flush();
    assert_eq!(f.conn.stats().heads, 2);
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("GET", "/ws", None, 0, None, &["incomplete"]),
            x("GET", "/next", None, 0, None, &["incomplete"]),
        ]
    );
}

#[test]
fn held_response_released_past_the_window() {
    let cfg = Config {
        reorder_window: 64,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    f.send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    assert!(f.out.is_empty());
    f.send(RESP, &[b'b'; 100]);
    assert_eq!(
        sums(&f.out),
        vec![x("", "", Some(200), 0, Some(100), &["no_request"])]
    );
}

#[test]
fn expect_continue_refused_without_body() {
    // The server refuses before the body; the client never sends it.
    let mut f = Feed::new();
    f.send(
        REQ,
        b"PUT /big HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    );
    f.send(
        RESP,
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    );
    f.send(REQ, &get("/after"));
    f.send(RESP, &ok("ok"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("PUT", "/big", Some(401), 0, Some(0), &[]),
            x("GET", "/after", Some(200), 0, Some(2), &[]),
        ]
    );
}

#[test]
fn expect_continue_refused_but_body_sent_anyway() {
    let mut f = Feed::new();
    f.send(
        REQ,
        b"PUT /big HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    f.send(
        RESP,
        b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n",
    );
    f.send(REQ, b"0123456789");
    f.send(REQ, &get("/after"));
    f.send(RESP, &ok("ok"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x("PUT", "/big", Some(417), 0, Some(0), &[]),
            x("GET", "/after", Some(200), 0, Some(2), &[]),
        ]
    );
    assert_eq!(f.conn.stats().resync_skipped_bytes, 10);
}

/// Seen from its first byte, a connection's first message starts there:
/// an oversized first request head is the client's (reported invalid, with
/// what its request line says), not a sign that we joined mid-message.
#[test]
fn oversized_first_request_is_reported() {
    let cfg = Config {
        max_head: 256,
        ..Config::default()
    };
    let mut f = Feed::config(&cfg);
    let mut big = b"GET /big HTTP/1.1\r\nCookie: ".to_vec();
    big.extend_from_slice(&[b'c'; 400]);
    big.extend_from_slice(b"\r\n\r\n");
    f.send(REQ, &big);
    f.send(
        RESP,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    f.send(REQ, &get("/next"));
    f.send(RESP, &ok("ok"));
    let got = f.close();
    assert_eq!(
        sums(&got),
        vec![
            x(
                "GET",
                "/big",
                Some(431),
                0,
                Some(0),
                &["invalid", "headers_truncated"]
            ),
            x("GET", "/next", Some(200), 0, Some(2), &["resynced"]),
        ]
    );
}

/// A first response that does not parse (a bad status line, or no status
/// line at all) answers the request we saw: that exchange is invalid, not
/// "no response".
#[test]
fn unreadable_first_response_is_invalid() {
    for bad in [
        &b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nhi"[..],
        &b"<html>no status line</html>"[..],
    ] {
        let mut f = Feed::new();
        f.send(REQ, &get("/bad"));
        f.send(RESP, bad);
        let got = f.close();
        let s = sums(&got);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!((s[0].method.as_str(), s[0].path.as_str()), ("GET", "/bad"));
        assert!(s[0].flags.contains(&"invalid"), "{s:?}");
        assert!(got[0].response.is_some(), "{s:?}");
    }
}

/// Junk before the first request of a connection seen from its start (the
/// kernel's protocol check does not send it: a hole): the request after it
/// is resynced to, and not called a late join.
#[test]
fn junk_before_the_first_request_is_not_a_late_join() {
    let mut f = Feed::new();
    f.drop_bytes(REQ, 14);
    f.send(REQ, &get("/after"));
    f.send(RESP, &ok("fine"));
    let got = f.close();
    let s = sums(&got);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].path, "/after");
    assert!(!s[0].flags.contains(&"late_join"), "{s:?}");
    assert!(s[0].flags.contains(&"resynced"), "{s:?}");
}

/// The same with the default limits, in capture-sized events: the 70 KB
/// head is skipped as it is resynced through, and that must not make the
/// connection "not HTTP" (it read a start line).
#[test]
fn oversized_first_request_default_limits_in_chunks() {
    let mut f = Feed::new();
    let mut big = b"GET /bigreq HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    big.extend_from_slice(&[b'b'; 70000]);
    big.extend_from_slice(b"\r\n\r\n");
    for c in big.chunks(32768) {
        f.send(REQ, c);
    }
    f.send(RESP, &ok("good"));
    let got = f.close();
    let s = sums(&got);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].path, "/bigreq", "{s:?}");
    assert_eq!(s[0].status, Some(200), "{s:?}");
    assert!(s[0].flags.contains(&"headers_truncated"), "{s:?}");
}
