//! Kernel exchanges and Go uprobe calls side by side: the same HTTP
//! request seen from the syscalls (bytes on the socket) and from inside the
//! Go process (net/http's own structures).
//!
//! A kernel exchange and a Go call are the same request when they are in
//! the same process, on the same side (a server exchange is a
//! `ServeHTTP`, a client one a `roundTrip`), with the same method and path
//! (the kernel's request target without its query, percent-decoded, as Go's
//! `URL.Path` is), and start within [`WINDOW_NS`] of each other; among
//! several, the nearest in time. For gRPC the HTTP/2 stream id must match
//! too, and is enough when the kernel could not decode `:path` (HTTP/2
//! joined mid-way).
//!
//! - [`Enricher`]: for `--source both`, each kernel exchange of a Go
//!   process gets the Go view (goroutine, and for a client call the
//!   handler it was made for).
//! - [`compare`]: for `sniff compare`, every exchange and every call of a
//!   run, matched, with what only one side saw and the fields that differ.

use std::collections::{HashMap, VecDeque};

use probe_common::GO_PATH_LEN;
use protocols::record::{Exchange, Flags, Side};
use serde::Serialize;

use super::{
    grpc::{GrpcCall, GrpcTracker},
    spans::{Finished, Tracker},
};
use crate::{events::Event, render::ConnMeta};

/// Largest start-time difference between a kernel exchange and its Go
/// call: the syscall that reads a request and the handler's entry (or a
/// client's entry and its write) are microseconds apart; a second allows
/// for a loaded machine.
pub const WINDOW_NS: u64 = 1_000_000_000;
/// Go calls kept for joining, per process and side.
const RECENT_MAX: usize = 4096;

/// One Go call, open or finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoCall {
    pub tgid: u32,
    pub side: Side,
    pub goid: u64,
    pub method: String,
    pub host: String,
    pub path: String,
    pub status: Option<u16>,
    pub error: bool,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Client calls: the path of the request it was made for (`None`:
    /// unlinked).
    pub caller_func: Option<String>,
    /// gRPC (grpc-go probes): the HTTP/2 stream, `grpc-status`, and the
    /// decoded request and response header lists.
    pub grpc: Option<GrpcPart>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcPart {
    pub stream_id: u32,
    pub status: Option<u32>,
    pub request: Vec<(String, String)>,
    pub response: Vec<(String, String)>,
}

impl From<GrpcCall> for GoCall {
    fn from(g: GrpcCall) -> GoCall {
        GoCall {
            tgid: g.tgid,
            side: g.side,
            goid: g.goid,
            method: "POST".into(),
            host: g.authority,
            path: g.path,
            status: g.status,
            error: false,
            start_ns: g.start_ns,
            end_ns: Some(g.end_ns),
            caller_func: None,
            grpc: Some(GrpcPart {
                stream_id: g.stream_id,
                status: g.grpc_status,
                request: g.request,
                response: g.response,
            }),
        }
    }
}

impl GoCall {
    fn from_finished(f: Finished) -> GoCall {
        match f {
            Finished::Server(s) => GoCall {
                tgid: s.tgid,
                side: Side::Server,
                goid: s.goid,
                method: s.method,
                host: s.host,
                path: s.path,
                status: s.status,
                error: false,
                start_ns: s.start_ns,
                end_ns: Some(s.end_ns),
                caller_func: None,
                grpc: None,
            },
            Finished::Client(c) => GoCall {
                tgid: c.tgid,
                side: Side::Client,
                goid: c.goid,
                method: c.method,
                host: c.host,
                path: c.path,
                status: c.status,
                error: c.error,
                start_ns: c.start_ns,
                end_ns: Some(c.end_ns),
                caller_func: c.caller.map(|k| k.path),
                grpc: None,
            },
        }
    }
}

/// The Go view added to an exchange (JSON field `go`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoView {
    /// `net/http.serverHandler.ServeHTTP` or `net/http.(*Transport).roundTrip`;
    /// for gRPC, the grpc-go function that saw the request headers.
    pub function: &'static str,
    pub goroutine: u64,
    /// For a client call: the path of the request it was made for, or
    /// `unlinked`; for a server request: its own path.
    pub caller_func: String,
    /// Status net/http reported (null: not known, or not finished yet).
    pub status: Option<u16>,
    /// gRPC: `grpc-status` and the header lists as grpc-go decoded them
    /// (complete even where the kernel view could not decode HPACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_headers: Option<Vec<(String, String)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_headers: Option<Vec<(String, String)>>,
}

/// What is compared of a kernel exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelView {
    pub tgid: u32,
    pub side: Side,
    pub method: String,
    /// Request target as sent.
    pub target: String,
    pub authority: Option<String>,
    pub status: Option<u16>,
    pub start_ns: u64,
    pub proto: &'static str,
    pub stream_id: Option<u32>,
    pub grpc_status: Option<u32>,
}

impl KernelView {
    pub fn of(ex: &Exchange, meta: &ConnMeta) -> KernelView {
        KernelView {
            tgid: meta.key.tgid,
            side: ex.side,
            method: ex.method.clone(),
            target: ex.path.clone(),
            authority: ex.authority.clone(),
            status: ex.status,
            start_ns: ex.request.first_ns,
            proto: ex.proto.as_str(),
            stream_id: ex.stream_id,
            grpc_status: ex.grpc.as_ref().and_then(|g| g.status),
        }
    }
}

/// A request target as Go's `URL.Path` holds it: without the query,
/// percent-decoded.
pub fn url_path(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn same_request(k: &KernelView, c: &GoCall) -> bool {
    if k.tgid != c.tgid || k.side != c.side || k.method != c.method {
        return false;
    }
    if let (Some(a), Some(g)) = (k.stream_id, &c.grpc) {
        if a != g.stream_id {
            return false;
        }
        // Joined mid-way, the kernel may not have decoded `:path` (an HPACK
        // entry from before capture): the stream id tells.
        if k.target.is_empty() {
            return true;
        }
    }
    let path = url_path(&k.target);
    // The kernel copies the first GO_PATH_LEN bytes of a longer path.
    path == c.path || (c.path.len() >= GO_PATH_LEN && path.starts_with(&c.path))
}

/// Index of the call in `calls` nearest in time to `k` among those that are
/// the same request.
fn nearest<'a>(k: &KernelView, calls: impl Iterator<Item = (usize, &'a GoCall)>) -> Option<usize> {
    calls
        .filter(|(_, c)| same_request(k, c) && k.start_ns.abs_diff(c.start_ns) <= WINDOW_NS)
        .min_by_key(|(_, c)| k.start_ns.abs_diff(c.start_ns))
        .map(|(i, _)| i)
}

/// Joins kernel exchanges with the Go calls of the same requests as they
/// come (`--source both`).
#[derive(Default)]
pub struct Enricher {
    tracker: Tracker,
    grpc: GrpcTracker,
    /// Calls in progress, by (process, side, goroutine).
    open: HashMap<(u32, Side, u64), (GoCall, bool)>,
    /// Finished calls not joined yet, per (process, side), oldest first.
    recent: HashMap<(u32, Side), VecDeque<GoCall>>,
    /// Every finished call (kept only when `record` is set).
    pub finished: Vec<GoCall>,
    /// Every kernel exchange looked at (kept only when `record` is set).
    pub kernel: Vec<KernelView>,
    /// Keep everything for [`compare`] instead of joining as it comes.
    pub record: bool,
}

fn side_of(f: &Finished) -> (u32, Side, u64) {
    match f {
        Finished::Server(s) => (s.tgid, Side::Server, s.goid),
        Finished::Client(c) => (c.tgid, Side::Client, c.goid),
    }
}

impl Enricher {
    pub fn new(record: bool) -> Enricher {
        Enricher {
            record,
            ..Enricher::default()
        }
    }

    /// A Go uprobe event.
    pub fn on_event(&mut self, ev: &Event<'_>) {
        match ev {
            Event::GoGoroutine(g) => self.tracker.on_goroutine(g),
            Event::GoSpan(s) => {
                let finished = self.tracker.on_span(s);
                if s.entry {
                    let side = match s.probe {
                        crate::events::GoProbe::HttpServer => Side::Server,
                        crate::events::GoProbe::HttpClient | crate::events::GoProbe::GrpcStream => {
                            Side::Client
                        }
                    };
                    let tgid = s.common.key.tgid;
                    let call = GoCall {
                        tgid,
                        side,
                        goid: s.goid,
                        method: s.method.lossy(),
                        host: s.host.lossy(),
                        path: s.path.lossy(),
                        status: None,
                        error: false,
                        start_ns: s.start_ns,
                        end_ns: None,
                        caller_func: self.tracker.open_client_caller(tgid, s.goid),
                        grpc: None,
                    };
                    self.open.insert((tgid, side, s.goid), (call, false));
                }
                let Some(f) = finished else { return };
                let key = side_of(&f);
                let joined = self.open.remove(&key).is_some_and(|(_, joined)| joined);
                let call = GoCall::from_finished(f);
                if self.record {
                    self.finished.push(call);
                } else if !joined {
                    let q = self.recent.entry((key.0, key.1)).or_default();
                    if q.len() >= RECENT_MAX {
                        q.pop_front();
                    }
                    q.push_back(call);
                }
            }
            Event::GoHeaders(h) => {
                let Some(call) = self.grpc.on_headers(h) else {
                    return;
                };
                let call = GoCall::from(call);
                if self.record {
                    self.finished.push(call);
                } else {
                    let q = self.recent.entry((call.tgid, call.side)).or_default();
                    if q.len() >= RECENT_MAX {
                        q.pop_front();
                    }
                    q.push_back(call);
                }
            }
            Event::ProcExit(p) => {
                let tgid = p.key.tgid;
                self.tracker.forget(tgid);
                self.grpc.forget(tgid);
                self.open.retain(|k, _| k.0 != tgid);
                self.recent.retain(|k, _| k.0 != tgid);
            }
            _ => {}
        }
    }

    /// The Go view of a kernel exchange, if a Go call is the same request.
    pub fn join(&mut self, ex: &Exchange, meta: &ConnMeta) -> Option<GoView> {
        let k = KernelView::of(ex, meta);
        if self.record {
            if !ex.flags.contains(Flags::INCOMPLETE) {
                self.kernel.push(k);
            }
            return None;
        }
        let finished = self.recent.get_mut(&(k.tgid, k.side)).and_then(|q| {
            let i = nearest(&k, q.iter().enumerate())?;
            q.remove(i)
        });
        let open_grpc = || {
            let g = self.grpc.open_call(k.tgid, k.side, k.stream_id?)?;
            let c = GoCall::from(g.clone());
            same_request(&k, &c).then_some(c)
        };
        let call = match finished.or_else(open_grpc) {
            Some(c) => c,
            None => {
                let mut best: Option<(&mut (GoCall, bool), u64)> = None;
                for v in self.open.values_mut() {
                    if v.1 || !same_request(&k, &v.0) {
                        continue;
                    }
                    let d = k.start_ns.abs_diff(v.0.start_ns);
                    if d <= WINDOW_NS && best.as_ref().is_none_or(|b| d < b.1) {
                        best = Some((v, d));
                    }
                }
                let (v, _) = best?;
                v.1 = true;
                v.0.clone()
            }
        };
        Some(GoView {
            function: match (call.side, call.grpc.is_some()) {
                (Side::Server, false) => "net/http.serverHandler.ServeHTTP",
                (Side::Client, false) => "net/http.(*Transport).roundTrip",
                (Side::Server, true) => {
                    "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders"
                }
                (Side::Client, true) => {
                    "google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader"
                }
            },
            goroutine: call.goid,
            caller_func: match call.side {
                Side::Server => call.path.clone(),
                Side::Client => call
                    .caller_func
                    .clone()
                    .unwrap_or_else(|| super::topology::UNLINKED.to_string()),
            },
            status: call.status,
            grpc_status: call.grpc.as_ref().and_then(|g| g.status),
            req_headers: call.grpc.as_ref().map(|g| g.request.clone()),
            resp_headers: call.grpc.map(|g| g.response),
        })
    }
}

/// A field the two views disagree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub kernel: KernelView,
    pub call: GoCall,
    pub field: &'static str,
    pub syscalls: String,
    pub uprobes: String,
}

/// Result of [`compare`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub matched: u64,
    pub only_syscalls: Vec<KernelView>,
    pub only_uprobes: Vec<GoCall>,
    pub mismatches: Vec<Mismatch>,
}

impl Report {
    pub fn agrees(&self) -> bool {
        self.only_syscalls.is_empty() && self.only_uprobes.is_empty() && self.mismatches.is_empty()
    }
}

/// Matches every kernel exchange with a Go call (see the module doc) and
/// reports the rest. Fields compared: status, and host (`Host` /
/// `:authority` against `Request.Host` or `URL.Host`).
pub fn compare(kernel: &[KernelView], calls: &[GoCall]) -> Report {
    let mut kernel: Vec<&KernelView> = kernel.iter().collect();
    kernel.sort_by_key(|k| k.start_ns);
    let mut used = vec![false; calls.len()];
    let mut report = Report::default();
    for k in kernel {
        let free = calls.iter().enumerate().filter(|(i, _)| !used[*i]);
        let Some(i) = nearest(k, free) else {
            report.only_syscalls.push(k.clone());
            continue;
        };
        used[i] = true;
        report.matched += 1;
        let c = &calls[i];
        let mut differ = |field, a: String, b: String| {
            report.mismatches.push(Mismatch {
                kernel: k.clone(),
                call: c.clone(),
                field,
                syscalls: a,
                uprobes: b,
            })
        };
        if k.status != c.status {
            let show = |s: Option<u16>| s.map_or_else(|| "none".to_string(), |s| s.to_string());
            differ("status", show(k.status), show(c.status));
        }
        if let Some(a) = &k.authority
            && *a != c.host
        {
            differ("host", a.clone(), c.host.clone());
        }
        if let Some(g) = &c.grpc
            && k.grpc_status != g.status
        {
            let show = |s: Option<u32>| s.map_or_else(|| "none".to_string(), |s| s.to_string());
            differ("grpc-status", show(k.grpc_status), show(g.status));
        }
    }
    report.only_uprobes = calls
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(c, _)| c.clone())
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(side: Side, target: &str, status: u16, start: u64) -> KernelView {
        KernelView {
            tgid: 1,
            side,
            method: "GET".into(),
            target: target.into(),
            authority: Some("h:1".into()),
            status: Some(status),
            start_ns: start,
            proto: "http1",
            stream_id: None,
            grpc_status: None,
        }
    }

    fn c(side: Side, path: &str, status: u16, start: u64) -> GoCall {
        GoCall {
            tgid: 1,
            side,
            goid: 3,
            method: "GET".into(),
            host: "h:1".into(),
            path: path.into(),
            status: Some(status),
            error: false,
            start_ns: start,
            end_ns: Some(start + 10),
            caller_func: None,
            grpc: None,
        }
    }

    #[test]
    fn grpc_matches_by_stream_id_and_compares_grpc_status() {
        let grpc = |stream_id, status| GrpcPart {
            stream_id,
            status: Some(status),
            request: Vec::new(),
            response: Vec::new(),
        };
        let mut kernel = [
            k(Side::Client, "/a.B/C", 200, 100),
            k(Side::Client, "", 200, 100),
            k(Side::Client, "/a.B/C", 200, 100),
        ];
        for (i, kv) in kernel.iter_mut().enumerate() {
            kv.method = "POST".into();
            kv.stream_id = Some(1 + 2 * i as u32);
            kv.grpc_status = Some(0);
        }
        let mut calls = [
            c(Side::Client, "/a.B/C", 200, 100),
            c(Side::Client, "/a.B/C", 200, 100),
            c(Side::Client, "/a.B/C", 200, 100),
        ];
        // Streams 5, 3 and 1; stream 5 ended with grpc-status 14.
        for (i, cv) in calls.iter_mut().enumerate() {
            cv.method = "POST".into();
            cv.grpc = Some(grpc(5 - 2 * i as u32, if i == 0 { 14 } else { 0 }));
        }
        let r = compare(&kernel, &calls);
        // Stream 3's :path was not decoded by the kernel: its stream id
        // matches it all the same.
        assert_eq!(
            (r.matched, r.only_syscalls.len(), r.only_uprobes.len()),
            (3, 0, 0)
        );
        assert_eq!(r.mismatches.len(), 1);
        let m = &r.mismatches[0];
        assert_eq!(m.kernel.stream_id, Some(5));
        assert_eq!(
            (m.field, m.syscalls.as_str(), m.uprobes.as_str()),
            ("grpc-status", "0", "14")
        );
    }

    #[test]
    fn targets_become_go_paths() {
        assert_eq!(url_path("/a/b?x=1#f"), "/a/b");
        assert_eq!(url_path("/a%20b%2Fc"), "/a b/c");
        assert_eq!(url_path("/bad%zz%2"), "/bad%zz%2");
        assert_eq!(url_path("*"), "*");
    }

    #[test]
    fn matching_pairs_nearest_in_time_and_reports_the_rest() {
        let kernel = [
            k(Side::Server, "/a?q=1", 200, 1_000),
            k(Side::Server, "/a", 200, 5_000),
            k(Side::Client, "/b", 200, 2_000),
            k(Side::Server, "/only-kernel", 200, 3_000),
            k(Side::Server, "/late", 200, 10_000),
        ];
        let calls = [
            c(Side::Server, "/a", 200, 5_100),
            c(Side::Server, "/a", 200, 1_100),
            c(Side::Client, "/b", 503, 1_900),
            c(Side::Client, "/only-go", 200, 1_900),
            // Same request, but too far apart in time.
            c(Side::Server, "/late", 200, 10_000 + 2 * WINDOW_NS),
        ];
        let r = compare(&kernel, &calls);
        assert_eq!(r.matched, 3);
        assert_eq!(
            r.only_syscalls
                .iter()
                .map(|k| k.target.as_str())
                .collect::<Vec<_>>(),
            ["/only-kernel", "/late"]
        );
        assert_eq!(
            r.only_uprobes
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>(),
            ["/only-go", "/late"]
        );
        assert_eq!(r.mismatches.len(), 1);
        let m = &r.mismatches[0];
        assert_eq!(
            (m.field, m.syscalls.as_str(), m.uprobes.as_str()),
            ("status", "200", "503")
        );
        assert!(!r.agrees());
        // A server exchange never matches a client call.
        let r = compare(
            &[k(Side::Server, "/b", 200, 0)],
            &[c(Side::Client, "/b", 200, 0)],
        );
        assert_eq!(
            (r.matched, r.only_syscalls.len(), r.only_uprobes.len()),
            (0, 1, 1)
        );
        assert!(compare(&[], &[]).agrees());
    }
}
