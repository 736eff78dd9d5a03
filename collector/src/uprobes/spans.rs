//! Go uprobe events turned into server and client calls, each client call
//! linked to the server request it was made for, or to none.
//!
//! ## Linking
//!
//! net/http serves one request at a time per goroutine, and a handler's
//! outgoing calls run in that goroutine or in goroutines it starts. A
//! client call made by goroutine G is linked to:
//! - the server request G is serving, if any;
//! - else the request G *inherited*: the one its creator was serving (or
//!   had itself inherited) when it created G, if that request is still in
//!   progress.
//!
//! Inheritance is fixed at creation (`runtime.newproc1`), so a long-lived
//! worker that takes work from a channel inherits nothing (it was started
//! by `main`, or by a request that has since finished) and its calls come
//! out unlinked: a hand-off is never linked to the wrong request. The
//! exception that cannot be told apart: a worker started during request A,
//! while A is still running, doing work for request B; it is linked to A.
//!
//! Ordering: the kernel writes all events to one ring buffer at the time
//! they happen, and a handler's entry precedes everything its goroutine and
//! children do, so events arrive in causal order.

use std::collections::HashMap;

use crate::events::{GoGoroutine, GoProbe, GoSpan};

/// A finished call to `net/http.serverHandler.ServeHTTP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCall {
    pub tgid: u32,
    pub goid: u64,
    pub method: String,
    /// The `Host` header.
    pub host: String,
    pub path: String,
    /// `None` when the ResponseWriter is not net/http's HTTP/1 one.
    pub status: Option<u16>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Client calls linked to it.
    pub calls: u32,
}

/// The server request a client call was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub method: String,
    pub path: String,
    /// The goroutine that served it.
    pub goid: u64,
}

/// A finished call to `net/http.(*Transport).roundTrip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCall {
    pub tgid: u32,
    pub goid: u64,
    pub method: String,
    /// `URL.Host`: where it connects.
    pub host: String,
    pub path: String,
    pub status: Option<u16>,
    /// roundTrip returned an error (no response).
    pub error: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `None`: unlinked.
    pub caller: Option<Caller>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    Server(ServerCall),
    Client(ClientCall),
}

/// Counters of what could not be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanStats {
    /// Returns whose entry was never seen (attached mid-call).
    pub returns_without_entry: u64,
    /// Entries replaced by a newer entry on the same goroutine before their
    /// return was seen (a lost return event).
    pub entries_without_return: u64,
}

type SpanId = u64;

struct OpenServer {
    id: SpanId,
    method: String,
    host: String,
    path: String,
    start_ns: u64,
    calls: u32,
}

struct OpenClient {
    method: String,
    host: String,
    path: String,
    start_ns: u64,
    caller: Option<Caller>,
}

#[derive(Default)]
struct Process {
    /// Server requests in progress, by the goroutine serving them.
    servers: HashMap<u64, OpenServer>,
    /// Which goroutine serves each request in progress.
    server_of: HashMap<SpanId, u64>,
    /// Goroutines that inherited a request in progress.
    inherited: HashMap<u64, SpanId>,
    /// Reverse of `inherited`, to drop inheritances when a request ends.
    heirs: HashMap<SpanId, Vec<u64>>,
    clients: HashMap<u64, OpenClient>,
    /// gRPC streams opened (NewStream) and the request each was made for.
    grpc_callers: HashMap<u32, Option<Caller>>,
}

/// Per-process goroutine state.
#[derive(Default)]
pub struct Tracker {
    procs: HashMap<u32, Process>,
    next_id: SpanId,
    pub stats: SpanStats,
}

fn status(v: i64, known: bool) -> Option<u16> {
    if !known {
        return None;
    }
    match v {
        // Nothing written: net/http sends 200 when the handler returns.
        0 => Some(200),
        100..=999 => Some(v as u16),
        _ => None,
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Goroutine `parent` created `child`: the child inherits the request
    /// its parent is serving or has inherited.
    pub fn on_goroutine(&mut self, g: &GoGoroutine) {
        let p = self.procs.entry(g.common.key.tgid).or_default();
        let span = p
            .servers
            .get(&g.parent)
            .map(|s| s.id)
            .or_else(|| p.inherited.get(&g.parent).copied());
        // A goroutine id is never reused; an old entry would be a bug.
        if let Some(old) = p.inherited.remove(&g.child)
            && let Some(h) = p.heirs.get_mut(&old)
        {
            h.retain(|&c| c != g.child);
        }
        if let Some(span) = span {
            p.inherited.insert(g.child, span);
            p.heirs.entry(span).or_default().push(g.child);
        }
    }

    /// An entry or return; a return gives the finished call.
    pub fn on_span(&mut self, s: &GoSpan) -> Option<Finished> {
        let tgid = s.common.key.tgid;
        let p = self.procs.entry(tgid).or_default();
        match (s.probe, s.entry) {
            (GoProbe::HttpServer, true) => {
                self.next_id += 1;
                let id = self.next_id;
                let open = OpenServer {
                    id,
                    method: s.method.lossy(),
                    host: s.host.lossy(),
                    path: s.path.lossy(),
                    start_ns: s.start_ns,
                    calls: 0,
                };
                if let Some(old) = p.servers.insert(s.goid, open) {
                    self.stats.entries_without_return += 1;
                    end_request(p, old.id);
                }
                p.server_of.insert(id, s.goid);
                None
            }
            (GoProbe::HttpServer, false) => {
                let Some(open) = p.servers.remove(&s.goid) else {
                    self.stats.returns_without_entry += 1;
                    return None;
                };
                end_request(p, open.id);
                Some(Finished::Server(ServerCall {
                    tgid,
                    goid: s.goid,
                    method: open.method,
                    host: open.host,
                    path: open.path,
                    status: status(s.status, !s.status_unknown && !s.read_failed),
                    start_ns: open.start_ns,
                    end_ns: s.common.ts_ns,
                    calls: open.calls,
                }))
            }
            (GoProbe::GrpcStream, _) => {
                let caller = caller_of(p, s.goid);
                // A stream id the process reuses (another connection)
                // replaces the older entry.
                p.grpc_callers.insert(s.status as u32, caller);
                None
            }
            (GoProbe::HttpClient, true) => {
                let caller = caller_of(p, s.goid);
                let open = OpenClient {
                    method: s.method.lossy(),
                    host: s.host.lossy(),
                    path: s.path.lossy(),
                    start_ns: s.start_ns,
                    caller,
                };
                if p.clients.insert(s.goid, open).is_some() {
                    self.stats.entries_without_return += 1;
                }
                None
            }
            (GoProbe::HttpClient, false) => {
                let Some(open) = p.clients.remove(&s.goid) else {
                    self.stats.returns_without_entry += 1;
                    return None;
                };
                Some(Finished::Client(ClientCall {
                    tgid,
                    goid: s.goid,
                    method: open.method,
                    host: open.host,
                    path: open.path,
                    status: if s.client_error {
                        None
                    } else {
                        status(s.status, !s.read_failed).filter(|_| s.status != 0)
                    },
                    error: s.client_error,
                    start_ns: open.start_ns,
                    end_ns: s.common.ts_ns,
                    caller: open.caller,
                }))
            }
        }
    }

    /// The request the gRPC call on `stream_id` was made for: `None` if
    /// its stream was not seen opening, `Some(None)` if it is unlinked.
    pub fn take_grpc_caller(&mut self, tgid: u32, stream_id: u32) -> Option<Option<Caller>> {
        self.procs.get_mut(&tgid)?.grpc_callers.remove(&stream_id)
    }

    /// The request an open client call of goroutine `goid` was made for.
    pub fn open_client_caller(&self, tgid: u32, goid: u64) -> Option<String> {
        let c = self.procs.get(&tgid)?.clients.get(&goid)?;
        c.caller.as_ref().map(|k| k.path.clone())
    }

    /// A process exited: forget its goroutines.
    pub fn forget(&mut self, tgid: u32) {
        self.procs.remove(&tgid);
    }
}

/// The request goroutine `goid` serves or inherited, if in progress; it
/// gets one more linked call.
fn caller_of(p: &mut Process, goid: u64) -> Option<Caller> {
    let server_goid = if p.servers.contains_key(&goid) {
        goid
    } else {
        let id = p.inherited.get(&goid)?;
        *p.server_of.get(id)?
    };
    let server = p.servers.get_mut(&server_goid)?;
    server.calls += 1;
    Some(Caller {
        method: server.method.clone(),
        path: server.path.clone(),
        goid: server_goid,
    })
}

/// A request ended: goroutines that inherited it inherit nothing now.
fn end_request(p: &mut Process, id: SpanId) {
    p.server_of.remove(&id);
    for child in p.heirs.remove(&id).unwrap_or_default() {
        if p.inherited.get(&child) == Some(&id) {
            p.inherited.remove(&child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Comm, Common, ConnKey, GoStr};

    fn common(ts: u64) -> Common {
        Common {
            key: ConnKey {
                tgid: 7,
                fd: -1,
                generation: 0,
            },
            tid: 7,
            ts_ns: ts,
            comm: Comm::from("demo"),
        }
    }

    fn s(v: &str) -> GoStr {
        GoStr {
            bytes: v.as_bytes().to_vec(),
            len: v.len() as u32,
        }
    }

    fn span(probe: GoProbe, entry: bool, goid: u64, ts: u64, path: &str, status: i64) -> GoSpan {
        GoSpan {
            common: common(ts),
            probe,
            entry,
            goid,
            start_ns: ts,
            target: 1,
            status,
            read_failed: false,
            client_error: false,
            status_unknown: false,
            method: s(if entry { "GET" } else { "" }),
            host: s(if entry { "127.0.0.1:9932" } else { "" }),
            path: s(if entry { path } else { "" }),
        }
    }

    fn spawn(parent: u64, child: u64) -> GoGoroutine {
        GoGoroutine {
            common: common(0),
            parent,
            child,
            target: 1,
        }
    }

    fn client(f: Option<Finished>) -> ClientCall {
        match f {
            Some(Finished::Client(c)) => c,
            other => panic!("not a client call: {other:?}"),
        }
    }

    fn server(f: Option<Finished>) -> ServerCall {
        match f {
            Some(Finished::Server(c)) => c,
            other => panic!("not a server call: {other:?}"),
        }
    }

    use GoProbe::{HttpClient as C, HttpServer as S};

    #[test]
    fn call_in_the_serving_goroutine_is_linked() {
        let mut t = Tracker::new();
        assert_eq!(t.on_span(&span(S, true, 10, 1, "/handle", 0)), None);
        t.on_span(&span(C, true, 10, 2, "/echo", 0));
        let c = client(t.on_span(&span(C, false, 10, 3, "", 200)));
        assert_eq!(c.caller.as_ref().map(|c| c.path.as_str()), Some("/handle"));
        assert_eq!(
            (c.path.as_str(), c.status, c.start_ns, c.end_ns),
            ("/echo", Some(200), 2, 3)
        );
        let sv = server(t.on_span(&span(S, false, 10, 4, "", 0)));
        assert_eq!(
            (sv.path.as_str(), sv.status, sv.calls),
            ("/handle", Some(200), 1)
        );
    }

    #[test]
    fn call_from_a_child_or_grandchild_goroutine_is_linked() {
        let mut t = Tracker::new();
        t.on_span(&span(S, true, 10, 1, "/fanout", 0));
        t.on_goroutine(&spawn(10, 11));
        t.on_goroutine(&spawn(11, 12));
        t.on_span(&span(C, true, 12, 2, "/echo", 0));
        let c = client(t.on_span(&span(C, false, 12, 3, "", 200)));
        assert_eq!(
            c.caller.map(|c| (c.path, c.goid)),
            Some(("/fanout".into(), 10))
        );
    }

    #[test]
    fn worker_started_outside_any_request_is_unlinked() {
        let mut t = Tracker::new();
        t.on_goroutine(&spawn(1, 5)); // main starts the worker
        t.on_span(&span(S, true, 10, 1, "/queue", 0));
        t.on_span(&span(C, true, 5, 2, "/echo", 0));
        let c = client(t.on_span(&span(C, false, 5, 3, "", 200)));
        assert_eq!(c.caller, None);
        assert_eq!(server(t.on_span(&span(S, false, 10, 4, "", 0))).calls, 0);
    }

    #[test]
    fn worker_started_by_a_finished_request_is_unlinked() {
        let mut t = Tracker::new();
        t.on_span(&span(S, true, 10, 1, "/first", 0));
        t.on_goroutine(&spawn(10, 20)); // lazily started pool worker
        t.on_span(&span(S, false, 10, 2, "", 0));
        // The same connection goroutine serves the next request; the
        // worker does that request's work.
        t.on_span(&span(S, true, 10, 3, "/second", 0));
        t.on_span(&span(C, true, 20, 4, "/echo", 0));
        assert_eq!(
            client(t.on_span(&span(C, false, 20, 5, "", 200))).caller,
            None
        );
    }

    #[test]
    fn concurrent_requests_link_to_their_own_goroutines() {
        let mut t = Tracker::new();
        for g in 100..110 {
            t.on_span(&span(S, true, g, 1, &format!("/r{g}"), 0));
        }
        for g in 100..110 {
            t.on_span(&span(C, true, g, 2, "/echo", 0));
        }
        for g in (100..110).rev() {
            let c = client(t.on_span(&span(C, false, g, 3, "", 200)));
            assert_eq!(c.caller.unwrap().path, format!("/r{g}"));
        }
    }

    #[test]
    fn returns_without_entries_and_errors() {
        let mut t = Tracker::new();
        assert_eq!(t.on_span(&span(S, false, 3, 1, "", 0)), None);
        assert_eq!(t.stats.returns_without_entry, 1);
        t.on_span(&span(C, true, 3, 2, "/down", 0));
        let mut ret = span(C, false, 3, 3, "", 0);
        ret.client_error = true;
        let c = client(t.on_span(&ret));
        assert!(c.error);
        assert_eq!((c.status, c.caller), (None, None));
        // An unreadable status stays unknown, never guessed.
        t.on_span(&span(S, true, 4, 4, "/h2", 0));
        let mut ret = span(S, false, 4, 5, "", 0);
        ret.status_unknown = true;
        assert_eq!(server(t.on_span(&ret)).status, None);
    }

    #[test]
    fn grpc_streams_opened_by_a_handler_are_linked_to_it() {
        let mut t = Tracker::new();
        t.on_span(&span(S, true, 10, 1, "/h", 0));
        t.on_goroutine(&spawn(10, 11));
        let mut open = span(GoProbe::GrpcStream, false, 11, 2, "", 5);
        open.path = s("/a.B/C");
        assert_eq!(t.on_span(&open), None);
        open.goid = 99; // not a descendant of any request
        open.status = 7;
        t.on_span(&open);
        let linked = t.take_grpc_caller(7, 5).unwrap().unwrap();
        assert_eq!((linked.path.as_str(), linked.goid), ("/h", 10));
        assert_eq!(t.take_grpc_caller(7, 7), Some(None));
        assert_eq!(t.take_grpc_caller(7, 9), None);
        assert_eq!(server(t.on_span(&span(S, false, 10, 3, "", 0))).calls, 1);
    }

    #[test]
    fn exited_process_is_forgotten() {
        let mut t = Tracker::new();
        t.on_span(&span(S, true, 10, 1, "/x", 0));
        t.forget(7);
        assert_eq!(t.on_span(&span(S, false, 10, 2, "", 0)), None);
    }
}
