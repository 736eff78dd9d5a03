//! Replays of byte streams recorded from real peers
//! (`tests/data/http2/README.md` says how they were made).

mod http2_support;

use http2_support::*;
use protocols::http2::Http2Config;
use protocols::record::{Flags, GrpcKind, Side};

#[test]
fn dump_all() {
    for name in RECORDINGS {
        let chunks = load(name);
        let (start, chunks) = start_for(name, &chunks, true);
        let (ex, conn) = replay(&Http2Config::default(), start, &chunks, true, 0, true);
        eprintln!("== {name}: {:?}", conn.counters());
        for e in &ex {
            eprintln!(
                "  s{:?} {:?} {} {} {:?} status {:?} req_body {} resp_body {:?} flags {:?} grpc {:?} reset {:?} req_h {} resp_h {:?} trailers {:?}",
                e.stream_id, e.side, e.method, e.path, e.authority, e.status, e.request.body_len,
                e.response.as_ref().map(|r| r.body_len), e.flags, e.grpc, e.reset_code,
                e.request.headers.len(), e.response.as_ref().map(|r| r.headers.len()),
                e.response.as_ref().map(|r| r.trailers.len())
            );
        }
    }
}
