//! A fixed amount of HTTP/1 work for counting instructions, which, unlike
//! time, other load on the machine does not change: one corpus of
//! `benches/http1.rs` (default `small_gets`; also `json_posts_4k`,
//! `chunked_64k`, `mixed`), `ITERATIONS` times.
//!
//! ```text
//! cargo build --release -p protocols --example http1_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/http1_instructions 20 recycle mixed
//! ```
//!
//! Modes: `recycle` (records given back with `Exchange::recycle` after each
//! event, as the collector does), `drop` (dropped after each event),
//! `bare` (only httparse on the same heads, 32 header slots). Instructions
//! per exchange: (count at 40 iterations - count at 20) / (20 × exchanges).

use std::hint::black_box;

#[path = "../benches/support/http1_corpus.rs"]
mod corpus;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(iterations), Some(mode)) = (
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2),
    ) else {
        eprintln!("usage: http1_instructions ITERATIONS recycle|drop|bare [CORPUS]");
        std::process::exit(2);
    };
    let name = args.get(3).map_or("small_gets", String::as_str);
    let Some(c) = corpus::corpora().into_iter().find(|c| c.name == name) else {
        eprintln!("unknown corpus {name}: small_gets, json_posts_4k, chunked_64k or mixed");
        std::process::exit(2);
    };
    let mut out = Vec::new();
    for _ in 0..iterations {
        match mode.as_str() {
            "bare" => {
                black_box(corpus::run_httparse(&c));
            }
            "recycle" | "drop" => {
                let n = corpus::run_connection(&c, &mut out, mode == "recycle");
                assert_eq!(n, c.exchanges);
            }
            _ => {
                eprintln!("unknown mode {mode}");
                std::process::exit(2);
            }
        }
    }
}
