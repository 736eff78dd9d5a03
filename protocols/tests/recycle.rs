//! Records given back with `Exchange::recycle` are reused by the parsers:
//! a record built from a recycled one carries nothing over. Each case runs
//! on its own thread (the free lists are per thread): a "dirty" thread
//! first rebuilds and recycles exchanges full of headers, previews,
//! trailers, interim codes, flags and gRPC details, then rebuilds a small
//! exchange; a clean thread rebuilds the same small exchange; both must be
//! equal.

mod http1_support;
mod http2_support;

use http1_support::*;
use protocols::conn::{Config, Connection};
use protocols::record::{Exchange, Flags};

/// A scripted session: what a test feeds a connection.
type Session = fn() -> Vec<Box<Exchange>>;

fn heavy_http1() -> Vec<Box<Exchange>> {
    let mut req = String::from(
        "POST /upload/a/rather/long/path/to/be/sure?x=1&y=2 HTTP/1.1\r\n\
         Host: dirty.example.com:8443\r\n\
         Expect: 100-continue\r\n\
         Transfer-Encoding: chunked\r\n",
    );
    for i in 0..40 {
        req.push_str(&format!("X-Request-Field-{i}: value number {i}\r\n"));
    }
    req.push_str("\r\n");
    let mut resp = String::from(
        "HTTP/1.1 201 Created With A Long Reason Phrase\r\n\
         Transfer-Encoding: chunked\r\n",
    );
    for i in 0..30 {
        resp.push_str(&format!("X-Response-Field-{i}: value {i}\r\n"));
    }
    resp.push_str("\r\n");
    let body = "b".repeat(3000);
    let mut f = Feed::new();
    f.send(REQ, req.as_bytes())
        .send(
            RESP,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
        )
        .send(
            REQ,
            format!(
                "{:x}\r\n{body}\r\n0\r\nX-Req-Trailer: t\r\nX-Sum: 1\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .send(RESP, resp.as_bytes())
        .send(
            RESP,
            format!(
                "{:x}\r\n{body}\r\n0\r\nX-Resp-Trailer: r\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
    // Conflicting lengths: invalid, answered by a 400 with a body.
    f.send(
        REQ,
        b"POST /bad HTTP/1.1\r\nHost: bad.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    )
    .send(
        RESP,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad request",
    );
    let mut out = f.close();
    // A body cut by the capture cap, then a request left unanswered.
    let mut f = Feed::new();
    f.send(REQ, &get("/cut"))
        .truncated(
            RESP,
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij",
            45,
        )
        .send(REQ, b"GET /never/answered HTTP/1.1\r\nHost: h\r\n\r\n");
    out.extend(f.close());
    assert!(out.len() >= 4, "{out:#?}");
    let flags = out.iter().fold(Flags::NONE, |f, e| f | e.flags);
    for f in [
        Flags::INVALID,
        Flags::GAP,
        Flags::TRUNCATED,
        Flags::INCOMPLETE,
    ] {
        assert!(flags.contains(f), "{flags:?} lacks {f:?}");
    }
    assert!(out.iter().any(|e| !e.interim.is_empty()));
    assert!(out.iter().any(|e| !e.request.trailers.is_empty()));
    out
}

/// Every recorded HTTP/2 session (gRPC, push, upgrade from HTTP/1) fed
/// through a [`Connection`], in order.
fn heavy_http2() -> Vec<Box<Exchange>> {
    let mut out = Vec::new();
    for name in http2_support::RECORDINGS {
        out.extend(replay_http2(name));
    }
    assert!(out.iter().any(|e| e.grpc.is_some()));
    assert!(
        out.iter()
            .any(|e| e.reset_code.is_some() || e.stream_id.is_some())
    );
    out
}

fn replay_http2(name: &str) -> Vec<Box<Exchange>> {
    let mut conn = Connection::new(&Config::default());
    let mut out = Vec::new();
    let mut pos = [0u64; 2];
    let mut last = 0;
    for (d, t, bytes) in http2_support::load(name) {
        let dir = http2_support::dir_of(d, true);
        conn.data(dir, pos[dir.index()], t + 1, &bytes, &mut out);
        pos[dir.index()] += bytes.len() as u64;
        last = t + 1;
    }
    conn.close(last + 1, &mut out);
    out
}

fn minimal_http1() -> Vec<Box<Exchange>> {
    Feed::new()
        .send(REQ, b"GET / HTTP/1.0\r\n\r\n")
        .send(RESP, b"HTTP/1.0 204 \r\n\r\n")
        .close()
}

fn request_only() -> Vec<Box<Exchange>> {
    Feed::new().send(REQ, b"GET /x HTTP/1.1\r\n\r\n").close()
}

fn response_only() -> Vec<Box<Exchange>> {
    Feed::late()
        .send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .close()
}

fn small_body() -> Vec<Box<Exchange>> {
    Feed::new()
        .send(REQ, b"PUT /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        .send(RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk")
        .close()
}

fn minimal_http2() -> Vec<Box<Exchange>> {
    replay_http2("python_h2")
}

/// `b` on a thread whose free lists hold what `a` produced, and on a
/// clean thread.
fn after(a: Session, b: Session) -> (Vec<Box<Exchange>>, Vec<Box<Exchange>>) {
    let dirty = std::thread::spawn(move || {
        a().into_iter().for_each(Exchange::recycle);
        b()
    });
    let clean = std::thread::spawn(b);
    (dirty.join().unwrap(), clean.join().unwrap())
}

#[test]
fn recycled_records_carry_nothing_over() {
    let olds: [(&str, Session); 2] = [("http1", heavy_http1), ("http2", heavy_http2)];
    let news: [(&str, Session); 5] = [
        ("minimal http1", minimal_http1),
        ("request only", request_only),
        ("response only", response_only),
        ("small body", small_body),
        ("minimal http2", minimal_http2),
    ];
    for (old, a) in olds {
        for (new, b) in news {
            let (dirty, clean) = after(a, b);
            assert!(!clean.is_empty(), "{new}");
            assert_eq!(dirty, clean, "{new} after {old}");
        }
    }
}

/// The parsers really take the recycled buffers (else the equality above
/// proves nothing about reuse): strings of the small exchange keep the
/// capacity of the large ones it reuses.
#[test]
fn http1_reuses_recycled_buffers() {
    let (dirty, clean) = after(heavy_http1, minimal_http1);
    let cap = |v: &[Box<Exchange>]| v[0].path.capacity() + v[0].method.capacity();
    assert!(
        cap(&dirty) > cap(&clean),
        "{} vs {}",
        cap(&dirty),
        cap(&clean)
    );
    assert_eq!(dirty[0].path, "/");
}

/// Recycling a steady stream of exchanges keeps rebuilding them correctly:
/// each connection's records go back before the next connection starts.
#[test]
fn steady_recycling_gives_the_same_exchanges() {
    let run = || {
        let mut all = Vec::new();
        for session in [
            heavy_http1 as Session,
            minimal_http1,
            heavy_http2,
            small_body,
        ] {
            for ex in session() {
                all.push(ex.clone());
                ex.recycle();
            }
        }
        all
    };
    let dirty = std::thread::spawn(move || {
        run().into_iter().for_each(Exchange::recycle);
        run()
    });
    let clean = std::thread::spawn(run);
    assert_eq!(dirty.join().unwrap(), clean.join().unwrap());
}
