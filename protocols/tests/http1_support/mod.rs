//! Helpers shared by the HTTP/1 integration tests: a scripted connection
//! and a compact view of exchanges to compare against.
#![allow(dead_code)]

use protocols::conn::{Config, Connection};
use protocols::record::{Direction, Exchange};

pub const REQ: Direction = Direction::Egress;
pub const RESP: Direction = Direction::Ingress;

/// Feeds a [`Connection`] the way capture does: per-direction positions,
/// increasing timestamps (1000 ns per call).
pub struct Feed {
    pub conn: Connection,
    pub pos: [u64; 2],
    pub ts: u64,
    pub out: Vec<Box<Exchange>>,
}

impl Feed {
    pub fn new() -> Self {
        Self::with(Connection::new(&Config::default()))
    }

    pub fn late() -> Self {
        Self::with(Connection::new_late(&Config::default()))
    }

    pub fn config(c: &Config) -> Self {
        Self::with(Connection::new(c))
    }

    pub fn with(conn: Connection) -> Self {
        Feed {
            conn,
            pos: [0; 2],
            ts: 0,
            out: Vec::new(),
        }
    }

    /// Sends bytes in direction `dir` at the next position.
    pub fn send(&mut self, dir: Direction, bytes: &[u8]) -> &mut Self {
        self.ts += 1000;
        let p = &mut self.pos[dir.index()];
        self.conn.data(dir, *p, self.ts, bytes, &mut self.out);
        *p += bytes.len() as u64;
        self
    }

    /// An event for `len` bytes that never arrives (unknown hole).
    pub fn drop_bytes(&mut self, dir: Direction, len: usize) -> &mut Self {
        self.ts += 1000;
        self.pos[dir.index()] += len as u64;
        self
    }

    /// A syscall of `bytes.len()` bytes of which only `captured` were copied.
    pub fn truncated(&mut self, dir: Direction, bytes: &[u8], captured: usize) -> &mut Self {
        self.ts += 1000;
        let p = self.pos[dir.index()];
        self.conn
            .data(dir, p, self.ts, &bytes[..captured], &mut self.out);
        self.conn.lost(
            dir,
            p + captured as u64,
            (bytes.len() - captured) as u64,
            &mut self.out,
        );
        self.pos[dir.index()] += bytes.len() as u64;
        self
    }

    pub fn flush(&mut self) -> &mut Self {
        self.conn.flush(&mut self.out);
        self
    }

    pub fn close(&mut self) -> Vec<Box<Exchange>> {
        self.ts += 1000;
        self.conn.close(self.ts, &mut self.out);
        std::mem::take(&mut self.out)
    }
}

/// What a user checks first in an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sum {
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub req_body: u64,
    pub resp_body: Option<u64>,
    pub flags: Vec<&'static str>,
}

pub fn sum(e: &Exchange) -> Sum {
    Sum {
        method: e.method.clone(),
        path: e.path.clone(),
        status: e.status,
        req_body: e.request.body_len,
        resp_body: e.response.as_ref().map(|r| r.body_len),
        flags: e.flags.names().collect(),
    }
}

/// Builds an expected [`Sum`]: `x("GET", "/", Some(200), 0, Some(5), &["gap"])`.
pub fn x(
    method: &str,
    path: &str,
    status: Option<u16>,
    req_body: u64,
    resp_body: Option<u64>,
    flags: &[&'static str],
) -> Sum {
    Sum {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        req_body,
        resp_body,
        flags: flags.to_vec(),
    }
}

pub fn sums(v: &[Box<Exchange>]) -> Vec<Sum> {
    v.iter().map(|e| sum(e)).collect()
}

/// `GET {path}` with a Host header.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
}

/// A 200 with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
