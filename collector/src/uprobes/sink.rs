//! Outputs of Go uprobe events alone: the four-tuple table of `sniff
//! topology` ([`TopologySink`]), and each call as it finishes for `--source
//! uprobes` ([`CallSink`]).

use std::io::{self, Write};

use serde_json::json;

use protocols::record::Side;

use super::{
    grpc::{GrpcCall, GrpcTracker},
    spans::{Finished, Tracker},
    topology::{Namer, Topology, UNLINKED},
};
use crate::{
    clock::rfc3339_from_unix_ns,
    events::Event,
    loader::KernelStats,
    render::{grpc_status_name, latency_human},
    session::Sink,
};

pub struct TopologySink<W: Write> {
    tracker: Tracker,
    grpc: GrpcTracker,
    topology: Topology,
    namer: Box<dyn Namer>,
    json: bool,
    out: W,
}

impl<W: Write> TopologySink<W> {
    pub fn new(namer: Box<dyn Namer>, json: bool, out: W) -> Self {
        TopologySink {
            tracker: Tracker::new(),
            grpc: GrpcTracker::new(),
            topology: Topology::new(),
            namer,
            json,
            out,
        }
    }
}

impl<W: Write> Sink for TopologySink<W> {
    fn event(&mut self, _raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        match ev {
            Event::GoSpan(s) => {
                if let Some(f) = self.tracker.on_span(s) {
                    self.topology.add(&f, self.namer.as_mut());
                }
            }
            // gRPC client calls; a server's side is not in the table (its
            // handler's own calls cannot be linked to it yet).
            Event::GoHeaders(h) => {
                if let Some(c) = self.grpc.on_headers(h)
                    && c.side == Side::Client
                {
                    let caller = self
                        .tracker
                        .take_grpc_caller(c.tgid, c.stream_id)
                        .flatten()
                        .map(|k| k.path);
                    self.topology.add_grpc(&c, caller, self.namer.as_mut());
                }
            }
            Event::GoGoroutine(g) => self.tracker.on_goroutine(g),
            Event::ProcExit(p) => {
                self.tracker.forget(p.key.tgid);
                self.grpc.forget(p.key.tgid);
            }
            _ => {}
        }
        Ok(())
    }

    fn stats(&mut self, _stats: &KernelStats, _malformed: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.json {
            self.topology.write_json(&mut self.out)?;
        } else {
            self.topology.write_text(&mut self.out)?;
        }
        self.out.flush()
    }

    fn summary(&self) -> Option<String> {
        let s = self.tracker.stats;
        (s.returns_without_entry + s.entries_without_return > 0).then(|| {
            format!(
                "Go calls cut by the start or end of capture: {} returns without their entry, {} entries without their return",
                s.returns_without_entry, s.entries_without_return
            )
        })
    }
}

/// `sniff --source uprobes`: each Go call as it finishes, from uprobes
/// alone (no socket capture).
pub struct CallSink<W: Write> {
    tracker: Tracker,
    grpc: GrpcTracker,
    json: bool,
    clock_offset_ns: i128,
    out: W,
}

impl<W: Write> CallSink<W> {
    pub fn new(json: bool, clock_offset_ns: i128, out: W) -> Self {
        CallSink {
            tracker: Tracker::new(),
            grpc: GrpcTracker::new(),
            json,
            clock_offset_ns,
            out,
        }
    }

    fn call(&mut self, f: &Finished, comm: &str) -> io::Result<()> {
        let (side, tgid, goid, method, host, path, status, start, end) = match f {
            Finished::Server(s) => (
                "server", s.tgid, s.goid, &s.method, &s.host, &s.path, s.status, s.start_ns,
                s.end_ns,
            ),
            Finished::Client(c) => (
                "client", c.tgid, c.goid, &c.method, &c.host, &c.path, c.status, c.start_ns,
                c.end_ns,
            ),
        };
        let (caller_func, error) = match f {
            Finished::Client(c) => (
                Some(c.caller.as_ref().map_or(UNLINKED, |k| k.path.as_str())),
                c.error,
            ),
            Finished::Server(_) => (None, false),
        };
        let unix_ns = (start as i128 + self.clock_offset_ns).max(0);
        let latency = end.saturating_sub(start);
        if self.json {
            let v = json!({
                "type": "go_call",
                "side": side,
                "time": rfc3339_from_unix_ns(unix_ns),
                "start_ns": unix_ns as u64,
                "latency_ns": latency,
                "pid": tgid,
                "comm": comm,
                "goroutine": goid,
                "method": method,
                "host": host,
                "path": path,
                "status": status,
                "error": error,
                "caller_func": caller_func,
            });
            serde_json::to_writer(&mut self.out, &v)?;
            return self.out.write_all(b"\n");
        }
        let status = match (status, error) {
            (_, true) => "error".to_string(),
            (Some(s), _) => s.to_string(),
            (None, _) => "?".to_string(),
        };
        let time = rfc3339_from_unix_ns(unix_ns);
        let time = time.get(11..26).unwrap_or(&time);
        writeln!(
            self.out,
            "{time} {method} {path} → {status}  {}",
            latency_human(latency)
        )?;
        match caller_func {
            Some(from) => writeln!(
                self.out,
                "  {comm}[{tgid}] → {host}  go client, goroutine {goid}, called from handler {from}"
            ),
            None => writeln!(
                self.out,
                "  → {comm}[{tgid}] (Host {host})  go server, goroutine {goid}"
            ),
        }
    }
}

impl<W: Write> CallSink<W> {
    fn grpc_call(&mut self, c: &GrpcCall, comm: &str) -> io::Result<()> {
        let unix_ns = (c.start_ns as i128 + self.clock_offset_ns).max(0);
        let latency = c.end_ns.saturating_sub(c.start_ns);
        let side = match c.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        if self.json {
            let v = json!({
                "type": "go_grpc_call",
                "side": side,
                "time": rfc3339_from_unix_ns(unix_ns),
                "start_ns": unix_ns as u64,
                "latency_ns": latency,
                "pid": c.tgid,
                "comm": comm,
                "stream_id": c.stream_id,
                "path": c.path,
                "authority": c.authority,
                "status": c.status,
                "grpc_status": c.grpc_status,
                "grpc_message": c.grpc_message,
                "req_headers": c.request,
                "resp_headers": c.response,
            });
            serde_json::to_writer(&mut self.out, &v)?;
            return self.out.write_all(b"\n");
        }
        let time = rfc3339_from_unix_ns(unix_ns);
        let time = time.get(11..26).unwrap_or(&time);
        let status = c.grpc_status.map_or_else(
            || "?".to_string(),
            |s| format!("{} ({s})", grpc_status_name(s)),
        );
        writeln!(
            self.out,
            "{time} gRPC {} → {status}  {}",
            c.path,
            latency_human(latency)
        )?;
        writeln!(
            self.out,
            "  {comm}[{}] go grpc {side}, h2 stream {}, {} request and {} response header fields",
            c.tgid,
            c.stream_id,
            c.request.len(),
            c.response.len()
        )
    }
}

impl<W: Write> Sink for CallSink<W> {
    fn event(&mut self, _raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        match ev {
            Event::GoSpan(s) => {
                if let Some(f) = self.tracker.on_span(s) {
                    self.call(&f, &s.common.comm.as_str())?;
                }
            }
            Event::GoHeaders(h) => {
                if let Some(c) = self.grpc.on_headers(h) {
                    self.grpc_call(&c, &h.common.comm.as_str())?;
                }
            }
            Event::GoGoroutine(g) => self.tracker.on_goroutine(g),
            Event::ProcExit(p) => {
                self.tracker.forget(p.key.tgid);
                self.grpc.forget(p.key.tgid);
            }
            _ => {}
        }
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn stats(&mut self, _stats: &KernelStats, _malformed: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
