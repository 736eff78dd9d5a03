//! From capture events to shown exchanges: one `protocols::conn::Connection`
//! per captured socket, fed with each event's bytes at its stream position,
//! plus the metadata that says who is talking to whom.
//!
//! Live capture, `sniff replay` of a recording, and `sniff replay` of a pcap
//! all drive this through [`Pipeline::input`], so they print the same thing.
//! Nothing here reads the clock or the system: time comes from the inputs
//! (event timestamps and [`Input::Tick`]), metadata from [`Input::Meta`].

use std::{
    io::{self, Write},
    net::SocketAddr,
};

use rustc_hash::FxHashMap;

use protocols::{
    conn::{Config as ConnConfig, Connection, Detected},
    record::{Exchange, Side},
};
use serde::{Deserialize, Serialize};

use crate::{
    events::{ConnKey, Event, Role},
    filter::Filters,
    render::{ConnMeta, Peer, Renderer},
    uprobes::join::Enricher,
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
    /// The network namespace of the process (inode of `/proc/PID/ns/net`),
    /// sent before the event that announces the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u64>,
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
    /// Made at the connection's first bytes: sockets that never carry any
    /// (idle, muted, rejected by the kernel's protocol check) cost only
    /// their metadata.
    parser: Option<Box<Connection>>,
    /// Joined mid-way (the parser starts in late-join mode).
    late: bool,
    /// The other end is captured too (it reports the exchanges; see
    /// [`Pipeline::both_sides`]).
    peer_traced: bool,
    /// It came from accept(): with `peer_traced`, the client end reports
    /// every exchange, so this end's bytes need no decoding.
    accepted: bool,
    /// Reported through [`Pipeline::take_muted`] already.
    muted: bool,
    last_ns: u64,
    flushed: bool,
    /// The network namespace of its process, if known.
    netns: Option<u64>,
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
    /// Accepted connections not decoded because their client end was
    /// captured too (it reports the exchanges).
    pub folded: u64,
    /// Exchanges flagged gap/truncated.
    pub lossy: u64,
    /// Bytes lost inside HTTP connections.
    pub lost_bytes: u64,
}

pub struct Pipeline<W: Write> {
    conns: FxHashMap<ConnKey, Tracked>,
    /// Captured sockets by (local, remote), to pair the two ends of a
    /// connection on this host (see [`may_pair`]); nearly always one each,
    /// more when containers reuse the same loopback addresses.
    by_addr: FxHashMap<(SocketAddr, SocketAddr), Vec<ConnKey>>,
    /// Network namespaces of connections not announced yet.
    netns: FxHashMap<ConnKey, u64>,
    config: ConnConfig,
    filters: Filters,
    renderer: Renderer,
    out: W,
    /// Show both ends' views of a connection whose two ends are captured
    /// (otherwise only the client's). On when `--side` was given.
    pub both_sides: bool,
    scratch: Vec<Box<Exchange>>,
    stats: PipelineStats,
    /// Connections whose bytes are no longer needed (folded server ends,
    /// not HTTP): the live capture tells the kernel to stop sending them.
    mute: Vec<ConnKey>,
    /// Folded server ends (see [`Pipeline::fold`]).
    folded: rustc_hash::FxHashSet<ConnKey>,
    /// Go uprobe calls joined to exchanges (`--source both`, `compare`).
    pub go: Option<Enricher>,
}

impl<W: Write> Pipeline<W> {
    pub fn new(config: ConnConfig, filters: Filters, renderer: Renderer, out: W) -> Self {
        let both_sides = filters.side.is_some();
        Pipeline {
            conns: FxHashMap::default(),
            by_addr: FxHashMap::default(),
            netns: FxHashMap::default(),
            config,
            filters,
            renderer,
            out,
            both_sides,
            scratch: Vec::new(),
            stats: PipelineStats::default(),
            mute: Vec::new(),
            folded: Default::default(),
            go: None,
        }
    }

    /// Connections found not worth capturing since the last call.
    pub fn take_muted(&mut self) -> Vec<ConnKey> {
        std::mem::take(&mut self.mute)
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
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
                    comm: c.common.comm,
                    local: c.local,
                    remote: c.remote,
                    peer: None,
                    role: match c.role {
                        Role::Client => Some("client"),
                        Role::Server => Some("server"),
                        Role::Unknown => None,
                    },
                    tcp_state: None,
                };
                if let Some(old) = self.conns.remove(&key) {
                    // Announced again (e.g. a UDP socket connected anew):
                    // what was in flight ends here.
                    self.finish_conn(key, old, c.common.ts_ns)?;
                }
                self.folded.remove(&key);
                self.track(key, meta, late, c.common.ts_ns);
                if c.role == Role::Server
                    && let Some(t) = self.conns.get_mut(&key)
                {
                    t.accepted = true;
                    if t.peer_traced && !self.both_sides {
                        self.fold(key);
                    }
                }
                Ok(())
            }
            Event::Data(d) => {
                let key = d.common.key;
                if self.folded.contains(&key) {
                    return Ok(());
                }
                if !self.conns.contains_key(&key) {
                    // Its announcement was lost (ring buffer full): track it
                    // as joined mid-way, addresses unknown.
                    let meta = ConnMeta {
                        key,
                        comm: d.common.comm,
                        local: None,
                        remote: None,
                        peer: None,
                        role: None,
                        tcp_state: None,
                    };
                    self.track(key, meta, true, d.common.ts_ns);
                }
                let Some(t) = self.conns.get_mut(&key) else {
                    return Ok(());
                };
                t.last_ns = d.common.ts_ns;
                t.flushed = false;
                let mut out = std::mem::take(&mut self.scratch);
                let config = &self.config;
                let parser = t.parser.get_or_insert_with(|| {
                    Box::new(if t.late {
                        Connection::new_late(config)
                    } else {
                        Connection::new(config)
                    })
                });
                if !d.payload.is_empty() {
                    parser.data(d.direction, d.pos, d.common.ts_ns, d.payload, &mut out);
                }
                let missing = d.missing_after();
                if missing > 0 {
                    let at = d.pos + d.payload.len() as u64;
                    parser.lost(d.direction, at, missing, &mut out);
                }
                if parser.detected() == Detected::NotHttp && !t.muted {
                    t.muted = true;
                    self.mute.push(key);
                }
                let r = self.emit(key, &mut out);
                self.scratch = out;
                r
            }
            Event::Close(c) => {
                self.folded.remove(&c.common.key);
                if let Some(t) = self.conns.remove(&c.common.key) {
                    self.finish_conn(c.common.key, t, c.common.ts_ns)?;
                }
                Ok(())
            }
            Event::GoSpan(_) | Event::GoGoroutine(_) | Event::GoHeaders(_) => {
                if let Some(j) = &mut self.go {
                    j.on_event(ev);
                }
                Ok(())
            }
            Event::Exec(_) => Ok(()),
            Event::ProcExit(p) => {
                if let Some(j) = &mut self.go {
                    j.on_event(ev);
                }
                self.folded.retain(|k| k.tgid != p.key.tgid);
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

    fn track(&mut self, key: ConnKey, mut meta: ConnMeta, late: bool, now: u64) {
        // A dual-stack socket talking IPv4 shows v4-mapped addresses: show
        // them as the IPv4 they are (as tcpdump does), and pair such a
        // socket with its IPv4 peer.
        meta.local = meta.local.map(canonical);
        meta.remote = meta.remote.map(canonical);
        let mut t = Tracked {
            meta,
            parser: None,
            late,
            peer_traced: false,
            accepted: false,
            muted: false,
            last_ns: now,
            flushed: true,
            netns: None,
        };
        t.netns = self.netns.remove(&key);
        if let (Some(l), Some(r)) = (t.meta.local, t.meta.remote) {
            self.by_addr.entry((l, r)).or_default().push(key);
            let other = self.by_addr.get(&(r, l)).and_then(|ends| {
                ends.iter().rev().copied().find(|k| {
                    self.conns
                        .get(k)
                        .is_some_and(|o| may_pair(l, r, t.netns, o.netns))
                })
            });
            if let Some(other) = other
                && let Some(o) = self.conns.get_mut(&other)
            {
                // Both ends captured: each names the other.
                o.meta.peer = Some(Peer {
                    pid: key.tgid,
                    comm: t.meta.comm.to_string(),
                });
                o.peer_traced = true;
                let fold_other = o.accepted && !self.both_sides;
                t.meta.peer = Some(Peer {
                    pid: other.tgid,
                    comm: o.meta.comm.to_string(),
                });
                t.peer_traced = true;
                if fold_other {
                    self.fold(other);
                }
            }
        }
        self.stats.connections += 1;
        self.conns.insert(key, t);
    }

    fn forget_addr(&mut self, key: ConnKey, local: SocketAddr, remote: SocketAddr) {
        if let Some(ends) = self.by_addr.get_mut(&(local, remote)) {
            ends.retain(|k| *k != key);
            if ends.is_empty() {
                self.by_addr.remove(&(local, remote));
            }
        }
    }

    /// The server end of a connection whose client end is captured too: the
    /// client end reports every exchange, so this one is forgotten (only its
    /// key is kept, to ignore bytes already on their way) and the kernel is
    /// told to stop sending its bytes.
    fn fold(&mut self, key: ConnKey) {
        let Some(t) = self.conns.remove(&key) else {
            return;
        };
        if let (Some(l), Some(r)) = (t.meta.local, t.meta.remote) {
            self.forget_addr(key, l, r);
        }
        self.folded.insert(key);
        self.stats.folded += 1;
        self.mute.push(key);
    }

    fn meta(&mut self, m: &MetaUpdate) {
        // The namespace comes just before the connection's announcement
        // (which may re-announce a key that is tracked now).
        if let Some(ns) = m.netns {
            if self.netns.len() >= MAX_PENDING_NETNS {
                self.netns.clear();
            }
            self.netns.insert(m.key(), ns);
        }
        let Some(t) = self.conns.get_mut(&m.key()) else {
            return;
        };
        if let Some(peer) = &m.peer
            && !t.peer_traced
        {
            t.meta.peer = Some(peer.clone());
        }
        match m.role.as_deref() {
            Some("client") => t.meta.role = Some("client"),
            Some("server") => t.meta.role = Some("server"),
            _ => {}
        }
        if m.tcp_state.is_some() {
            t.meta.tcp_state = m.tcp_state;
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
                if let Some(p) = &mut t.parser {
                    p.flush(&mut out);
                }
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
        if let Some(p) = &mut t.parser {
            p.close(ts, &mut out);
            if matches!(p.detected(), Detected::Http1 | Detected::Http2) {
                self.stats.http_connections += 1;
                self.stats.lost_bytes += p.stats().lost_bytes;
            }
        }
        if let (Some(l), Some(r)) = (t.meta.local, t.meta.remote) {
            self.forget_addr(key, l, r);
        }
        let r = self.show(&t, &out);
        out.drain(..).for_each(Exchange::recycle);
        self.scratch = out;
        r
    }

    /// Drains `out` for connection `key` through the dedupe rule, the
    /// filters and the renderer.
    fn emit(&mut self, key: ConnKey, out: &mut Vec<Box<Exchange>>) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let Some(t) = self.conns.remove(&key) else {
            out.clear();
            return Ok(());
        };
        let r = self.show(&t, out);
        // Shown: the records go back for the parsers to reuse.
        out.drain(..).for_each(Exchange::recycle);
        self.conns.insert(key, t);
        r
    }

    fn show(&mut self, t: &Tracked, out: &[Box<Exchange>]) -> io::Result<()> {
        for ex in out {
            self.stats.exchanges += 1;
            if crate::render::lossy(ex.flags) {
                self.stats.lossy += 1;
            }
            if t.peer_traced && !self.both_sides && ex.side == Side::Server {
                self.stats.duplicates += 1;
                continue;
            }
            if !self.filters.matches(ex) {
                continue;
            }
            self.stats.shown += 1;
            let go = self.go.as_mut().and_then(|j| j.join(ex, &t.meta));
            self.renderer
                .exchange(&mut self.out, ex, &t.meta, go.as_ref())?;
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

/// Announced connections whose namespace is kept waiting, at most: a
/// namespace always comes just before its connection, so more means
/// announcements were lost; the oldest are dropped.
const MAX_PENDING_NETNS: usize = 4096;

/// Whether two captured sockets with mirrored addresses may be the two
/// ends of one connection. Loopback traffic never leaves its network
/// namespace, and every container has its own 127.0.0.1 where the same
/// ports get used again: there the namespaces must be the same. Other
/// addresses are one connection across namespaces (a container talking to
/// the host through a bridge). An unknown namespace (a process gone before
/// it was looked up, a replay of an older recording) pairs by addresses
/// alone, as before namespaces were known.
fn may_pair(local: SocketAddr, remote: SocketAddr, a: Option<u64>, b: Option<u64>) -> bool {
    let loopback = local.ip().is_loopback() || remote.ip().is_loopback();
    match (a, b) {
        (Some(a), Some(b)) if loopback => a == b,
        _ => true,
    }
}

/// `[::ffff:a.b.c.d]:p` as `a.b.c.d:p`; anything else unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{Close, Comm, Common, Conn, Data},
        render::Redactor,
    };
    use probe_common::Syscall;
    use protocols::record::Direction;

    fn key(pid: u32, fd: i32) -> ConnKey {
        ConnKey {
            tgid: pid,
            fd,
            generation: 7,
        }
    }

    fn common(k: ConnKey, comm: &str, ts: u64) -> Common {
        Common {
            key: k,
            tid: k.tgid,
            ts_ns: ts,
            comm: Comm::from(comm),
        }
    }

    fn conn(k: ConnKey, comm: &str, local: &str, remote: &str, role: Role) -> Event<'static> {
        Event::Conn(Conn {
            common: common(k, comm, 1),
            family: 2,
            sock_type: 1,
            role,
            tcp_state: 1,
            syscall: Some(match role {
                Role::Server => Syscall::Accept4,
                _ => Syscall::Connect,
            }),
            ret: 0,
            local: Some(local.parse().unwrap()),
            remote: Some(remote.parse().unwrap()),
        })
    }

    fn data<'a>(k: ConnKey, dir: Direction, pos: u64, ts: u64, bytes: &'a [u8]) -> Event<'a> {
        Event::Data(Data {
            common: common(k, "x", ts),
            enter_ns: ts,
            syscall: Some(Syscall::Write),
            direction: dir,
            pos,
            syscall_len: bytes.len() as u32,
            chunk_offset: 0,
            last: true,
            truncated: false,
            read_failed: false,
            payload: bytes,
        })
    }

    fn pipeline(filters: Filters) -> Pipeline<Vec<u8>> {
        let renderer = Renderer {
            json: true,
            color: false,
            headers: false,
            bodies: false,
            redact: Redactor::new(true, &[]),
            clock_offset_ns: 0,
            last_second: Default::default(),
        };
        Pipeline::new(ConnConfig::default(), filters, renderer, Vec::new())
    }

    fn shown(p: &Pipeline<Vec<u8>>) -> Vec<serde_json::Value> {
        p.out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";

    /// Two containers, each with its own 127.0.0.1, where a client happens
    /// to use the same port to the same service: each client pairs with
    /// the server in its own namespace, and both report.
    #[test]
    fn same_loopback_addresses_in_two_namespaces_are_two_connections() {
        let mut p = pipeline(Filters::default());
        let ns = |k: ConnKey, netns: u64| MetaUpdate {
            pid: k.tgid,
            fd: k.fd,
            generation: k.generation,
            netns: Some(netns),
            ..MetaUpdate::default()
        };
        let (c1, s1, c2, s2) = (key(10, 3), key(20, 4), key(30, 3), key(40, 4));
        // Announced interleaved: server A, client B, client A, server B.
        for (k, comm, netns, role) in [
            (s1, "server-a", 1, Role::Server),
            (c2, "client-b", 2, Role::Client),
            (c1, "client-a", 1, Role::Client),
            (s2, "server-b", 2, Role::Server),
        ] {
            p.input(&Input::Meta(&ns(k, netns))).unwrap();
            let (local, remote) = match role {
                Role::Server => ("127.0.0.1:80", "127.0.0.1:5000"),
                _ => ("127.0.0.1:5000", "127.0.0.1:80"),
            };
            p.input(&Input::Event(&conn(k, comm, local, remote, role)))
                .unwrap();
        }
        let mut muted = p.take_muted();
        muted.sort();
        assert_eq!(
            muted,
            vec![s1, s2],
            "each server end folded into its own client"
        );
        for (c, s, t) in [(c1, s1, 10), (c2, s2, 20)] {
            for ev in [
                data(c, Direction::Egress, 0, t, REQ),
                data(s, Direction::Ingress, 0, t + 1, REQ),
                data(s, Direction::Egress, 0, t + 2, RESP),
                data(c, Direction::Ingress, 0, t + 3, RESP),
            ] {
                p.input(&Input::Event(&ev)).unwrap();
            }
        }
        let out = shown(&p);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0]["comm"], "client-a");
        assert_eq!(out[0]["peer"]["comm"], "server-a");
        assert_eq!(out[1]["comm"], "client-b");
        assert_eq!(out[1]["peer"]["comm"], "server-b");
        // A namespace not known (a process gone before it was looked up, an
        // older recording) pairs by addresses alone.
        let (lo1, lo2): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert!(may_pair(lo1, lo2, Some(1), None));
        assert!(may_pair(lo1, lo2, None, None));
        assert!(!may_pair(lo1, lo2, Some(1), Some(2)));
        let (a, b): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        assert!(may_pair(a, b, Some(1), Some(2)), "across a bridge");
    }

    /// Announces server end `s` (nginx, 127.0.0.1:80) accepted from client
    /// end `c` (curl, 127.0.0.1:5000), in that order.
    fn announce_ends(p: &mut Pipeline<Vec<u8>>, c: ConnKey, s: ConnKey) {
        for (k, comm, local, remote, role) in [
            (s, "nginx", "127.0.0.1:80", "127.0.0.1:5000", Role::Server),
            (c, "curl", "127.0.0.1:5000", "127.0.0.1:80", Role::Client),
        ] {
            p.input(&Input::Event(&conn(k, comm, local, remote, role)))
                .unwrap();
        }
    }

    /// A short-lived client (curl) is often gone before its namespace can be
    /// read: its end still pairs with the server's, whose namespace is known.
    #[test]
    fn an_end_of_unknown_namespace_still_pairs() {
        let mut p = pipeline(Filters::default());
        let (c, s) = (key(10, 3), key(20, 4));
        p.input(&Input::Meta(&MetaUpdate {
            pid: s.tgid,
            fd: s.fd,
            generation: s.generation,
            netns: Some(7),
            ..MetaUpdate::default()
        }))
        .unwrap();
        announce_ends(&mut p, c, s);
        assert_eq!(p.take_muted(), vec![s]);
    }

    /// Both ends on this host: one report, from the client, naming the server;
    /// the server end is handed back to be muted and is never decoded.
    #[test]
    fn both_ends_captured_report_once_from_the_client() {
        let mut p = pipeline(Filters::default());
        let (c, s) = (key(10, 3), key(20, 4));
        announce_ends(&mut p, c, s);
        assert_eq!(p.take_muted(), vec![s]);
        for ev in [
            data(c, Direction::Egress, 0, 10, REQ),
            data(s, Direction::Ingress, 0, 11, REQ),
            data(s, Direction::Egress, 0, 12, RESP),
            data(c, Direction::Ingress, 0, 13, RESP),
        ] {
            p.input(&Input::Event(&ev)).unwrap();
        }
        let out = shown(&p);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["comm"], "curl");
        assert_eq!(out[0]["side"], "client");
        assert_eq!(out[0]["status"], 404);
        assert_eq!(out[0]["peer"]["comm"], "nginx");
        assert_eq!(out[0]["latency_ns"], 3);
        // --side server: the server's own view instead.
        let mut p = pipeline(Filters {
            side: Some(Side::Server),
            ..Filters::default()
        });
        announce_ends(&mut p, c, s);
        assert!(p.take_muted().is_empty());
        for ev in [
            data(c, Direction::Egress, 0, 10, REQ),
            data(s, Direction::Ingress, 0, 11, REQ),
            data(s, Direction::Egress, 0, 12, RESP),
            data(c, Direction::Ingress, 0, 13, RESP),
        ] {
            p.input(&Input::Event(&ev)).unwrap();
        }
        let out = shown(&p);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["comm"], "nginx");
        assert_eq!(out[0]["side"], "server");
        assert_eq!(out[0]["peer"]["comm"], "curl");
    }

    /// A request without an answer is reported at close, flagged.
    #[test]
    fn unanswered_request_is_reported_at_close() {
        let mut p = pipeline(Filters::default());
        let c = key(10, 3);
        p.input(&Input::Event(&conn(
            c,
            "curl",
            "10.0.0.1:5000",
            "10.0.0.2:80",
            Role::Client,
        )))
        .unwrap();
        p.input(&Input::Event(&data(c, Direction::Egress, 0, 10, REQ)))
            .unwrap();
        assert!(shown(&p).is_empty());
        let close = Event::Close(Close {
            common: common(c, "curl", 20),
            egress_bytes: REQ.len() as u64,
            ingress_bytes: 0,
        });
        p.input(&Input::Event(&close)).unwrap();
        let out = shown(&p);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["status"], serde_json::Value::Null);
        assert_eq!(out[0]["flags"][0], "incomplete");
        assert_eq!(p.stats().http_connections, 1);
    }

    /// Back-filled metadata lands on the connection; filters apply.
    #[test]
    fn metadata_and_filters() {
        let mut p = pipeline(Filters {
            status: Some(crate::filter::StatusMatch::parse("2xx").unwrap()),
            ..Filters::default()
        });
        let c = key(10, 3);
        p.input(&Input::Event(&conn(
            c,
            "curl",
            "127.0.0.1:5000",
            "127.0.0.1:80",
            Role::Client,
        )))
        .unwrap();
        let m = MetaUpdate {
            pid: 10,
            fd: 3,
            generation: 7,
            peer: Some(Peer {
                pid: 99,
                comm: "nginx".into(),
            }),
            ..MetaUpdate::default()
        };
        p.input(&Input::Meta(&m)).unwrap();
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut pos = [0u64; 2];
        for (req, resp) in [(REQ, RESP), (REQ, &ok[..])] {
            p.input(&Input::Event(&data(c, Direction::Egress, pos[0], 10, req)))
                .unwrap();
            p.input(&Input::Event(&data(
                c,
                Direction::Ingress,
                pos[1],
                11,
                resp,
            )))
            .unwrap();
            pos[0] += req.len() as u64;
            pos[1] += resp.len() as u64;
        }
        let out = shown(&p);
        assert_eq!(out.len(), 1, "only the 200 passes --status 2xx: {out:?}");
        assert_eq!(out[0]["peer"]["pid"], 99);
        assert_eq!(p.stats().exchanges, 2);
    }

    /// Not HTTP: handed back to be muted in the kernel.
    #[test]
    fn not_http_is_muted() {
        let mut p = pipeline(Filters::default());
        let c = key(10, 3);
        p.input(&Input::Event(&conn(
            c,
            "psql",
            "127.0.0.1:5000",
            "127.0.0.1:5432",
            Role::Client,
        )))
        .unwrap();
        let junk = [0x51u8; 200];
        p.input(&Input::Event(&data(c, Direction::Egress, 0, 10, &junk)))
            .unwrap();
        assert_eq!(p.take_muted(), vec![c]);
        assert!(shown(&p).is_empty());
    }
}
