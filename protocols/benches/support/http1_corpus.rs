//! The HTTP/1 corpora of `benches/http1.rs`, shared with
//! `examples/http1_instructions.rs`: generated keep-alive traffic as
//! capture delivers it (one event per write, large bodies in 16 KiB
//! reads), and the two ways of going through it that are compared: a
//! `Connection`, and bare httparse on the same heads.

#![allow(dead_code)] // each includer uses part of it

use protocols::conn::{Config, Connection};
use protocols::record::{Direction, Exchange};

/// Bytes per captured event for large bodies (a typical read buffer).
const EVENT: usize = 16 * 1024;
/// Exchanges per corpus.
const SMALL: usize = 2000;
const POSTS: usize = 500;
const CHUNKED: usize = 50;

pub struct Corpus {
    pub name: &'static str,
    /// (direction, bytes) events in capture order.
    pub events: Vec<(Direction, Vec<u8>)>,
    /// Every head, for the httparse baseline: (is_request, bytes).
    pub heads: Vec<(bool, Vec<u8>)>,
    pub exchanges: usize,
    pub bytes: usize,
}

impl Corpus {
    fn new(name: &'static str) -> Self {
        Corpus {
            name,
            events: Vec::new(),
            heads: Vec::new(),
            exchanges: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, dir: Direction, head: &[u8], body: &[u8]) {
        self.heads.push((dir == Direction::Egress, head.to_vec()));
        let mut first = head.to_vec();
        let take = body.len().min(EVENT.saturating_sub(head.len()));
        first.extend_from_slice(&body[..take]);
        self.bytes += head.len() + body.len();
        self.events.push((dir, first));
        for c in body[take..].chunks(EVENT) {
            self.events.push((dir, c.to_vec()));
        }
    }
}

fn small_get(c: &mut Corpus, i: usize) {
    let req = format!(
        "GET /api/v1/users/{i}?fields=name,email HTTP/1.1\r\nHost: api.internal.example.com\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: application/json\r\n\
         Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nX-Request-Id: 6f1c2e9a-{i:08}\r\n\r\n"
    );
    c.push(Direction::Egress, req.as_bytes(), b"");
    let body = format!("{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"u{i}@example.com\"}}");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\
         Cache-Control: no-store\r\n\r\n",
        body.len()
    );
    c.push(Direction::Ingress, resp.as_bytes(), body.as_bytes());
    c.exchanges += 1;
}

fn json_post(c: &mut Corpus, i: usize) {
    let mut body = String::from("{\"items\":[");
    let mut n = 0;
    while body.len() < 4096 - 64 {
        body.push_str(&format!(
            "{{\"sku\":\"A-{i}-{n}\",\"qty\":{n},\"price\":12.50}},"
        ));
        n += 1;
    }
    body.push_str("{}]}");
    body.truncate(4096);
    let req = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: api.internal.example.com\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    );
    c.push(Direction::Egress, req.as_bytes(), body.as_bytes());
    let resp = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 16\r\nLocation: /api/v1/orders/1\r\n\r\n";
    c.push(Direction::Ingress, resp, b"{\"id\":123456789}");
    c.exchanges += 1;
}

fn chunked_64k(c: &mut Corpus, i: usize) {
    let req =
        format!("GET /export/{i}.csv HTTP/1.1\r\nHost: files.example.com\r\nAccept: */*\r\n\r\n");
    c.push(Direction::Egress, req.as_bytes(), b"");
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut body = Vec::new();
    let data = vec![b'x'; 8192];
    for _ in 0..8 {
        body.extend_from_slice(b"2000\r\n");
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    c.push(Direction::Ingress, head, &body);
    c.exchanges += 1;
}

pub fn corpora() -> Vec<Corpus> {
    let mut small = Corpus::new("small_gets");
    (0..SMALL).for_each(|i| small_get(&mut small, i));
    let mut posts = Corpus::new("json_posts_4k");
    (0..POSTS).for_each(|i| json_post(&mut posts, i));
    let mut chunked = Corpus::new("chunked_64k");
    (0..CHUNKED).for_each(|i| chunked_64k(&mut chunked, i));
    let mut mixed = Corpus::new("mixed");
    for i in 0..1000 {
        match i % 20 {
            0 => chunked_64k(&mut mixed, i),
            1..=4 => json_post(&mut mixed, i),
            _ => small_get(&mut mixed, i),
        }
    }
    vec![small, posts, chunked, mixed]
}

/// Feeds the corpus through one `Connection` and returns the exchanges
/// completed. After every event the records are consumed, as the
/// collector does after rendering them: given back for reuse (`recycle`),
/// or dropped.
pub fn run_connection(c: &Corpus, out: &mut Vec<Box<Exchange>>, recycle: bool) -> usize {
    let mut conn = Connection::new(&Config::default());
    let mut pos = [0u64; 2];
    let mut n = 0;
    let mut consume = |out: &mut Vec<Box<Exchange>>| {
        n += out.len();
        if recycle {
            out.drain(..).for_each(Exchange::recycle);
        } else {
            out.clear();
        }
    };
    for (ts, (dir, bytes)) in c.events.iter().enumerate() {
        let p = &mut pos[dir.index()];
        conn.data(*dir, *p, ts as u64, bytes, out);
        *p += bytes.len() as u64;
        consume(out);
    }
    conn.close(u64::MAX, out);
    consume(out);
    n
}

pub fn run_httparse(c: &Corpus) -> usize {
    let mut n = 0;
    for (is_req, head) in &c.heads {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        if *is_req {
            let mut r = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(len)) = r.parse(head) {
                n += len;
            }
        } else {
            let mut r = httparse::Response::new(&mut slots);
            if let Ok(httparse::Status::Complete(len)) = r.parse(head) {
                n += len;
            }
        }
    }
    n
}
