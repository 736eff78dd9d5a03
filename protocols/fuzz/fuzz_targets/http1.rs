//! Fuzzes the connection entry point with scripted capture events: data in
//! either direction at jittered positions (reordering, overlap, holes),
//! known losses, flushes, then a close. Small limits so caps are reached.
//!
//! Script: repeated `[op, len, jitter, bytes[len]...]`.
//! op % 4: 0 egress data, 1 ingress data, 2 lost (len bytes), 3 flush;
//! op & 4 selects the other direction for `lost`.
//!
//! Run from `protocols/`: `cargo fuzz run http1 fuzz/corpus/http1 fuzz/seeds/http1`
//! (the seeds are hand-written scripts of the main framing cases).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::conn::{Config, Connection};
use protocols::record::Direction;

const PREVIEW: usize = 16;

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        body_preview: PREVIEW,
        max_head: 512,
        reorder_window: 256,
        max_buffered: 2048,
        detect_limit: 1024,
        max_pending_requests: 8,
    };
    let late = data.first().is_some_and(|b| b & 0x80 != 0);
    let mut conn = if late {
        Connection::new_late(&cfg)
    } else {
        Connection::new(&cfg)
    };
    let mut out = Vec::new();
    let mut cursor = [0u64; 2];
    let mut fed = [0u64; 2];
    let mut i = 0;
    let mut ts = 0u64;
    while i + 3 <= data.len() {
        let (op, len, jitter) = (data[i], data[i + 1] as usize, data[i + 2] as i8);
        i += 3;
        ts += 1;
        let dir = if op & 1 == 0 { Direction::Egress } else { Direction::Ingress };
        let d = dir.index();
        match op % 4 {
            0 | 1 => {
                let bytes = &data[i..(i + len).min(data.len())];
                i += bytes.len();
                let pos = cursor[d].saturating_add_signed(i64::from(jitter));
                conn.data(dir, pos, ts, bytes, &mut out);
                fed[d] += bytes.len() as u64;
                cursor[d] = cursor[d].max(pos + bytes.len() as u64);
            }
            2 => {
                let dir = if op & 4 == 0 { dir } else { dir.opposite() };
                let d = dir.index();
                let pos = cursor[d].saturating_add_signed(i64::from(jitter));
                conn.lost(dir, pos, len as u64, &mut out);
                cursor[d] = cursor[d].max(pos + len as u64);
            }
            _ => conn.flush(&mut out),
        }
    }
    conn.close(ts + 1, &mut out);
    let st = conn.stats();
    assert!(st.bytes[0] <= fed[0] && st.bytes[1] <= fed[1]);
    assert_eq!(st.exchanges as usize, out.len());
    for ex in &out {
        for m in std::iter::once(&ex.request).chain(ex.response.as_ref()) {
            assert!(m.body_preview.len() <= PREVIEW);
            assert!(m.body_preview.len() as u64 <= m.body_len);
        }
    }
    let mut again = Vec::new();
    conn.close(ts + 2, &mut again);
    conn.data(Direction::Egress, 0, ts + 3, b"GET / HTTP/1.1\r\n\r\n", &mut again);
    assert!(again.is_empty());
});
