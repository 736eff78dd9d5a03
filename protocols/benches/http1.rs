//! HTTP/1 throughput: a generated keep-alive corpus fed through
//! `Connection` the way capture does (one chunk per write, large bodies in
//! 16 KiB reads), against bare httparse parsing the same heads.
//!
//! Each corpus is measured twice: wall time (`http1-wall/...`) and time on
//! CPU of the benchmark thread (`http1-cpu/...`), which other processes on a
//! shared machine don't inflate.
//!
//! Run: `cargo bench -p protocols --bench http1`. Figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocols::record::Exchange;

#[path = "support/http1_corpus.rs"]
mod corpus;
use corpus::{Corpus, corpora, run_connection, run_httparse};

/// Time the benchmark thread spent on a CPU (`/proc/thread-self/schedstat`,
/// first field, ns): on a machine shared with other builds, wall time counts
/// their load too, on-CPU time does not.
struct CpuTime;

static WALL: WallTime = WallTime;

fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        on_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        on_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// The floor the record type sets: httparse on the same heads, plus building
/// the same owned records (method, target, Host, reason, header buffers, a
/// body preview) and dropping them. No framing, no stitching, no streams.
fn run_httparse_records(c: &Corpus, out: &mut Vec<Box<Exchange>>) -> usize {
    use protocols::record::{Headers, Proto, Side};
    let mut ex: Option<Box<Exchange>> = None;
    for (is_req, head) in &c.heads {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let copy = |fields: &[httparse::Header<'_>]| {
            let bytes = fields.iter().map(|h| h.name.len() + h.value.len()).sum();
            let mut hs = Headers::with_capacity(fields.len(), bytes);
            for h in fields {
                hs.push(h.name.as_bytes(), h.value);
            }
            hs
        };
        if *is_req {
            let mut r = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(_)) = r.parse(head) {
                let mut e = Exchange::new(Proto::Http1, Side::Client);
                e.method = r.method.unwrap_or_default().to_owned();
                e.path = r.path.unwrap_or_default().to_owned();
                e.authority = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("host"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                e.request.headers = copy(r.headers);
                ex = Some(e);
            }
        } else {
            let mut r = httparse::Response::new(&mut slots);
            if let Ok(httparse::Status::Complete(_)) = r.parse(head)
                && let Some(mut e) = ex.take()
            {
                e.status = r.code;
                e.reason = r.reason.map(str::to_owned);
                let mut m = protocols::record::Message {
                    headers: copy(r.headers),
                    ..Default::default()
                };
                m.body_preview = Vec::with_capacity(64);
                m.body_preview
                    .extend_from_slice(&head[..head.len().min(64)]);
                e.response = Some(m);
                out.push(e);
            }
        }
    }
    let n = out.len();
    out.clear();
    n
}

fn bench_wall(crit: &mut Criterion) {
    bench(crit, "wall");
}

fn bench_cpu(crit: &mut Criterion<CpuTime>) {
    bench(crit, "cpu");
}

fn bench<M: Measurement>(crit: &mut Criterion<M>, clock: &str) {
    for c in corpora() {
        let mut out = Vec::with_capacity(c.exchanges);
        assert_eq!(
            run_connection(&c, &mut out, true),
            c.exchanges,
            "{}",
            c.name
        );
        let mut g = crit.benchmark_group(format!("http1-{clock}/{}", c.name));
        g.throughput(Throughput::Bytes(c.bytes as u64));
        g.bench_function("connection", |b| {
            b.iter(|| black_box(run_connection(black_box(&c), &mut out, true)))
        });
        g.bench_function("connection_no_recycle", |b| {
            b.iter(|| black_box(run_connection(black_box(&c), &mut out, false)))
        });
        g.bench_function("bare_httparse_heads", |b| {
            b.iter(|| black_box(run_httparse(black_box(&c))))
        });
        g.bench_function("httparse_plus_records", |b| {
            b.iter(|| black_box(run_httparse_records(black_box(&c), &mut out)))
        });
        g.finish();
        println!(
            "corpus {}: {} exchanges, {} bytes, {} events",
            c.name,
            c.exchanges,
            c.bytes,
            c.events.len()
        );
    }
}

fn config<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4))
}

criterion_group! {
    name = wall;
    config = config(Criterion::default());
    targets = bench_wall
}
criterion_group! {
    name = cpu;
    config = config(Criterion::default().with_measurement(CpuTime));
    targets = bench_cpu
}
criterion_main!(wall, cpu);
