//! `sniff --raw` and `sniff --raw --json`: every captured socket event, as
//! lines for people or one JSON object per line for programs.

use std::io::{self, Write};

use base64::Engine as _;
use protocols::record::Direction;
use serde_json::json;

use crate::{
    clock::Clock,
    events::{AF_INET, AF_INET6, AF_UNIX, Conn, Data, Event},
    format::{bytes_human, preview},
    loader::KernelStats,
    session::Sink,
};

pub struct RawPrinter<W: Write> {
    out: W,
    json: bool,
    preview_len: usize,
    clock: Clock,
}

impl<W: Write> RawPrinter<W> {
    pub fn new(out: W, json: bool, preview_len: usize, clock: Clock) -> Self {
        RawPrinter {
            out,
            json,
            preview_len,
            clock,
        }
    }

    pub fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
        if self.json {
            let v = event_json(ev, &self.clock);
            serde_json::to_writer(&mut self.out, &v)?;
            return self.out.write_all(b"\n");
        }
        match ev {
            Event::Data(d) => self.data_line(d),
            Event::Conn(c) => self.conn_line(c),
            Event::Close(c) => writeln!(
                self.out,
                "{} {}[{}/{}] fd {} close: sent {}, received {}",
                self.clock.wall(c.common.ts_ns),
                c.common.comm,
                c.common.key.tgid,
                c.common.tid,
                c.common.key.fd,
                bytes_human(c.egress_bytes),
                bytes_human(c.ingress_bytes),
            ),
            Event::ProcExit(p) => writeln!(
                self.out,
                "{} {}[{}] exited",
                self.clock.wall(p.ts_ns),
                p.comm,
                p.key.tgid
            ),
            Event::Exec(p) => writeln!(
                self.out,
                "{} {}[{}] exec",
                self.clock.wall(p.ts_ns),
                p.comm,
                p.key.tgid
            ),
            Event::GoSpan(s) => writeln!(
                self.out,
                "{} {}[{}/{}] go {:?} {} goroutine {} {} {} {} status {}",
                self.clock.wall(s.common.ts_ns),
                s.common.comm,
                s.common.key.tgid,
                s.common.tid,
                s.probe,
                if s.entry { "entry" } else { "return" },
                s.goid,
                s.method.lossy(),
                s.host.lossy(),
                s.path.lossy(),
                s.status
            ),
            Event::GoHeaders(h) => writeln!(
                self.out,
                "{} {}[{}/{}] go grpc {:?} stream {} {} fields{}",
                self.clock.wall(h.common.ts_ns),
                h.common.comm,
                h.common.key.tgid,
                h.common.tid,
                h.list,
                h.stream_id,
                h.total,
                if h.end_stream { ", end of stream" } else { "" }
            ),
            Event::GoGoroutine(g) => writeln!(
                self.out,
                "{} {}[{}] goroutine {} created {}",
                self.clock.wall(g.common.ts_ns),
                g.common.comm,
                g.common.key.tgid,
                g.parent,
                g.child
            ),
        }
    }

    fn data_line(&mut self, d: &Data<'_>) -> io::Result<()> {
        let arrow = match d.direction {
            Direction::Egress => "out",
            Direction::Ingress => "in ",
        };
        let syscall = d.syscall.map(|s| s.name()).unwrap_or("?");
        write!(
            self.out,
            "{} {}[{}/{}] fd {} {} {} {} @{}",
            self.clock.wall(d.common.ts_ns),
            d.common.comm,
            d.common.key.tgid,
            d.common.tid,
            d.common.key.fd,
            arrow,
            syscall,
            bytes_human(d.payload.len() as u64),
            d.pos,
        )?;
        if d.chunk_offset != 0 || !d.last {
            write!(
                self.out,
                " (part {}..{} of {})",
                d.chunk_offset,
                d.chunk_offset as usize + d.payload.len(),
                d.syscall_len
            )?;
        }
        if d.truncated {
            write!(
                self.out,
                " [truncated: {} moved, {} not captured]",
                bytes_human(d.syscall_len as u64),
                bytes_human(d.missing_after())
            )?;
        }
        if d.read_failed {
            write!(self.out, " [user memory read failed]")?;
        }
        if !d.payload.is_empty() && self.preview_len > 0 {
            write!(self.out, " {}", preview(d.payload, self.preview_len))?;
        }
        writeln!(self.out)
    }

    fn conn_line(&mut self, c: &Conn) -> io::Result<()> {
        let how = c.syscall.map(|s| s.name()).unwrap_or("first seen");
        let (local, remote) = endpoints(c);
        writeln!(
            self.out,
            "{} {}[{}/{}] fd {} {} {} local {} remote {} ({})",
            self.clock.wall(c.common.ts_ns),
            c.common.comm,
            c.common.key.tgid,
            c.common.tid,
            c.common.key.fd,
            how,
            c.role.as_str(),
            local,
            remote,
            family_name(c.family, c.sock_type),
        )
    }

    pub fn stats(&mut self, s: &KernelStats) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, &stats_json(s))?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn endpoints(c: &Conn) -> (String, String) {
    let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or("-".into());
    (show(c.local), show(c.remote))
}

pub fn family_name(family: u16, sock_type: u16) -> &'static str {
    match (family, sock_type) {
        (AF_INET, 1) => "tcp",
        (AF_INET6, 1) => "tcp6",
        (AF_INET, 2) => "udp",
        (AF_INET6, 2) => "udp6",
        (AF_UNIX, 1) => "unix-stream",
        (AF_UNIX, 2) => "unix-dgram",
        (AF_UNIX, _) => "unix",
        _ => "other",
    }
}

fn event_json(ev: &Event<'_>, clock: &Clock) -> serde_json::Value {
    match ev {
        Event::Data(d) => json!({
            "type": "data",
            "ts_ns": d.common.ts_ns,
            "time": clock.rfc3339(d.common.ts_ns),
            "pid": d.common.key.tgid,
            "tid": d.common.tid,
            "comm": d.common.comm,
            "fd": d.common.key.fd,
            "generation": d.common.key.generation,
            "direction": match d.direction { Direction::Egress => "egress", Direction::Ingress => "ingress" },
            "syscall": d.syscall.map(|s| s.name()),
            "enter_ns": d.enter_ns,
            "exit_ns": d.common.ts_ns,
            "pos": d.pos,
            "syscall_len": d.syscall_len,
            "chunk_offset": d.chunk_offset,
            "len": d.payload.len(),
            "last": d.last,
            "truncated": d.truncated,
            "read_failed": d.read_failed,
            "missing_after": d.missing_after(),
            "payload_b64": base64::engine::general_purpose::STANDARD.encode(d.payload),
        }),
        Event::Conn(c) => json!({
            "type": "conn",
            "ts_ns": c.common.ts_ns,
            "time": clock.rfc3339(c.common.ts_ns),
            "pid": c.common.key.tgid,
            "tid": c.common.tid,
            "comm": c.common.comm,
            "fd": c.common.key.fd,
            "generation": c.common.key.generation,
            "role": c.role.as_str(),
            "syscall": c.syscall.map(|s| s.name()),
            "ret": c.ret,
            "family": family_name(c.family, c.sock_type),
            "tcp_state": c.tcp_state,
            "local": c.local.map(|a| a.to_string()),
            "remote": c.remote.map(|a| a.to_string()),
        }),
        Event::Close(c) => json!({
            "type": "close",
            "ts_ns": c.common.ts_ns,
            "time": clock.rfc3339(c.common.ts_ns),
            "pid": c.common.key.tgid,
            "tid": c.common.tid,
            "comm": c.common.comm,
            "fd": c.common.key.fd,
            "generation": c.common.key.generation,
            "egress_bytes": c.egress_bytes,
            "ingress_bytes": c.ingress_bytes,
        }),
        Event::ProcExit(p) => json!({
            "type": "exit",
            "ts_ns": p.ts_ns,
            "time": clock.rfc3339(p.ts_ns),
            "pid": p.key.tgid,
            "comm": p.comm,
        }),
        Event::Exec(p) => json!({
            "type": "exec",
            "ts_ns": p.ts_ns,
            "time": clock.rfc3339(p.ts_ns),
            "pid": p.key.tgid,
            "comm": p.comm,
        }),
        Event::GoSpan(s) => json!({
            "type": "go_span",
            "ts_ns": s.common.ts_ns,
            "time": clock.rfc3339(s.common.ts_ns),
            "pid": s.common.key.tgid,
            "tid": s.common.tid,
            "comm": s.common.comm,
            "probe": format!("{:?}", s.probe),
            "phase": if s.entry { "entry" } else { "return" },
            "goid": s.goid,
            "start_ns": s.start_ns,
            "status": s.status,
            "method": s.method.lossy(),
            "host": s.host.lossy(),
            "path": s.path.lossy(),
        }),
        Event::GoHeaders(h) => json!({
            "type": "go_headers",
            "ts_ns": h.common.ts_ns,
            "time": clock.rfc3339(h.common.ts_ns),
            "pid": h.common.key.tgid,
            "list": format!("{:?}", h.list),
            "stream_id": h.stream_id,
            "end_stream": h.end_stream,
            "fields": h.fields.iter().map(|(n, v)| [n.lossy(), v.lossy()]).collect::<Vec<_>>(),
        }),
        Event::GoGoroutine(g) => json!({
            "type": "go_goroutine",
            "ts_ns": g.common.ts_ns,
            "time": clock.rfc3339(g.common.ts_ns),
            "pid": g.common.key.tgid,
            "parent_goid": g.parent,
            "child_goid": g.child,
        }),
    }
}

pub fn stats_json(s: &KernelStats) -> serde_json::Value {
    use probe_common::stat;
    json!({
        "type": "stats",
        "events": s.get(stat::EVENTS),
        "bytes": s.get(stat::BYTES),
        "ringbuf_drops": s.get(stat::RINGBUF_DROPS),
        "ringbuf_drop_bytes": s.get(stat::RINGBUF_DROP_BYTES),
        "truncated_syscalls": s.get(stat::TRUNCATED_SYSCALLS),
        "truncated_bytes": s.get(stat::TRUNCATED_BYTES),
        "read_failures": s.get(stat::READ_FAILURES),
        "pending_full": s.get(stat::PENDING_FULL),
        "conns_full": s.get(stat::CONNS_FULL),
        "lost_conn": s.get(stat::LOST_CONN),
        "proto_rejected": s.get(stat::PROTO_REJECTED),
        "kernel_read_failures": s.get(stat::KERNEL_READ_FAILURES),
        "go_duplicate_entries": s.get(stat::GO_DUPLICATE_ENTRIES),
        "go_unmatched_returns": s.get(stat::GO_UNMATCHED_RETURNS),
    })
}

impl<W: Write> Sink for RawPrinter<W> {
    fn event(&mut self, _raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        RawPrinter::event(self, ev)
    }

    fn tick(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn stats(&mut self, stats: &KernelStats, _malformed: u64) -> io::Result<()> {
        RawPrinter::stats(self, stats)?;
        self.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}
