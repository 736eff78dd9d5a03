//! Filling in what the event stream cannot say, on the live machine only:
//! for a connection that existed before capture started, its TCP state and
//! role (sock_diag); for a connection whose other end is on this host but
//! not captured, the process at that end (sock_diag finds the peer socket's
//! inode, /proc says who holds it). Results become `MetaUpdate`s, which are
//! recorded, so replays do not need the machine.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use protocols::record::Direction;

use crate::{
    events::{Conn, ConnKey, Event, Role},
    pipeline::{MetaUpdate, canonical as canonical_addr},
    procfs,
    render::Peer,
    sock_diag::{self, TCP_LISTEN, TcpSocket},
};

/// The host socket table is re-read at most this often.
const DUMP_EVERY: Duration = Duration::from_millis(200);
/// /proc is walked for socket owners at most this often.
const OWNERS_EVERY: Duration = Duration::from_secs(1);
/// A connection whose peer is still unknown is retried for this long.
const RETRY_FOR: Duration = Duration::from_secs(3);
/// Peer lookups (a sock_diag query, perhaps a walk of /proc) per second at
/// most.
const LOOKUPS_PER_SECOND: u32 = 50;

pub struct Backfill {
    local_ips: HashSet<IpAddr>,
    dump: Dump,
    dumped_at: Option<Instant>,
    owners: HashMap<u64, (u32, String)>,
    owners_at: Option<Instant>,
    /// Processes that existed at the last walk of /proc.
    walked: HashSet<u32>,
    /// Captured sockets by (local, remote): a peer among them needs no lookup.
    captured: HashMap<(SocketAddr, SocketAddr), ConnKey>,
    addrs: HashMap<ConnKey, (SocketAddr, SocketAddr)>,
    /// Announced connections that have not carried bytes yet.
    unresolved: HashMap<ConnKey, Conn>,
    /// Connections to a local address whose peer is not known yet.
    pending: Vec<(Conn, Instant)>,
    /// Pending connections to look up again at their first bytes in the
    /// other direction than these (see [`Backfill::on_event`]).
    await_reply: HashMap<ConnKey, Direction>,
    /// Network namespace per process (None: could not be read), and ours.
    netns: HashMap<u32, Option<u64>>,
    own_netns: Option<u64>,
    pub errors: u64,
    budget: u32,
    budget_since: Instant,
    /// Peer lookups skipped because the budget was spent.
    pub skipped_lookups: u64,
}

impl Default for Backfill {
    fn default() -> Self {
        Self::new()
    }
}

impl Backfill {
    pub fn new() -> Backfill {
        Backfill {
            local_ips: local_ips(),
            dump: Dump::default(),
            dumped_at: None,
            owners: HashMap::new(),
            owners_at: None,
            walked: HashSet::new(),
            captured: HashMap::new(),
            addrs: HashMap::new(),
            unresolved: HashMap::new(),
            pending: Vec::new(),
            await_reply: HashMap::new(),
            netns: HashMap::new(),
            own_netns: procfs::netns("self"),
            errors: 0,
            budget: LOOKUPS_PER_SECOND,
            budget_since: Instant::now(),
            skipped_lookups: 0,
        }
    }

    fn refresh_dump(&mut self, force: bool) {
        let due = self.dumped_at.is_none_or(|t| t.elapsed() >= DUMP_EVERY);
        // A miss may re-read sooner, but never more than ten times a second:
        // a dump walks every TCP socket of the host.
        let soon = force
            && self
                .dumped_at
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !(due || soon) {
            return;
        }
        match sock_diag::dump_tcp() {
            Ok(d) => self.dump = Dump::new(d),
            Err(_) => self.errors += 1,
        }
        self.dumped_at = Some(Instant::now());
    }

    fn find(&self, local: SocketAddr, remote: SocketAddr) -> Option<&TcpSocket> {
        self.dump.find(local, remote)
    }

    /// Metadata to add after an event: for new connections, what sock_diag
    /// and /proc say; closed connections and exited processes are forgotten.
    pub fn on_event(&mut self, ev: &Event<'_>) -> Vec<MetaUpdate> {
        match ev {
            Event::Conn(c) => self.on_conn(c),
            Event::Close(c) => {
                self.forget(c.common.key);
                Vec::new()
            }
            Event::ProcExit(p) => {
                self.netns.remove(&p.key.tgid);
                let keys: Vec<ConnKey> = self
                    .addrs
                    .keys()
                    .filter(|k| k.tgid == p.key.tgid)
                    .copied()
                    .collect();
                for k in keys {
                    self.forget(k);
                }
                Vec::new()
            }
            Event::GoSpan(_) | Event::GoGoroutine(_) | Event::GoHeaders(_) | Event::Exec(_) => {
                Vec::new()
            }
            Event::Data(d) => {
                let key = d.common.key;
                if let Some(c) = self.unresolved.remove(&key) {
                    // First bytes of a connection: now it is worth a lookup
                    // (connections the kernel's protocol check rejects never
                    // get here).
                    let out = self.resolve(&c);
                    if self.pending.iter().any(|(p, _)| p.common.key == key) {
                        // No process holds the other end yet: a client
                        // sends its request before the server has called
                        // accept(). The answer comes after it did: look
                        // again at the first bytes the other way, before
                        // they are decoded, so the exchange they complete
                        // names its peer (a tick may be too late for a
                        // short connection).
                        self.await_reply.insert(key, d.direction);
                    }
                    out
                } else if !self.await_reply.is_empty()
                    && self
                        .await_reply
                        .get(&key)
                        .is_some_and(|&dir| dir != d.direction)
                {
                    self.await_reply.remove(&key);
                    self.retry_one(key)
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// No more of this connection's bytes will come (it is muted): nothing
    /// to resolve for it. Its addresses stay known, for pairing.
    pub fn muted(&mut self, key: ConnKey) {
        self.unresolved.remove(&key);
        self.pending.retain(|(c, _)| c.common.key != key);
        self.await_reply.remove(&key);
    }

    fn forget(&mut self, key: ConnKey) {
        if let Some(pair) = self.addrs.remove(&key)
            && self.captured.get(&pair) == Some(&key)
        {
            self.captured.remove(&pair);
        }
        self.pending.retain(|(c, _)| c.common.key != key);
        self.unresolved.remove(&key);
        self.await_reply.remove(&key);
    }

    /// Metadata for a connection just announced by the kernel.
    fn on_conn(&mut self, c: &Conn) -> Vec<MetaUpdate> {
        let (Some(local), Some(remote)) =
            (c.local.map(canonical_addr), c.remote.map(canonical_addr))
        else {
            return Vec::new();
        };
        self.captured.insert((local, remote), c.common.key);
        self.addrs.insert(c.common.key, (local, remote));
        self.unresolved.insert(c.common.key, c.clone());
        // The namespace tells two loopback connections with the same
        // addresses in different containers apart (see `pipeline::may_pair`).
        match self.netns_of(c.common.key.tgid) {
            Some(ns) => vec![MetaUpdate {
                pid: c.common.key.tgid,
                fd: c.common.key.fd,
                generation: c.common.key.generation,
                netns: Some(ns),
                ..MetaUpdate::default()
            }],
            None => Vec::new(),
        }
    }

    fn netns_of(&mut self, pid: u32) -> Option<u64> {
        *self
            .netns
            .entry(pid)
            .or_insert_with(|| procfs::netns(&pid.to_string()))
    }

    /// The process is in another network namespace than sniff: our
    /// sock_diag answers and our listening sockets say nothing about it.
    fn elsewhere(&mut self, pid: u32) -> bool {
        let own = self.own_netns;
        own.is_some() && self.netns_of(pid).is_some_and(|ns| Some(ns) != own)
    }

    /// What sock_diag and /proc say about a connection that carries bytes.
    pub fn resolve(&mut self, c: &Conn) -> Vec<MetaUpdate> {
        let (Some(local), Some(remote)) =
            (c.local.map(canonical_addr), c.remote.map(canonical_addr))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut update = MetaUpdate {
            pid: c.common.key.tgid,
            fd: c.common.key.fd,
            generation: c.common.key.generation,
            ..MetaUpdate::default()
        };
        // sock_diag and the listening sockets are those of sniff's own
        // network namespace: they tell nothing about a process elsewhere.
        let elsewhere = self.elsewhere(c.common.key.tgid);
        if c.role == Role::Unknown && c.sock_type == 1 && !elsewhere {
            // Opened before we started: ask the kernel's socket table, by
            // the socket's inode (exact), or by its addresses.
            let inode = procfs::socket_inode(c.common.key.tgid, c.common.key.fd);
            // (A closed socket lingers as a TIME_WAIT entry with inode 0:
            // that is not ours.)
            let lookup = |b: &Backfill| match inode {
                Some(i) => b.dump.by_inode(i).cloned(),
                None => b.find(local, remote).filter(|s| s.inode != 0).cloned(),
            };
            if lookup(self).is_none() {
                self.refresh_dump(true);
            }
            // The socket may be gone already (a short connection, closed
            // before we read its events): then the state is the one the
            // kernel reported when we first saw it, and the role comes from
            // the listening sockets, which outlive their connections.
            let found = lookup(self);
            update.tcp_state = Some(found.as_ref().map_or(c.tcp_state, |s| s.state));
            if !self.dump.sockets.is_empty() {
                let listening = self.dump.listeners.iter().any(|l| {
                    l.local.port() == local.port()
                        && (l.local.ip().is_unspecified() || same_ip(l.local.ip(), local.ip()))
                });
                update.role = Some(if listening { "server" } else { "client" }.to_string());
            }
        }
        if self.is_local(remote.ip())
            && !(elsewhere && remote.ip().is_loopback())
            && !self.captured.contains_key(&(remote, local))
        {
            // The other end is on this host but not captured (yet: a
            // client sends before the server has accepted). Look it up
            // when the reply comes, or at the next retry.
            self.pending.push((c.clone(), Instant::now()));
        }
        if update.role.is_some() || update.peer.is_some() {
            out.push(update);
        }
        out
    }

    /// Looks up the peer of one pending connection again.
    fn retry_one(&mut self, key: ConnKey) -> Vec<MetaUpdate> {
        let Some(i) = self.pending.iter().position(|(c, _)| c.common.key == key) else {
            return Vec::new();
        };
        let (Some(local), Some(remote)) = (
            self.pending[i].0.local.map(canonical_addr),
            self.pending[i].0.remote.map(canonical_addr),
        ) else {
            return Vec::new();
        };
        if self.captured.contains_key(&(remote, local)) {
            // Its peer was announced meanwhile: the pipeline pairs them.
            self.pending.swap_remove(i);
            return Vec::new();
        }
        match self.peer_of(local, remote) {
            Some(peer) => {
                self.pending.swap_remove(i);
                vec![MetaUpdate {
                    pid: key.tgid,
                    fd: key.fd,
                    generation: key.generation,
                    peer: Some(peer),
                    ..MetaUpdate::default()
                }]
            }
            None => Vec::new(),
        }
    }

    /// Retries peers not found yet (the other end may have been accepted a
    /// moment later). Call about once a second.
    pub fn retry(&mut self) -> Vec<MetaUpdate> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let pending = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        for (c, since) in pending {
            let (Some(local), Some(remote)) =
                (c.local.map(canonical_addr), c.remote.map(canonical_addr))
            else {
                continue;
            };
            if self.captured.contains_key(&(remote, local)) {
                continue;
            }
            match self.peer_of(local, remote) {
                Some(peer) => out.push(MetaUpdate {
                    pid: c.common.key.tgid,
                    fd: c.common.key.fd,
                    generation: c.common.key.generation,
                    peer: Some(peer),
                    ..MetaUpdate::default()
                }),
                None if since.elapsed() < RETRY_FOR => self.pending.push((c, since)),
                None => {}
            }
        }
        out
    }

    fn peer_of(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Peer> {
        // Each lookup costs a netlink query and maybe a walk of /proc: at
        // most LOOKUPS_PER_SECOND of them, so a burst of new connections
        // can never slow the reading of events (their peers stay unnamed).
        let now = Instant::now();
        if now.duration_since(self.budget_since) >= Duration::from_secs(1) {
            self.budget_since = now;
            self.budget = LOOKUPS_PER_SECOND;
        }
        if self.budget == 0 {
            self.skipped_lookups += 1;
            return None;
        }
        self.budget -= 1;
        let inode = match self.find(remote, local).filter(|s| s.inode != 0) {
            Some(s) => s.inode as u64,
            // Newer than the last dump: ask for that one socket.
            None => match sock_diag::find_tcp(remote, local) {
                Ok(s) => s?.inode as u64,
                Err(_) => {
                    self.errors += 1;
                    return None;
                }
            },
        };
        if inode == 0 {
            return None;
        }
        if !self.owners.contains_key(&inode) {
            // A socket made since the last walk of /proc (the other end of
            // a new connection). Look where it is likely and cheap first:
            // in the processes listening on its port (a server that
            // accepted it) and in processes started since the last walk (a
            // new client); walk everything at most once per OWNERS_EVERY.
            let found = self.owners_at.is_some() && {
                let port = remote.port();
                let mut likely: Vec<u32> = self
                    .dump
                    .listeners
                    .iter()
                    .filter(|s| s.local.port() == port)
                    .filter_map(|s| self.owners.get(&(s.inode as u64)).map(|o| o.0))
                    .collect();
                likely.extend(
                    procfs::pids()
                        .into_iter()
                        .filter(|p| !self.walked.contains(p)),
                );
                match procfs::socket_owner_among(likely, inode) {
                    Some(owner) => {
                        self.owners.insert(inode, owner);
                        true
                    }
                    None => false,
                }
            };
            if !found && self.owners_at.is_none_or(|t| t.elapsed() >= OWNERS_EVERY) {
                self.walked = procfs::pids().into_iter().collect();
                self.owners = procfs::socket_owners();
                self.owners_at = Some(Instant::now());
            }
        }
        self.owners.get(&inode).map(|(pid, comm)| Peer {
            pid: *pid,
            comm: comm.clone(),
        })
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.local_ips.contains(&canonical(ip)) || v4_mapped_loopback(ip)
    }
}

/// One read of the host's TCP socket table, indexed: lookups stay O(1) on
/// hosts with tens of thousands of sockets.
#[derive(Default)]
struct Dump {
    sockets: Vec<TcpSocket>,
    /// (local, remote), v4-mapped addresses as IPv4 -> index. Live sockets
    /// win over TIME_WAIT leftovers (inode 0) of the same pair.
    by_pair: HashMap<(SocketAddr, SocketAddr), usize>,
    by_inode: HashMap<u32, usize>,
    listeners: Vec<TcpSocket>,
}

impl Dump {
    fn new(sockets: Vec<TcpSocket>) -> Dump {
        let mut by_pair: HashMap<(SocketAddr, SocketAddr), usize> =
            HashMap::with_capacity(sockets.len());
        let mut by_inode = HashMap::with_capacity(sockets.len());
        let mut listeners = Vec::new();
        for (i, s) in sockets.iter().enumerate() {
            if s.state == TCP_LISTEN {
                listeners.push(s.clone());
                continue;
            }
            let key = (canonical_addr(s.local), canonical_addr(s.remote));
            match by_pair.get(&key) {
                Some(&j) if sockets[j].inode != 0 => {}
                _ => {
                    by_pair.insert(key, i);
                }
            }
            if s.inode != 0 {
                by_inode.insert(s.inode, i);
            }
        }
        Dump {
            sockets,
            by_pair,
            by_inode,
            listeners,
        }
    }

    fn find(&self, local: SocketAddr, remote: SocketAddr) -> Option<&TcpSocket> {
        let i = *self
            .by_pair
            .get(&(canonical_addr(local), canonical_addr(remote)))?;
        self.sockets.get(i)
    }

    fn by_inode(&self, inode: u64) -> Option<&TcpSocket> {
        let i = *self.by_inode.get(&u32::try_from(inode).ok()?)?;
        self.sockets.get(i)
    }
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn v4_mapped_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

/// Addresses of this host's interfaces.
fn local_ips() -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return out;
    }
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: checked family.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.insert(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: checked family.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.insert(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(addrs) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Common;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn conn(pid: u32, fd: i32, local: SocketAddr, remote: SocketAddr, role: Role) -> Conn {
        Conn {
            common: Common {
                key: ConnKey {
                    tgid: pid,
                    fd,
                    generation: 1,
                },
                tid: pid,
                ts_ns: 0,
                comm: "x".into(),
            },
            family: 2,
            sock_type: 1,
            role,
            tcp_state: 1,
            syscall: None,
            ret: 0,
            local: Some(local),
            remote: Some(remote),
        }
    }

    #[test]
    fn finds_role_state_and_the_process_at_the_other_end() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let me = std::process::id();
        let mut b = Backfill::new();
        // The server end, as if it predated capture: role from the listener,
        // and the peer (the client end, uncaptured) is this very process.
        let c = conn(
            me,
            server.as_raw_fd(),
            server.local_addr().unwrap(),
            server.peer_addr().unwrap(),
            Role::Unknown,
        );
        // At the announcement, only the process's network namespace.
        let own = procfs::netns("self");
        assert!(own.is_some());
        assert_eq!(
            b.on_event(&Event::Conn(c.clone()))
                .iter()
                .map(|u| u.netns)
                .collect::<Vec<_>>(),
            vec![own],
            "nothing but the namespace before bytes"
        );
        let updates = b.resolve(&c);
        assert_eq!(updates.len(), 1);
        let u = &updates[0];
        assert_eq!(u.role.as_deref(), Some("server"));
        assert_eq!(
            u.tcp_state.map(sock_diag::tcp_state_name),
            Some("ESTABLISHED")
        );
        // The peer is looked up later (its reply, or the next retry), not
        // on the first bytes.
        assert_eq!(u.peer, None);
        let later = b.retry();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].peer.as_ref().map(|p| p.pid), Some(me));
        // The client end: its peer (the server end) is captured now, so no
        // lookup is needed and none is reported.
        let c2 = conn(
            me,
            client.as_raw_fd(),
            client.local_addr().unwrap(),
            client.peer_addr().unwrap(),
            Role::Client,
        );
        b.on_event(&Event::Conn(c2.clone()));
        assert!(b.resolve(&c2).is_empty());
    }

    fn data(c: &Conn, direction: Direction) -> Event<'static> {
        Event::Data(crate::events::Data {
            common: c.common.clone(),
            enter_ns: 0,
            syscall: None,
            direction,
            pos: 0,
            syscall_len: 1,
            chunk_offset: 0,
            last: true,
            truncated: false,
            read_failed: false,
            payload: b"x",
        })
    }

    #[test]
    fn a_peer_not_accepted_yet_is_found_at_the_reply() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let me = std::process::id();
        let c = conn(
            me,
            client.as_raw_fd(),
            client.local_addr().unwrap(),
            client.peer_addr().unwrap(),
            Role::Client,
        );
        let mut b = Backfill::new();
        let at_conn = b.on_event(&Event::Conn(c.clone()));
        assert_eq!(at_conn.len(), 1);
        assert_eq!(at_conn[0].netns, procfs::netns("self"));
        assert!(at_conn[0].peer.is_none() && at_conn[0].role.is_none());
        // The request goes out before the server accepts: nobody holds
        // the other end yet.
        assert!(b.on_event(&data(&c, Direction::Egress)).is_empty());
        // More of the request: nothing new to look up.
        assert!(b.on_event(&data(&c, Direction::Egress)).is_empty());
        let (_server, _) = listener.accept().unwrap();
        // The answer: the server accepted first, and is found now.
        let updates = b.on_event(&data(&c, Direction::Ingress));
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(updates[0].peer.as_ref().map(|p| p.pid), Some(me));
        assert!(b.pending.is_empty() && b.await_reply.is_empty());
    }

    #[test]
    fn mapped_addresses_compare_equal() {
        let a: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(canonical_addr(a), b);
        assert!(v4_mapped_loopback(a.ip()));
    }
}
