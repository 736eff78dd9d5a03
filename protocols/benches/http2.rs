//! HTTP/2 throughput on one core: DATA-heavy traffic (MB/s), gRPC-unary-like
//! traffic (header blocks/s), and the HPACK decoder alone on the same blocks.
//!
//!     cargo bench -p protocols --bench http2

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocols::http2::frame::{END_HEADERS, END_STREAM, FrameHeader, FrameType, PREFACE};
use protocols::http2::hpack::{Decoder, Encoder, huffman};
use protocols::http2::{Http2Config, Http2Conn, Start};
use protocols::record::{Direction, Headers};
use std::hint::black_box;

fn frame(dst: &mut Vec<u8>, kind: FrameType, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
        reserved: false,
    }
    .write(dst);
    dst.extend_from_slice(payload);
}

fn encode(enc: &mut Encoder, fields: &[(&str, &str)]) -> Vec<u8> {
    let f: Vec<(&[u8], &[u8], bool)> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes(), false))
        .collect();
    let mut b = Vec::new();
    enc.encode(&f, &mut b);
    b
}

/// One GET answered by `frames` DATA frames of 16 KiB.
fn data_heavy(frames: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut cenc, mut senc) = (Encoder::new(), Encoder::new());
    let mut client = PREFACE.to_vec();
    frame(&mut client, FrameType::Settings, 0, 0, &[]);
    let b = encode(
        &mut cenc,
        &[(":method", "GET"), (":path", "/big"), (":scheme", "http")],
    );
    frame(
        &mut client,
        FrameType::Headers,
        END_HEADERS | END_STREAM,
        1,
        &b,
    );
    let mut server = Vec::new();
    frame(&mut server, FrameType::Settings, 0, 0, &[]);
    let b = encode(
        &mut senc,
        &[
            (":status", "200"),
            ("content-type", "application/octet-stream"),
        ],
    );
    frame(&mut server, FrameType::Headers, END_HEADERS, 1, &b);
    let payload = vec![0x5au8; 16384];
    for i in 0..frames {
        let flags = if i + 1 == frames { END_STREAM } else { 0 };
        frame(&mut server, FrameType::Data, flags, 1, &payload);
    }
    (client, server)
}

/// `calls` gRPC unary calls, as a Go or Java client and server would encode
/// them: request headers, a 5-octet-prefixed message, response headers,
/// message, trailers. Returns (per-call client bytes, per-call server bytes,
/// header blocks per direction in order).
#[allow(clippy::type_complexity)]
fn grpc_unary(calls: u32) -> (Vec<(Vec<u8>, Vec<u8>)>, [Vec<Vec<u8>>; 2]) {
    let (mut cenc, mut senc) = (Encoder::new(), Encoder::new());
    let mut out = Vec::new();
    let mut blocks = [Vec::new(), Vec::new()];
    let mut msg = vec![0u8];
    msg.extend_from_slice(&40u32.to_be_bytes());
    msg.extend_from_slice(&[7u8; 40]);
    for i in 0..calls {
        let sid = 1 + 2 * i;
        let id = format!("{:08x}", i.wrapping_mul(2_654_435_761));
        let mut c = Vec::new();
        let req = encode(
            &mut cenc,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/helloworld.Greeter/SayHello"),
                (":authority", "greeter.svc.cluster.local:50051"),
                ("content-type", "application/grpc"),
                ("user-agent", "grpc-go/1.60.0"),
                ("te", "trailers"),
                ("grpc-timeout", "999m"),
                ("x-request-id", &id),
            ],
        );
        frame(&mut c, FrameType::Headers, END_HEADERS, sid, &req);
        frame(&mut c, FrameType::Data, END_STREAM, sid, &msg);
        let mut s = Vec::new();
        let resp = encode(
            &mut senc,
            &[(":status", "200"), ("content-type", "application/grpc")],
        );
        frame(&mut s, FrameType::Headers, END_HEADERS, sid, &resp);
        frame(&mut s, FrameType::Data, 0, sid, &msg);
        let tr = encode(&mut senc, &[("grpc-status", "0"), ("grpc-message", "")]);
        frame(
            &mut s,
            FrameType::Headers,
            END_HEADERS | END_STREAM,
            sid,
            &tr,
        );
        blocks[0].push(req);
        blocks[1].push(resp);
        blocks[1].push(tr);
        out.push((c, s));
    }
    let mut first = PREFACE.to_vec();
    frame(&mut first, FrameType::Settings, 0, 0, &[]);
    first.extend_from_slice(&out[0].0);
    out[0].0 = first;
    (out, blocks)
}

fn feed_all(
    conn: &mut Http2Conn,
    dir: Direction,
    bytes: &[u8],
    chunk: usize,
    out: &mut Vec<Box<protocols::record::Exchange>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    for piece in bytes.chunks(chunk) {
        if pending.is_empty() {
            let n = conn.feed(dir, piece, 1, out);
            pending.extend_from_slice(&piece[n..]);
        } else {
            pending.extend_from_slice(piece);
            let n = conn.feed(dir, &pending, 1, out);
            pending.drain(..n);
        }
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Http2Config::default();

    let (client, server) = data_heavy(1024); // 16 MiB of DATA
    let mut g = c.benchmark_group("http2");
    g.throughput(Throughput::Bytes((client.len() + server.len()) as u64));
    g.bench_function("data_heavy_16MiB_64KiB_reads", |b| {
        b.iter(|| {
            let mut conn = Http2Conn::new(&cfg, Start::Preface);
            let mut out = Vec::new();
            feed_all(&mut conn, Direction::Egress, &client, 65536, &mut out);
            feed_all(&mut conn, Direction::Ingress, &server, 65536, &mut out);
            assert_eq!(out.len(), 1);
            black_box(out);
        })
    });

    // Smaller reads (4 KiB, a common socket read size) and a body preview.
    let preview_cfg = Http2Config {
        body_preview: 64,
        ..Http2Config::default()
    };
    g.bench_function("data_heavy_16MiB_4KiB_reads_preview", |b| {
        b.iter(|| {
            let mut conn = Http2Conn::new(&preview_cfg, Start::Preface);
            let mut out = Vec::new();
            feed_all(&mut conn, Direction::Egress, &client, 4096, &mut out);
            feed_all(&mut conn, Direction::Ingress, &server, 4096, &mut out);
            assert_eq!(out.len(), 1);
            black_box(out);
        })
    });

    let calls = 10_000;
    let (wire, blocks) = grpc_unary(calls);
    let nblocks = (blocks[0].len() + blocks[1].len()) as u64;
    g.throughput(Throughput::Elements(nblocks));
    // Records are consumed as they come, as the collector does: given back
    // for reuse (`recycle`), or dropped.
    let grpc = |recycle: bool| {
        let mut conn = Http2Conn::new(&cfg, Start::Preface);
        let mut out = Vec::with_capacity(4);
        let mut n_ex = 0;
        for (c, s) in &wire {
            let n = conn.feed(Direction::Egress, c, 1, &mut out);
            debug_assert_eq!(n, c.len());
            let n = conn.feed(Direction::Ingress, s, 2, &mut out);
            debug_assert_eq!(n, s.len());
            n_ex += out.len();
            for e in out.drain(..) {
                black_box(&e);
                if recycle {
                    e.recycle();
                }
            }
        }
        assert_eq!(n_ex, calls as usize);
    };
    g.bench_function("grpc_unary_10k_calls_header_blocks", |b| {
        b.iter(|| grpc(true))
    });
    g.bench_function("grpc_unary_10k_calls_header_blocks_no_recycle", |b| {
        b.iter(|| grpc(false))
    });
    g.bench_function("hpack_decoder_alone_same_blocks", |b| {
        b.iter(|| {
            let mut dec = [Decoder::new(1 << 16), Decoder::new(1 << 16)];
            let mut h = Headers::with_capacity(16, 512);
            for (d, list) in blocks.iter().enumerate() {
                for block in list {
                    h.clear();
                    dec[d].decode_block(block, &mut h).unwrap();
                    black_box(&h);
                }
            }
        })
    });
    g.finish();

    // Huffman-coded literals as servers send them (nginx codes its response
    // fields: date, last-modified, etag, content type, server).
    let texts: [&[u8]; 8] = [
        b"Sat, 05 Dec 2026 03:19:54 GMT",
        b"Fri, 04 Dec 2026 21:02:11 GMT",
        b"\"6931f3b3-264\"",
        b"text/html; charset=utf-8",
        b"nginx/1.22.1",
        b"application/grpc+proto",
        b"/helloworld.Greeter/SayHello",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    ];
    let coded: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| {
            let mut v = Vec::new();
            huffman::encode(t, &mut v);
            v
        })
        .collect();
    let mut g = c.benchmark_group("hpack");
    g.throughput(Throughput::Bytes(
        texts.iter().map(|t| t.len() as u64).sum(),
    ));
    g.bench_function("huffman_decode_server_fields", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            for c in &coded {
                out.clear();
                huffman::decode(black_box(c), &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
