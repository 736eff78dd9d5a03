//! What live capture does with events: decode them into exchanges
//! ([`HttpSink`], the default), or write them to a recording
//! ([`RecordSink`], `sniff record`). Both fill in metadata from the live
//! machine (`backfill`), which is recorded too.

use std::{
    fs::File,
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use probe_common::stat;
use protocols::conn::Config as ConnConfig;
use serde_json::json;

use crate::{
    backfill::Backfill,
    events::{ConnKey, Event},
    filter::Filters,
    loader::KernelStats,
    pipeline::{Input, Pipeline},
    recording,
    render::Renderer,
    session::Sink,
    uprobes::join::Enricher,
};

/// The capture clock now (`bpf_ktime_get_ns` is CLOCK_MONOTONIC).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How often idle connections are looked at (flushed and compacted) and
/// unresolved peers retried: often enough that a reply's metadata lands
/// promptly, rarely enough that a scan of every tracked connection costs
/// nothing under load.
const TICK_EVERY_NS: u64 = 100_000_000;

pub struct HttpSink<W: Write> {
    pipeline: Pipeline<W>,
    backfill: Backfill,
    json: bool,
    last_tick: u64,
}

impl<W: Write> HttpSink<W> {
    pub fn new(filters: Filters, renderer: Renderer, out: W, config: Option<ConnConfig>) -> Self {
        let json = renderer.json;
        HttpSink {
            pipeline: Pipeline::new(config.unwrap_or_default(), filters, renderer, out),
            backfill: Backfill::new(),
            json,
            last_tick: 0,
        }
    }

    /// Joins Go uprobe calls to the exchanges (`--source both`, `compare`).
    pub fn with_go(mut self, enricher: Enricher) -> Self {
        self.pipeline.go = Some(enricher);
        self
    }

    /// Reports every connection end's view, not one per exchange.
    pub fn both_sides(mut self) -> Self {
        self.pipeline.both_sides = true;
        self
    }

    pub fn take_go(&mut self) -> Option<Enricher> {
        self.pipeline.go.take()
    }
}

impl<W: Write> Sink for HttpSink<W> {
    fn event(&mut self, _raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        // Metadata goes in before the event it came with: a connection's
        // namespace before its announcement (it decides which end pairs
        // with which), and what its first bytes revealed before them, so
        // the exchanges they complete already name the peer.
        for m in &self.backfill.on_event(ev) {
            self.pipeline.input(&Input::Meta(m))?;
        }
        self.pipeline.input(&Input::Event(ev))
    }

    fn tick(&mut self) -> io::Result<()> {
        let now = monotonic_ns();
        if now >= self.last_tick + TICK_EVERY_NS {
            self.last_tick = now;
            for m in self.backfill.retry() {
                self.pipeline.input(&Input::Meta(&m))?;
            }
            self.pipeline.input(&Input::Tick(now))?;
        }
        self.pipeline.flush_output()
    }

    fn stats(&mut self, stats: &KernelStats, malformed: u64) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        let p = self.pipeline.stats();
        let line = json!({
            "type": "stats",
            "schema": crate::render::SCHEMA_VERSION,
            "events": stats.get(stat::EVENTS),
            "bytes": stats.get(stat::BYTES),
            "ringbuf_drops": stats.get(stat::RINGBUF_DROPS),
            "ringbuf_drop_bytes": stats.get(stat::RINGBUF_DROP_BYTES),
            "truncated_syscalls": stats.get(stat::TRUNCATED_SYSCALLS),
            "truncated_bytes": stats.get(stat::TRUNCATED_BYTES),
            "read_failures": stats.get(stat::READ_FAILURES),
            "pending_full": stats.get(stat::PENDING_FULL),
            "conns_full": stats.get(stat::CONNS_FULL),
            "lost_conn": stats.get(stat::LOST_CONN),
            "kernel_read_failures": stats.get(stat::KERNEL_READ_FAILURES),
            "proto_rejected": stats.get(stat::PROTO_REJECTED),
            "go_duplicate_entries": stats.get(stat::GO_DUPLICATE_ENTRIES),
            "go_unmatched_returns": stats.get(stat::GO_UNMATCHED_RETURNS),
            "malformed_records": malformed,
            "connections": p.connections,
            "http_connections": p.http_connections,
            "exchanges": p.exchanges,
            "shown": p.shown,
            "duplicates": p.duplicates,
            "folded_connections": p.folded,
            "lossy_exchanges": p.lossy,
            "lost_bytes": p.lost_bytes,
        });
        let mut out = Vec::with_capacity(512);
        serde_json::to_writer(&mut out, &line)?;
        out.push(b'\n');
        self.pipeline.write_raw(&out)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.pipeline.finish(monotonic_ns())
    }

    fn muted(&mut self) -> Vec<ConnKey> {
        let keys = self.pipeline.take_muted();
        for k in &keys {
            self.backfill.muted(*k);
        }
        keys
    }

    fn summary(&self) -> Option<String> {
        let p = self.pipeline.stats();
        Some(format!(
            "{} exchanges shown ({} decoded on {} HTTP connections{}{})",
            p.shown,
            p.exchanges,
            p.http_connections,
            if p.folded > 0 {
                format!(
                    ", {} connections decoded at their client end only",
                    p.folded
                )
            } else {
                String::new()
            },
            if p.lossy > 0 {
                format!(
                    ", {} with bytes sniff did not see, flagged (from before it started, \
                     not sent as not HTTP, or lost)",
                    p.lossy
                )
            } else {
                String::new()
            }
        ))
    }
}

/// `sniff record`: raw events, metadata and ticks to a file.
pub struct RecordSink {
    writer: recording::Writer<File>,
    backfill: Backfill,
    max_bytes: Option<u64>,
    stop: Arc<AtomicBool>,
    last_tick: u64,
}

impl RecordSink {
    pub fn new(
        writer: recording::Writer<File>,
        max_bytes: Option<u64>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        RecordSink {
            writer,
            backfill: Backfill::new(),
            max_bytes,
            stop,
            last_tick: 0,
        }
    }

    pub fn bytes_written(&self) -> u64 {
        self.writer.len()
    }
}

impl Sink for RecordSink {
    fn event(&mut self, raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        if self.max_bytes.is_some_and(|max| self.writer.len() >= max) {
            self.stop.store(true, Ordering::Relaxed);
            return Ok(());
        }
        // In the order the live pipeline takes them (see `HttpSink`).
        for m in &self.backfill.on_event(ev) {
            self.writer.meta(m)?;
        }
        self.writer.event(raw)
    }

    fn tick(&mut self) -> io::Result<()> {
        let now = monotonic_ns();
        if now < self.last_tick + TICK_EVERY_NS {
            return Ok(());
        }
        self.last_tick = now;
        for m in self.backfill.retry() {
            self.writer.meta(&m)?;
        }
        self.writer.tick(now)
    }

    fn stats(&mut self, _stats: &KernelStats, _malformed: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
