//! Every prefix of a valid message is "need more", never an error: for the
//! head parsers and for a whole connection fed up to that byte.

mod http1_support;

use http1_support::*;
use protocols::conn::{Config, Connection};
use protocols::http1::head::{self, HeadOutcome};
use protocols::record::Headers;

const REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: curl/7.88.1\r\n\r\n",
    b"POST /json HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":[1,2,3]}",
    b"PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4;x=y\r\nabcd\r\n0\r\nT: 1\r\n\r\n",
    b"\r\nGET /lead HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /lf HTTP/1.1\nHost: h\n\n",
];

const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
];

fn head_len(msg: &[u8]) -> usize {
    let crlf = msg.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = msg.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap(),
    }
}

#[test]
fn head_parsers_need_more_on_every_prefix() {
    for msg in REQUESTS {
        let n = head_len(msg);
        // The leading empty line case: the head ends at the second CRLF pair.
        let n = if msg.starts_with(b"\r\n") {
            head_len(&msg[2..]) + 2
        } else {
            n
        };
        for cut in 0..n {
            assert!(
                matches!(
                    head::parse_request(&msg[..cut], 1 << 16, &mut Headers::new()),
                    HeadOutcome::NeedMore
                ),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(msg)
            );
        }
        assert!(
            matches!(head::parse_request(&msg[..n], 1 << 16, &mut Headers::new()), HeadOutcome::Done { len, .. } if len == n)
        );
    }
    for msg in RESPONSES {
        let n = head_len(msg);
        for cut in 0..n {
            assert!(
                matches!(
                    head::parse_response(&msg[..cut], 1 << 16, &mut Headers::new()),
                    HeadOutcome::NeedMore
                ),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(msg)
            );
        }
        assert!(
            matches!(head::parse_response(&msg[..n], 1 << 16, &mut Headers::new()), HeadOutcome::Done { len, .. } if len == n)
        );
    }
}

/// A connection given a request (and its response) up to any byte emits
/// nothing, flags nothing invalid and skips nothing; the whole emits one
/// clean exchange.
#[test]
fn connection_needs_more_on_every_prefix() {
    for (req, resp) in REQUESTS.iter().zip(RESPONSES.iter().cycle()) {
        for (dir_cut, total) in [(REQ, req.len()), (RESP, resp.len())] {
            for cut in 0..total {
                let mut c = Connection::new(&Config::default());
                let mut out = Vec::new();
                if dir_cut == REQ {
                    c.data(REQ, 0, 1, &req[..cut], &mut out);
                } else {
                    c.data(REQ, 0, 1, req, &mut out);
                    c.data(RESP, 0, 2, &resp[..cut], &mut out);
                }
                let st = c.stats();
                assert!(
                    out.is_empty(),
                    "{:?} cut {cut}",
                    String::from_utf8_lossy(req)
                );
                assert_eq!(st.invalid, 0);
                assert_eq!(
                    st.resync_skipped_bytes,
                    0,
                    "{:?} cut {cut}",
                    String::from_utf8_lossy(req)
                );
            }
        }
        let mut f = Feed::new();
        f.send(REQ, req).send(RESP, resp);
        assert_eq!(f.out.len(), 1, "{:?}", String::from_utf8_lossy(req));
        assert!(f.out[0].flags.is_empty(), "{:?}", f.out[0].flags);
    }
}
