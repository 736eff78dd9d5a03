//! From capture events to shown exchanges: one `protocols::conn::Connection`
//! per captured socket, fed with each event's bytes at its stream position,
//! plus the metadata that says who is talking to whom.
//!
//! Live capture, `sniff replay` of a recording, and `sniff replay` of a pcap
//! all drive this through [`Pipeline::input`], so they print the same thing.
//! Nothing here reads the clock or the system: time comes from the inputs
//! (event timestamps and [`Input::Tick`]), metadata from [`Input::Meta`].

use std::{
    collections::HashMap,
    io::{self, Write},
    net::SocketAddr,
};

use protocols::{
    conn::{Config as ConnConfig, Connection, Detected},
    record::{Exchange, Side},
};
use serde::{Deserialize, Serialize};

use crate::{
    events::{ConnKey, Event},
    filter::Filters,
    render::{ConnMeta, Peer, Renderer},
};

/// A connection idle this long (capture clock) gives up waiting for
/// missing or reordered bytes: events from different CPUs arrive within
/// microseconds of each other, so a second is generous.
pub const IDLE_FLUSH_NS: u64 = 1_000_000_000;

/// Metadata found outside the event stream (sock_diag, /proc): recorded
/// with the events so a replay shows exactly what the live run showed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaUpdate {
    pub pid: u32,
    pub fd: i32,
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

impl MetaUpdate {
    pub fn key(&self) -> ConnKey {
        ConnKey {
            tgid: self.pid,
            fd: self.fd,
            generation: self.generation,
        }
    }
}

pub enum Input<'a> {
    Event(&'a Event<'a>),
    Meta(&'a MetaUpdate),
    /// The capture clock's "now": flush connections idle since long enough.
    Tick(u64),
}

struct Tracked {
    meta: ConnMeta,
    parser: Connection,
    /// The other end is captured too (it reports the exchanges; see
    /// [`Pipeline::both_sides`]).
    peer_traced: bool,
    last_ns: u64,
    flushed: bool,
}

/// Counters over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub connections: u64,
    pub http_connections: u64,
    pub exchanges: u64,
    pub shown: u64,
    /// Server-side views of exchanges whose client side was also captured.
    pub duplicates: u64,
    /// Exchanges flagged gap/truncated.
    pub lossy: u64,
    /// Bytes lost inside HTTP connections.
    pub lost_bytes: u64,
}

pub struct Pipeline<W: Write> {
    conns: HashMap<ConnKey, Tracked>,
    /// (local, remote) of captured sockets, to pair the two ends of a
    /// connection on this host.
    by_addr: HashMap<(SocketAddr, SocketAddr), ConnKey>,
    config: ConnConfig,
    filters: Filters,
    renderer: Renderer,
    out: W,
    /// Show both ends' views of a connection whose two ends are captured
    /// (otherwise only the client's). On when `--side` was given.
    pub both_sides: bool,
    scratch: Vec<Exchange>,
    stats: PipelineStats,
}

impl<W: Write> Pipeline<W> {
    pub fn new(config: ConnConfig, filters: Filters, renderer: Renderer, out: W) -> Self {
        let both_sides = filters.side.is_some();
        Pipeline {
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            config,
            filters,
            renderer,
            out,
            both_sides,
            scratch: Vec::new(),
            stats: PipelineStats::default(),
        }
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    pub fn renderer_mut(&mut self) -> &mut Renderer {
        &mut self.renderer
    }

    /// Connections being tracked now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    pub fn input(&mut self, input: &Input<'_>) -> io::Result<()> {
        match input {
            Input::Event(ev) => self.event(ev),
            Input::Meta(m) => {
                self.meta(m);
                Ok(())
            }
            Input::Tick(now) => self.tick(*now),
        }
    }

    fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
        match ev {
            Event::Conn(c) => {
                let late = !matches!(
                    c.syscall,
                    Some(probe_common::Syscall::Connect)
                        | Some(probe_common::Syscall::Accept)
                        | Some(probe_common::Syscall::Accept4)
                );
                let key = c.common.key;
                let meta = ConnMeta {
                    key,
                    comm: c.common.comm.clone(),
                    local: c.local,
                    remote: c.remote,
                    peer: None,
                };
                if let Some(old) = self.conns.remove(&key) {
                    // Announced again (e.g. a UDP socket connected anew):
                    // what was in flight ends here.
                    self.finish_conn(key, old, c.common.ts_ns)?;
                }
                self.track(key, meta, late, c.common.ts_ns);
                Ok(())
            }
            Event::Data(d) => {
                let key = d.common.key;
                if !self.conns.contains_key(&key) {
                    // Its announcement was lost (ring buffer full): track it
                    // as joined mid-way, addresses unknown.
                    let meta = ConnMeta {
                        key,
                        comm: d.common.comm.clone(),
                        local: None,
                        remote: None,
                        peer: None,
                    };
                    self.track(key, meta, true, d.common.ts_ns);
                }
                let Some(t) = self.conns.get_mut(&key) else {
                    return Ok(());
                };
                t.last_ns = d.common.ts_ns;
                t.flushed = false;
                let mut out = std::mem::take(&mut self.scratch);
                if !d.payload.is_empty() {
                    t.parser
                        .data(d.direction, d.pos, d.common.ts_ns, d.payload, &mut out);
                }
                let missing = d.missing_after();
                if missing > 0 {
                    let at = d.pos + d.payload.len() as u64;
                    t.parser.lost(d.direction, at, missing, &mut out);
                }
                let r = self.emit(key, &mut out);
                self.scratch = out;
                r
            }
            Event::Close(c) => {
                if let Some(t) = self.conns.remove(&c.common.key) {
                    self.finish_conn(c.common.key, t, c.common.ts_ns)?;
                }
                Ok(())
            }
            Event::ProcExit(p) => {
                let mut keys: Vec<ConnKey> = self
                    .conns
                    .keys()
                    .filter(|k| k.tgid == p.key.tgid)
                    .copied()
                    .collect();
                keys.sort();
                for key in keys {
                    if let Some(t) = self.conns.remove(&key) {
                        self.finish_conn(key, t, p.ts_ns)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn track(&mut self, key: ConnKey, meta: ConnMeta, late: bool, now: u64) {
        let parser = if late {
            Connection::new_late(&self.config)
        } else {
            Connection::new(&self.config)
        };
        let mut t = Tracked {
            meta,
            parser,
            peer_traced: false,
            last_ns: now,
            flushed: true,
        };
        if let (Some(l), Some(r)) = (t.meta.local, t.meta.remote) {
            self.by_addr.insert((l, r), key);
            if let Some(other) = self.by_addr.get(&(r, l)).copied()
                && let Some(o) = self.conns.get_mut(&other)
            {
                // Both ends captured: each names the other.
                o.meta.peer = Some(Peer {
                    pid: key.tgid,
                    comm: t.meta.comm.clone(),
                });
                o.peer_traced = true;
                t.meta.peer = Some(Peer {
                    pid: other.tgid,
                    comm: o.meta.comm.clone(),
                });
                t.peer_traced = true;
            }
        }
        self.stats.connections += 1;
        self.conns.insert(key, t);
    }

    fn meta(&mut self, m: &MetaUpdate) {
        if let Some(t) = self.conns.get_mut(&m.key())
            && let Some(peer) = &m.peer
            && !t.peer_traced
        {
            t.meta.peer = Some(peer.clone());
        }
    }

    fn tick(&mut self, now: u64) -> io::Result<()> {
        let mut idle: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, t)| !t.flushed && now.saturating_sub(t.last_ns) >= IDLE_FLUSH_NS)
            .map(|(k, _)| *k)
            .collect();
        // Sorted: a replay must print in the same order as the live run.
        idle.sort();
        for key in idle {
            let mut out = std::mem::take(&mut self.scratch);
            if let Some(t) = self.conns.get_mut(&key) {
                t.parser.flush(&mut out);
                t.flushed = true;
            }
            let r = self.emit(key, &mut out);
            self.scratch = out;
            r?;
        }
        Ok(())
    }

    fn finish_conn(&mut self, key: ConnKey, mut t: Tracked, ts: u64) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        t.parser.close(ts, &mut out);
        let s = t.parser.stats();
        if matches!(t.parser.detected(), Detected::Http1 | Detected::Http2) {
            self.stats.http_connections += 1;
            self.stats.lost_bytes += s.lost_bytes;
        }
        if let (Some(l), Some(r)) = (t.meta.local, t.meta.remote)
            && self.by_addr.get(&(l, r)) == Some(&key)
        {
            self.by_addr.remove(&(l, r));
        }
        let r = self.show(&t, &mut out);
        self.scratch = out;
        r
    }

    /// Drains `out` for connection `key` through the dedupe rule, the
    /// filters and the renderer.
    fn emit(&mut self, key: ConnKey, out: &mut Vec<Exchange>) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let Some(t) = self.conns.remove(&key) else {
            out.clear();
            return Ok(());
        };
        let r = self.show(&t, out);
        self.conns.insert(key, t);
        r
    }

    fn show(&mut self, t: &Tracked, out: &mut Vec<Exchange>) -> io::Result<()> {
        for ex in out.drain(..) {
            self.stats.exchanges += 1;
            if crate::render::lossy(ex.flags) {
                self.stats.lossy += 1;
            }
            if t.peer_traced && !self.both_sides && ex.side == Side::Server {
                self.stats.duplicates += 1;
                continue;
            }
            if !self.filters.matches(&ex) {
                continue;
            }
            self.stats.shown += 1;
            self.renderer.exchange(&mut self.out, &ex, &t.meta)?;
        }
        Ok(())
    }

    /// Capture is over: every connection closes; incomplete exchanges come
    /// out flagged.
    pub fn finish(&mut self, now: u64) -> io::Result<()> {
        let mut keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        keys.sort();
        for key in keys {
            if let Some(t) = self.conns.remove(&key) {
                self.finish_conn(key, t, now)?;
            }
        }
        self.out.flush()
    }

    pub fn flush_output(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes a line that is not an exchange (a stats object) in order.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }
}
