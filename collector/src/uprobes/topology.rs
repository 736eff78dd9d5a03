//! The service four-tuple `[caller, caller_func, callee, callee_func]`:
//! which handler of which service calls which endpoint of which service,
//! with counts, errors and latency percentiles over the run.
//!
//! - A client call linked to the request it was made for gives
//!   `[service, request path, host:port, called path]`; one that could not
//!   be linked (handed to a worker goroutine) has caller_func
//!   [`UNLINKED`].
//! - A request that made no linked call is a leaf:
//!   `[service, request path, none, none]`, with the request's own latency.
//! - An error is a client call that failed or got a 5xx, or a leaf request
//!   answered with a 5xx.

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, Write},
    net::IpAddr,
};

use serde::Serialize;

use super::{grpc::GrpcCall, spans::Finished};
use crate::{procfs, render::latency_human, sock_diag};

/// caller_func of a client call no request could be linked to.
pub const UNLINKED: &str = "unlinked";
/// callee and callee_func of a leaf request.
pub const NONE: &str = "none";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    pub caller: String,
    pub caller_func: String,
    pub callee: String,
    pub callee_func: String,
}

#[derive(Default)]
struct Agg {
    count: u64,
    errors: u64,
    latencies: Vec<u64>,
}

/// One line of output (the JSON object, keys exactly these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub caller: String,
    pub caller_func: String,
    pub callee: String,
    pub callee_func: String,
    pub count: u64,
    pub errors: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Names services and callees.
pub trait Namer {
    /// The service a process is (its executable's name, or an override).
    fn service(&mut self, tgid: u32) -> String;
    /// `host:port`, with ` (service)` when a process on this host listens
    /// there.
    fn callee(&mut self, host: &str) -> String;
}

#[derive(Default)]
pub struct Topology {
    tuples: BTreeMap<Tuple, Agg>,
}

impl Topology {
    pub fn new() -> Topology {
        Topology::default()
    }

    pub fn add(&mut self, f: &Finished, namer: &mut dyn Namer) {
        let (tuple, latency, error) = match f {
            Finished::Client(c) => (
                Tuple {
                    caller: namer.service(c.tgid),
                    caller_func: c
                        .caller
                        .as_ref()
                        .map_or_else(|| UNLINKED.to_string(), |k| k.path.clone()),
                    callee: namer.callee(&c.host),
                    callee_func: c.path.clone(),
                },
                c.end_ns.saturating_sub(c.start_ns),
                c.error || c.status.is_some_and(|s| s >= 500),
            ),
            Finished::Server(s) if s.calls == 0 => (
                Tuple {
                    caller: namer.service(s.tgid),
                    caller_func: s.path.clone(),
                    callee: NONE.to_string(),
                    callee_func: NONE.to_string(),
                },
                s.end_ns.saturating_sub(s.start_ns),
                s.status.is_some_and(|s| s >= 500),
            ),
            Finished::Server(_) => return,
        };
        let agg = self.tuples.entry(tuple).or_default();
        agg.count += 1;
        agg.errors += error as u64;
        agg.latencies.push(latency);
    }

    /// A finished gRPC client call; `caller`: the request path it was made
    /// for (`None`: unlinked). Errors: a `grpc-status` other than OK.
    pub fn add_grpc(&mut self, c: &GrpcCall, caller: Option<String>, namer: &mut dyn Namer) {
        let tuple = Tuple {
            caller: namer.service(c.tgid),
            caller_func: caller.unwrap_or_else(|| UNLINKED.to_string()),
            callee: namer.callee(&c.authority),
            callee_func: c.path.clone(),
        };
        let agg = self.tuples.entry(tuple).or_default();
        agg.count += 1;
        agg.errors += (c.grpc_status != Some(0)) as u64;
        agg.latencies.push(c.end_ns.saturating_sub(c.start_ns));
    }

    pub fn rows(&self) -> Vec<Row> {
        self.tuples
            .iter()
            .map(|(t, a)| {
                let mut l = a.latencies.clone();
                l.sort_unstable();
                Row {
                    caller: t.caller.clone(),
                    caller_func: t.caller_func.clone(),
                    callee: t.callee.clone(),
                    callee_func: t.callee_func.clone(),
                    count: a.count,
                    errors: a.errors,
                    p50_ns: percentile(&l, 50),
                    p99_ns: percentile(&l, 99),
                }
            })
            .collect()
    }

    /// One JSON object per tuple and line.
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        for row in self.rows() {
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// An aligned table.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let rows = self.rows();
        if rows.is_empty() {
            return writeln!(out, "no Go HTTP calls seen");
        }
        let mut cells = vec![[
            "CALLER".to_string(),
            "CALLER_FUNC".to_string(),
            "CALLEE".to_string(),
            "CALLEE_FUNC".to_string(),
            "COUNT".to_string(),
            "ERRORS".to_string(),
            "P50".to_string(),
            "P99".to_string(),
        ]];
        for r in &rows {
            cells.push([
                r.caller.clone(),
                r.caller_func.clone(),
                r.callee.clone(),
                r.callee_func.clone(),
                r.count.to_string(),
                r.errors.to_string(),
                latency_human(r.p50_ns),
                latency_human(r.p99_ns),
            ]);
        }
        let mut widths = [0usize; 8];
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        for row in &cells {
            let mut line = String::new();
            for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i < 7 {
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Names from /proc and the kernel's socket table, cached for the run.
pub struct HostNamer {
    overrides: HashMap<u32, String>,
    services: HashMap<u32, String>,
    callees: HashMap<String, String>,
}

impl HostNamer {
    /// `overrides`: `--service-name PID=NAME`.
    pub fn new(overrides: HashMap<u32, String>) -> HostNamer {
        HostNamer {
            overrides,
            services: HashMap::new(),
            callees: HashMap::new(),
        }
    }

    /// Resolves `host` to the local process listening there, if any.
    fn local_listener(&mut self, host: &str) -> Option<String> {
        let (name, port) = host.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = if name == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            name.parse().ok()?
        };
        let sockets = sock_diag::dump_tcp().ok()?;
        const TCP_LISTEN: u8 = 10;
        let listening = |s: &&sock_diag::TcpSocket| {
            s.state == TCP_LISTEN
                && s.local.port() == port
                && (s.local.ip() == ip
                    || s.local.ip().is_unspecified()
                    || ip.is_loopback() && s.local.ip().is_loopback())
        };
        let local =
            ip.is_loopback() || ip.is_unspecified() || sockets.iter().any(|s| s.local.ip() == ip);
        if !local {
            return None;
        }
        let sock = sockets.iter().find(listening)?;
        let (pid, _) = procfs::socket_owner_among(procfs::pids(), sock.inode as u64)?;
        Some(self.service(pid))
    }
}

/// The executable name of a process (not its 15-byte comm).
pub fn exe_name(pid: u32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    // A replaced executable reads "name (deleted)".
    Some(name.trim_end_matches(" (deleted)").to_string())
}

impl Namer for HostNamer {
    fn service(&mut self, tgid: u32) -> String {
        if let Some(n) = self.overrides.get(&tgid) {
            return n.clone();
        }
        self.services
            .entry(tgid)
            .or_insert_with(|| {
                exe_name(tgid)
                    .or_else(|| procfs::comm(tgid))
                    .unwrap_or_else(|| format!("pid {tgid}"))
            })
            .clone()
    }

    fn callee(&mut self, host: &str) -> String {
        if let Some(n) = self.callees.get(host) {
            return n.clone();
        }
        let named = match self.local_listener(host) {
            Some(service) => format!("{host} ({service})"),
            None => host.to_string(),
        };
        self.callees.insert(host.to_string(), named.clone());
        named
    }
}

/// Parses `--service-name PID=NAME`.
pub fn parse_service_name(s: &str) -> Result<(u32, String), String> {
    let (pid, name) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PID=NAME, e.g. 4242=checkout"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("{pid:?} is not a process id"))?;
    if name.is_empty() {
        return Err("the NAME after = is empty".into());
    }
    Ok((pid, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uprobes::spans::{Caller, ClientCall, ServerCall};

    struct Fixed;
    impl Namer for Fixed {
        fn service(&mut self, tgid: u32) -> String {
            format!("svc{tgid}")
        }
        fn callee(&mut self, host: &str) -> String {
            format!("{host} (b)")
        }
    }

    fn client(caller: Option<&str>, status: Option<u16>, lat: u64) -> Finished {
        Finished::Client(ClientCall {
            tgid: 1,
            goid: 9,
            method: "GET".into(),
            host: "127.0.0.1:80".into(),
            path: "/b".into(),
            status,
            error: status.is_none(),
            start_ns: 1000,
            end_ns: 1000 + lat,
            caller: caller.map(|p| Caller {
                method: "GET".into(),
                path: p.into(),
                goid: 9,
            }),
        })
    }

    fn server(path: &str, calls: u32, status: u16, lat: u64) -> Finished {
        Finished::Server(ServerCall {
            tgid: 2,
            goid: 3,
            method: "GET".into(),
            host: "x".into(),
            path: path.into(),
            status: Some(status),
            start_ns: 0,
            end_ns: lat,
            calls,
        })
    }

    #[test]
    fn tuples_counts_errors_and_percentiles() {
        let mut t = Topology::new();
        for i in 1..=100 {
            t.add(&client(Some("/a"), Some(200), i * 10), &mut Fixed);
        }
        t.add(&client(Some("/a"), None, 5), &mut Fixed);
        t.add(&client(None, Some(503), 7), &mut Fixed);
        t.add(&server("/b", 0, 500, 3), &mut Fixed);
        t.add(&server("/b", 0, 200, 4), &mut Fixed);
        // A request that made a call is not a leaf.
        t.add(&server("/a", 1, 200, 4), &mut Fixed);
        let rows = t.rows();
        let row = |f: &str, callee: &str| {
            rows.iter()
                .find(|r| r.caller_func == f && r.callee == callee)
                .unwrap_or_else(|| panic!("{f} {callee}: {rows:?}"))
                .clone()
        };
        let a = row("/a", "127.0.0.1:80 (b)");
        assert_eq!((a.caller.as_str(), a.callee_func.as_str()), ("svc1", "/b"));
        assert_eq!((a.count, a.errors, a.p50_ns, a.p99_ns), (101, 1, 500, 990));
        let u = row(UNLINKED, "127.0.0.1:80 (b)");
        assert_eq!((u.count, u.errors), (1, 1));
        let leaf = row("/b", NONE);
        assert_eq!(
            (leaf.caller.as_str(), leaf.callee_func.as_str()),
            ("svc2", NONE)
        );
        assert_eq!(
            (leaf.count, leaf.errors, leaf.p50_ns, leaf.p99_ns),
            (2, 1, 3, 4)
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn json_keys_are_exactly_the_documented_ones() {
        let mut t = Topology::new();
        t.add(&server("/b", 0, 200, 4), &mut Fixed);
        let mut out = Vec::new();
        t.write_json(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "callee",
                "callee_func",
                "caller",
                "caller_func",
                "count",
                "errors",
                "p50_ns",
                "p99_ns"
            ]
        );
        let mut text = Vec::new();
        t.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let cells: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cells[..6],
            ["svc2", "/b", "none", "none", "1", "0"],
            "{text}"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[1, 2, 3, 4], 50), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 99), 4);
    }

    #[test]
    fn service_name_overrides_parse() {
        assert_eq!(
            parse_service_name("42=checkout"),
            Ok((42, "checkout".into()))
        );
        assert!(parse_service_name("checkout").is_err());
        assert!(parse_service_name("x=y").is_err());
        assert!(parse_service_name("42=").is_err());
    }
}
