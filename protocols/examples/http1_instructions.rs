//! A fixed amount of HTTP/1 work for counting instructions, which, unlike
//! time, other load on the machine does not change: the `small_gets`
//! corpus of `benches/http1.rs` (2000 keep-alive GETs with 7 headers and
//! small JSON responses, one event per write), `ITERATIONS` times.
//!
//! ```text
//! cargo build --release -p protocols --example http1_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/http1_instructions 20 recycle
//! ```
//!
//! Modes: `recycle` (records given back with `Exchange::recycle` after each
//! event, as the collector does), `drop` (dropped after each event),
//! `bare` (only httparse on the same bytes, 32 header slots). Instructions
//! per exchange: (count at 40 iterations - count at 20) / 40000.

use std::hint::black_box;

use protocols::conn::{Config, Connection};
use protocols::record::{Direction, Exchange};

const EXCHANGES: usize = 2000;

fn corpus() -> Vec<(Direction, Vec<u8>)> {
    let mut events = Vec::new();
    for i in 0..EXCHANGES {
        let req = format!(
            "GET /api/v1/users/{i}?fields=name,email HTTP/1.1\r\nHost: api.internal.example.com\r\n\
             User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: application/json\r\n\
             Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nX-Request-Id: 6f1c2e9a-{i:08}\r\n\r\n"
        );
        events.push((Direction::Egress, req.into_bytes()));
        let body = format!("{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"u{i}@example.com\"}}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\
             Cache-Control: no-store\r\n\r\n{body}",
            body.len()
        );
        events.push((Direction::Ingress, resp.into_bytes()));
    }
    events
}

fn bare(events: &[(Direction, Vec<u8>)]) -> usize {
    let mut n = 0;
    for (dir, bytes) in events {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let parsed = if *dir == Direction::Egress {
            httparse::Request::new(&mut slots).parse(black_box(bytes))
        } else {
            httparse::Response::new(&mut slots).parse(black_box(bytes))
        };
        if let Ok(httparse::Status::Complete(len)) = parsed {
            n += len;
        }
    }
    n
}

fn connection(events: &[(Direction, Vec<u8>)], recycle: bool) -> usize {
    let mut conn = Connection::new(&Config::default());
    let mut out: Vec<Exchange> = Vec::with_capacity(4);
    let mut pos = [0u64; 2];
    let mut n = 0;
    let mut consume = |out: &mut Vec<Exchange>| {
        n += out.len();
        if recycle {
            out.drain(..).for_each(Exchange::recycle);
        } else {
            out.clear();
        }
    };
    for (ts, (dir, bytes)) in events.iter().enumerate() {
        let p = &mut pos[dir.index()];
        conn.data(*dir, *p, ts as u64, bytes, &mut out);
        *p += bytes.len() as u64;
        consume(&mut out);
    }
    conn.close(u64::MAX, &mut out);
    consume(&mut out);
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(iterations), Some(mode)) = (args.get(1).and_then(|a| a.parse().ok()), args.get(2))
    else {
        eprintln!("usage: http1_instructions ITERATIONS recycle|drop|bare");
        std::process::exit(2);
    };
    let events = corpus();
    for _ in 0..iterations {
        match mode.as_str() {
            "bare" => {
                black_box(bare(&events));
            }
            "recycle" | "drop" => {
                let n = connection(&events, mode == "recycle");
                assert_eq!(n, EXCHANGES);
            }
            _ => {
                eprintln!("unknown mode {mode}");
                std::process::exit(2);
            }
        }
    }
}
