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
use protocols::conn::{Config, Connection};
use protocols::record::{Direction, Exchange};

/// Bytes per captured event for large bodies (a typical read buffer).
const EVENT: usize = 16 * 1024;
/// Exchanges per corpus.
const SMALL: usize = 2000;
const POSTS: usize = 500;
const CHUNKED: usize = 50;

struct Corpus {
    name: &'static str,
    /// (direction, bytes) events in capture order.
    events: Vec<(Direction, Vec<u8>)>,
    /// Every head, for the httparse baseline: (is_request, bytes).
    heads: Vec<(bool, Vec<u8>)>,
    exchanges: usize,
    bytes: usize,
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

fn corpora() -> Vec<Corpus> {
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
fn run_connection(c: &Corpus, out: &mut Vec<Exchange>, recycle: bool) -> usize {
    let mut conn = Connection::new(&Config::default());
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

fn run_httparse(c: &Corpus) -> usize {
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
fn run_httparse_records(c: &Corpus, out: &mut Vec<Exchange>) -> usize {
    use protocols::record::{Headers, Proto, Side};
    let mut ex: Option<Exchange> = None;
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
