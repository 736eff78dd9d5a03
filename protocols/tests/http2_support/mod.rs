//! Shared helpers for the HTTP/2 tests: recorded sessions, a feeder that
//! behaves like the connection driver (keeps unconsumed octets), frame builders.
#![allow(dead_code)]

use protocols::http2::frame::{FrameHeader, FrameType};
use protocols::http2::{Http2Config, Http2Conn, RESYNC_LOOKAHEAD, Start};
use protocols::record::{Direction, Exchange, FIELD_UNKNOWN, Headers};

/// One recorded chunk: (direction, ns, octets). Direction 0 is client->server.
pub type Chunk = (u8, u64, Vec<u8>);

pub fn load(name: &str) -> Vec<Chunk> {
    let path = format!("{}/tests/data/http2/{name}.rec", env!("CARGO_MANIFEST_DIR"));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(b.starts_with(b"H2REC1\n"), "{path}: not a recording");
    let mut i = 7;
    let mut out = Vec::new();
    while i < b.len() {
        let d = b[i];
        let t = u64::from_be_bytes(b[i + 1..i + 9].try_into().unwrap());
        let n = u32::from_be_bytes(b[i + 9..i + 13].try_into().unwrap()) as usize;
        i += 13;
        out.push((d, t, b[i..i + n].to_vec()));
        i += n;
    }
    out
}

pub const RECORDINGS: [&str; 6] = [
    "curl_prior_knowledge",
    "curl_upgrade",
    "nghttp_push_continuation",
    "python_h2",
    "grpc_python",
    "node_http2",
];

/// Map recorded direction to the traced process's view.
pub fn dir_of(d: u8, traced_is_client: bool) -> Direction {
    match (d == 0, traced_is_client) {
        (true, true) | (false, false) => Direction::Egress,
        _ => Direction::Ingress,
    }
}

/// Drives an [`Http2Conn`] the way the connection driver will: keeps what
/// `feed` did not consume and passes it again with the next octets.
pub struct Feeder {
    pub conn: Http2Conn,
    pending: [Vec<u8>; 2],
    pub out: Vec<Box<Exchange>>,
}

impl Feeder {
    pub fn new(cfg: &Http2Config, start: Start) -> Self {
        Feeder {
            conn: Http2Conn::new(cfg, start),
            pending: [Vec::new(), Vec::new()],
            out: Vec::new(),
        }
    }

    pub fn feed(&mut self, dir: Direction, bytes: &[u8], ts: u64) {
        let p = &mut self.pending[dir.index()];
        p.extend_from_slice(bytes);
        let n = self.conn.feed(dir, p, ts, &mut self.out);
        assert!(n <= p.len());
        p.drain(..n);
        assert!(
            p.len() <= RESYNC_LOOKAHEAD,
            "feed left {} octets unconsumed",
            p.len()
        );
    }

    pub fn lost(&mut self, dir: Direction, len: u64, ts: u64) {
        let held = self.pending[dir.index()].len() as u64;
        self.pending[dir.index()].clear();
        self.conn.lost(dir, held + len, ts, &mut self.out);
    }

    pub fn held(&self, dir: Direction) -> usize {
        self.pending[dir.index()].len()
    }

    pub fn close(mut self, ts: u64) -> (Vec<Box<Exchange>>, Http2Conn) {
        self.conn.close(ts, &mut self.out);
        (self.out, self.conn)
    }
}

/// Strip the HTTP/1.1 upgrade exchange from an h2c recording: returns the
/// request head, the settings payload and the chunks after the switch.
pub fn split_upgrade(chunks: &[Chunk]) -> (Vec<u8>, Option<Vec<u8>>, Vec<Chunk>) {
    let mut seen = [0usize; 2];
    let mut heads: [Option<usize>; 2] = [None, None];
    let mut all = [Vec::new(), Vec::new()];
    let mut rest = Vec::new();
    for (d, t, b) in chunks {
        let di = *d as usize;
        if heads[di].is_none() {
            all[di].extend_from_slice(b);
            if let Some(p) = all[di].windows(4).position(|w| w == b"\r\n\r\n") {
                heads[di] = Some(p + 4);
                let tail = all[di][p + 4..].to_vec();
                if !tail.is_empty() {
                    rest.push((*d, *t, tail));
                }
            }
        } else {
            rest.push((*d, *t, b.clone()));
        }
        seen[di] += b.len();
    }
    let head = all[0][..heads[0].unwrap()].to_vec();
    let text = String::from_utf8_lossy(&head).into_owned();
    let settings = text
        .lines()
        .find_map(|l| l.strip_prefix("HTTP2-Settings: "))
        .and_then(|v| protocols::http2::decode_http2_settings(v.trim().as_bytes()));
    (head, settings, rest)
}

/// Replay chunks in recorded order; `split` cuts every chunk further.
pub fn replay(
    cfg: &Http2Config,
    start: Start,
    chunks: &[Chunk],
    traced_is_client: bool,
    split: usize,
    with_ts: bool,
) -> (Vec<Box<Exchange>>, Http2Conn) {
    let mut f = Feeder::new(cfg, start);
    let mut last = 0;
    for (d, t, b) in chunks {
        let ts = if with_ts { *t + 1 } else { 0 };
        last = ts;
        let dir = dir_of(*d, traced_is_client);
        if split == 0 {
            f.feed(dir, b, ts);
        } else {
            for piece in b.chunks(split) {
                f.feed(dir, piece, ts);
            }
        }
    }
    f.close(last)
}

pub fn start_for(name: &str, chunks: &[Chunk], traced_is_client: bool) -> (Start, Vec<Chunk>) {
    if name == "curl_upgrade" {
        let (head, settings, rest) = split_upgrade(chunks);
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split(' ');
        let method = words.next().unwrap().to_string();
        let path = words.next().unwrap().to_string();
        let up = protocols::http2::Upgrade {
            client: dir_of(0, traced_is_client),
            method,
            path,
            authority: Some("127.0.0.1".into()),
            request: Default::default(),
            settings,
        };
        (Start::Upgrade(Box::new(up)), rest)
    } else {
        (Start::Preface, chunks.to_vec())
    }
}

pub fn get<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.get(name.as_bytes())
        .map(|v| std::str::from_utf8(v).unwrap())
}

pub fn by_stream(ex: &[Box<Exchange>], id: u32) -> &Exchange {
    ex.iter()
        .find(|e| e.stream_id == Some(id))
        .unwrap_or_else(|| panic!("no exchange for stream {id}"))
}

/// Every field of `late` is either flagged unknown or equal, position by
/// position, to the field of `full`; returns the number of unknown fields.
pub fn assert_no_wrong_header(full: &Headers, late: &Headers, what: &str) -> usize {
    assert_no_wrong_header_prefix(full, late, false, what)
}

/// As [`assert_no_wrong_header`]; with `allow_prefix`, `late` may stop early
/// (a header block cut by lost octets).
pub fn assert_no_wrong_header_prefix(
    full: &Headers,
    late: &Headers,
    allow_prefix: bool,
    what: &str,
) -> usize {
    if late.is_empty() {
        return 0;
    }
    let f: Vec<_> = full.iter().collect();
    let l: Vec<_> = late.iter().collect();
    if allow_prefix {
        assert!(
            l.len() <= f.len(),
            "{what}: field count\nfull {full:?}\nlate {late:?}"
        );
    } else {
        assert_eq!(
            f.len(),
            l.len(),
            "{what}: field count\nfull {full:?}\nlate {late:?}"
        );
    }
    let mut unknown = 0;
    for (a, b) in f.iter().zip(&l) {
        if b.2 & FIELD_UNKNOWN != 0 {
            unknown += 1;
            assert!(
                String::from_utf8_lossy(b.0).starts_with("<unknown")
                    || String::from_utf8_lossy(b.1).starts_with("<unknown"),
                "{what}: unknown field without placeholder {b:?}"
            );
            continue;
        }
        assert_eq!((a.0, a.1), (b.0, b.1), "{what}: wrong header");
    }
    unknown
}

pub fn frame(kind: FrameType, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
        reserved: false,
    }
    .write(&mut v);
    v.extend_from_slice(payload);
    v
}
