//! The HTTP/2 connection state machine on hostile input: a script of feeds
//! (either direction, arbitrary splits) and losses, from each start mode.
//! Must never panic, never hold more than the documented look-ahead, and
//! keep streams under the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::http2::frame::PREFACE;
use protocols::http2::{Http2Config, Http2Conn, RESYNC_LOOKAHEAD, Start};
use protocols::record::Direction;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = Http2Config {
        max_open_streams: 16,
        body_preview: 16,
        ..Http2Config::default()
    };
    let start = match mode % 3 {
        0 => Start::Preface,
        1 => Start::LateJoin,
        _ => Start::Upgrade(Box::new(protocols::http2::Upgrade {
            client: Direction::Egress,
            method: "GET".into(),
            path: "/".into(),
            authority: None,
            request: Default::default(),
            settings: Some(vec![0, 1, 0, 0, 0x10, 0]),
        })),
    };
    let mut conn = Http2Conn::new(&cfg, start);
    let mut out = Vec::new();
    let mut pending = [Vec::new(), Vec::new()];
    if mode & 0x80 != 0 {
        pending[0].extend_from_slice(PREFACE);
    }
    let mut ts = 0u64;
    // Ops: [op][len][len bytes]; op bit 0 = direction, op bit 1 = loss.
    while rest.len() >= 2 {
        let (op, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        let dir = if op & 1 == 0 { Direction::Egress } else { Direction::Ingress };
        let p = &mut pending[dir.index()];
        ts += 1;
        if op & 2 != 0 {
            let held = p.len() as u64;
            p.clear();
            conn.lost(dir, held + len as u64, ts, &mut out);
            continue;
        }
        let n = len.min(rest.len());
        p.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        let used = conn.feed(dir, p, ts, &mut out);
        assert!(used <= p.len());
        p.drain(..used);
        assert!(p.len() <= RESYNC_LOOKAHEAD);
        assert!(conn.open_streams() <= 16);
    }
    conn.close(ts, &mut out);
    assert_eq!(conn.open_streams(), 0);
});
