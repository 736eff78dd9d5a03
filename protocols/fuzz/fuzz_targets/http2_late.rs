//! Property: whatever is lost and wherever we join, no header is ever shown
//! wrong. Replays a recorded real-peer connection (tests/data/http2) joined
//! at a fuzz-chosen octet, with fuzz-chosen losses, and compares every
//! header list with the full decode: each field is equal or flagged unknown,
//! and a shorter list is flagged `gap`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use protocols::http2::{Http2Config, Http2Conn, Start};
use protocols::record::{Direction, Exchange, FIELD_UNKNOWN, Flags, Headers};

const RECORDINGS: [&[u8]; 4] = [
    include_bytes!("../../tests/data/http2/python_h2.rec"),
    include_bytes!("../../tests/data/http2/grpc_python.rec"),
    include_bytes!("../../tests/data/http2/nghttp_push_continuation.rec"),
    include_bytes!("../../tests/data/http2/node_http2.rec"),
];

fn chunks(rec: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = 7;
    while i + 13 <= rec.len() {
        let d = rec[i];
        let n = u32::from_be_bytes([rec[i + 9], rec[i + 10], rec[i + 11], rec[i + 12]]) as usize;
        i += 13;
        out.push((d, &rec[i..i + n]));
        i += n;
    }
    out
}

fn dir(d: u8) -> Direction {
    if d == 0 { Direction::Egress } else { Direction::Ingress }
}

struct Feeder {
    conn: Http2Conn,
    pending: [Vec<u8>; 2],
    out: Vec<Box<Exchange>>,
}

impl Feeder {
    fn feed(&mut self, d: Direction, b: &[u8]) {
        let p = &mut self.pending[d.index()];
        p.extend_from_slice(b);
        let n = self.conn.feed(d, p, 0, &mut self.out);
        p.drain(..n);
    }
    fn lost(&mut self, d: Direction, len: u64) {
        let held = self.pending[d.index()].len() as u64;
        self.pending[d.index()].clear();
        self.conn.lost(d, held + len, 0, &mut self.out);
    }
}

/// The full decode of each recording, computed once.
fn full_decode(i: usize) -> &'static [Box<Exchange>] {
    static FULL: [OnceLock<Vec<Box<Exchange>>>; 4] = [const { OnceLock::new() }; 4];
    FULL[i].get_or_init(|| {
        let mut f = Feeder {
            conn: Http2Conn::new(&Http2Config::default(), Start::Preface),
            pending: [Vec::new(), Vec::new()],
            out: Vec::new(),
        };
        for (d, b) in chunks(RECORDINGS[i]) {
            f.feed(dir(d), b);
        }
        f.conn.close(0, &mut f.out);
        f.out
    })
}

fn check(full: &Headers, late: &Headers, cut: bool) {
    let f: Vec<_> = full.iter().collect();
    let l: Vec<_> = late.iter().collect();
    if l.is_empty() {
        return;
    }
    assert!(l.len() <= f.len());
    assert!(cut || l.len() == f.len());
    for (a, b) in f.iter().zip(&l) {
        if b.2 & FIELD_UNKNOWN == 0 {
            assert_eq!((a.0, a.1), (b.0, b.1), "wrong header");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let rec = RECORDINGS[data[0] as usize % RECORDINGS.len()];
    let chunks = chunks(rec);
    let cfg = Http2Config::default();
    let full = full_decode(data[0] as usize % RECORDINGS.len());
    // Join at chunk j, octet k; then for each later chunk a byte of the
    // script says: feed it, lose it, or lose a part of it.
    let j = data[1] as usize % chunks.len();
    let mut late = Feeder {
        conn: Http2Conn::new(&cfg, Start::LateJoin),
        pending: [Vec::new(), Vec::new()],
        out: Vec::new(),
    };
    let mut script = data[3..].iter().copied();
    for (i, (d, b)) in chunks.iter().enumerate().skip(j) {
        let mut b = *b;
        if i == j {
            b = &b[(data[2] as usize * b.len() / 256)..];
        }
        let op = script.next().unwrap_or(0);
        let at = (script.next().unwrap_or(0) as usize * b.len()) / 256;
        match op % 8 {
            1 => late.lost(dir(*d), b.len() as u64),
            2 => {
                late.feed(dir(*d), &b[..at]);
                late.lost(dir(*d), (b.len() - at) as u64);
            }
            3 => {
                late.lost(dir(*d), at as u64);
                late.feed(dir(*d), &b[at..]);
            }
            4 => {
                late.feed(dir(*d), &b[..at]);
                late.lost(dir(*d), 1);
                late.feed(dir(*d), &b[(at + 1).min(b.len())..]);
            }
            _ => late.feed(dir(*d), b),
        }
    }
    late.conn.close(0, &mut late.out);
    for e in &late.out {
        let Some(f) = full.iter().find(|x| x.stream_id == e.stream_id) else {
            // A stream the full decode never had: only a false resync can
            // invent one; it must not carry a header we could mistake.
            assert!(e.flags.contains(Flags::LATE_JOIN));
            continue;
        };
        if e.flags.contains(Flags::SIDE_UNKNOWN) && e.side != f.side {
            continue;
        }
        let cut = e.flags.contains(Flags::GAP);
        check(&f.request.headers, &e.request.headers, cut);
        check(&f.request.trailers, &e.request.trailers, cut);
        if let (Some(a), Some(b)) = (&f.response, &e.response) {
            check(&a.headers, &b.headers, cut);
            check(&a.trailers, &b.trailers, cut);
        }
    }
});
