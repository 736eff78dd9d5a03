//! Go uprobes, userspace side: find Go executables (running processes at
//! start, programs exec'd later), plan and attach the probes of
//! `probe-ebpf/src/go.rs`, check what they read, and turn their events into
//! calls.
//!
//! | module | what |
//! |---|---|
//! | this one | [`Manager`]: attach per executable, plausibility checks, detach |
//! | [`spans`] | net/http server and client calls, linked through goroutine ancestry |
//! | [`grpc`] | grpc-go calls from decoded header lists |
//! | [`topology`] | the service four-tuple (`sniff topology`) |
//! | [`join`] | kernel exchanges and Go calls matched (`--source both`, `sniff compare`) |
//! | [`compare`] | the `sniff compare` report |
//! | [`sink`] | outputs made of Go events alone (topology, `--source uprobes`) |
//!
//! A uprobe is attached to a file, so one attachment covers every process
//! running that executable, now or later; executables are attached once,
//! told apart by device and inode. Each attached executable gets an attach
//! cookie, under which its struct offsets are stored for the programs.
//!
//! Nothing here can change or stop a target: the programs only read. A
//! probe whose first events read implausible values (wrong offsets) is
//! detached with the reason on stderr ([`crate::golang::plausible`]).

pub mod compare;
pub mod grpc;
pub mod join;
pub mod sink;
pub mod spans;
pub mod topology;

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::programs::uprobe::UProbeLinkId;
use probe_common::GoOffsets;

use crate::{
    events::{Event, GoHeaders, GoProbe, GoSpan, GrpcList},
    golang::{
        abi::Reg,
        offsets::{
            GRPC_CALL_HDR, GRPC_LOOPY_WRITER, GRPC_STREAM, HTTP_REQUEST, HTTP_RESPONSE,
            HTTP_SERVER_RESPONSE, RUNTIME_G, URL, XNET_FRAME_HEADER, XNET_HEADER_FIELD,
            XNET_HEADERS_FRAME, XNET_META_HEADERS_FRAME,
        },
        plan::{self, Attach, Plan},
        plausible::{self, Implausible, Trust, Verdict},
        probes::ProbeId,
    },
    loader::Probes,
    procfs,
};

/// The probes attached, with their entry and (if any) return programs.
const ATTACHED: &[(ProbeId, &str, Option<&str>)] = &[
    (
        ProbeId::HttpServer,
        "go_http_server_enter",
        Some("go_http_server_return"),
    ),
    (
        ProbeId::HttpClientRoundTrip,
        "go_http_client_enter",
        Some("go_http_client_return"),
    ),
    (
        ProbeId::GoroutineNew,
        "go_newproc_enter",
        Some("go_newproc_return"),
    ),
    (
        ProbeId::GrpcClientStream,
        "go_grpc_stream_enter",
        Some("go_grpc_stream_return"),
    ),
    (ProbeId::GrpcWriteHeader, "go_grpc_write_header", None),
    (ProbeId::GrpcServerHeaders, "go_grpc_server_headers", None),
    (ProbeId::GrpcClientHeaders, "go_grpc_client_headers", None),
];

/// (parameter name, its registers at entry).
type ParamRegs = &'static [(&'static str, &'static [Reg])];
/// (result index, its registers at a return).
type ResultRegs = &'static [(usize, &'static [Reg])];

/// The registers `probe-ebpf/src/go.rs` reads, per probe. A plan that puts
/// them elsewhere is refused.
fn expected_registers(id: ProbeId) -> (ParamRegs, ResultRegs) {
    match id {
        ProbeId::HttpServer => (&[("rw", &[Reg::Rbx, Reg::Rcx]), ("req", &[Reg::Rdi])], &[]),
        ProbeId::HttpClientRoundTrip => (
            &[("req", &[Reg::Rbx])],
            &[(0, &[Reg::Rax]), (1, &[Reg::Rbx, Reg::Rcx])],
        ),
        ProbeId::GoroutineNew => (&[("callergp", &[Reg::Rbx])], &[(0, &[Reg::Rax])]),
        ProbeId::GrpcWriteHeader => (
            &[
                ("l", &[Reg::Rax]),
                ("streamID", &[Reg::Rbx]),
                ("endStream", &[Reg::Rcx]),
                ("hf", &[Reg::Rdi, Reg::Rsi, Reg::R8]),
            ],
            &[],
        ),
        ProbeId::GrpcClientStream => (
            &[("callHdr", &[Reg::Rdi])],
            &[(0, &[Reg::Rax]), (1, &[Reg::Rbx, Reg::Rcx])],
        ),
        ProbeId::GrpcServerHeaders | ProbeId::GrpcClientHeaders => (&[("frame", &[Reg::Rbx])], &[]),
        _ => (&[], &[]),
    }
}

fn check_registers(id: ProbeId, a: &Attach) -> Result<(), String> {
    if a.goroutine != Reg::R14 {
        return Err(format!("the goroutine is in {}, not R14", a.goroutine));
    }
    let (params, results) = expected_registers(id);
    for (name, regs) in params {
        match a.param(name) {
            Some(p) if p.regs == *regs => {}
            other => {
                return Err(format!(
                    "parameter {name} is in {:?}, the program reads {regs:?}",
                    other.map(|p| &p.regs)
                ));
            }
        }
    }
    for (i, regs) in results {
        match a.results.get(*i) {
            Some(r) if r.regs == *regs => {}
            other => {
                return Err(format!(
                    "result {i} is in {:?}, the program reads {regs:?}",
                    other.map(|r| &r.regs)
                ));
            }
        }
    }
    Ok(())
}

/// The struct offsets the programs read, from the plan's layouts.
fn go_offsets(plan: &Plan) -> Result<GoOffsets, String> {
    let field = |strukt: &str, name: &str| -> Result<u32, String> {
        plan.ready()
            .find_map(|(_, a)| a.layout(strukt).and_then(|l| l.field(name)))
            .and_then(|o| u32::try_from(o).ok())
            .ok_or_else(|| format!("no offset for {strukt}.{name}"))
    };
    let size = |strukt: &str| -> u32 {
        plan.ready()
            .find_map(|(_, a)| a.layout(strukt).map(|l| l.size))
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0)
    };
    // Only the goroutine id is read by every probe. A probe is ready only
    // if the layouts of all the structs it reads were found, so an offset
    // missing here (0) belongs to a probe that is not attached.
    let opt = |strukt: &str, name: &str| field(strukt, name).unwrap_or(0);
    Ok(GoOffsets {
        g_goid: field(RUNTIME_G, "goid")?,
        req_method: opt(HTTP_REQUEST, "Method"),
        req_url: opt(HTTP_REQUEST, "URL"),
        req_host: opt(HTTP_REQUEST, "Host"),
        url_host: opt(URL, "Host"),
        url_path: opt(URL, "Path"),
        resp_status: opt(HTTP_RESPONSE, "StatusCode"),
        sresp_req: opt(HTTP_SERVER_RESPONSE, "req"),
        sresp_status: opt(HTTP_SERVER_RESPONSE, "status"),
        loopy_side: opt(GRPC_LOOPY_WRITER, "side"),
        mhf_headers_frame: opt(XNET_META_HEADERS_FRAME, "HeadersFrame"),
        mhf_fields: opt(XNET_META_HEADERS_FRAME, "Fields"),
        hf_stream_id: opt(XNET_HEADERS_FRAME, "FrameHeader") + opt(XNET_FRAME_HEADER, "StreamID"),
        field_name: opt(XNET_HEADER_FIELD, "Name"),
        field_value: opt(XNET_HEADER_FIELD, "Value"),
        field_size: size(XNET_HEADER_FIELD),
        callhdr_host: opt(GRPC_CALL_HDR, "Host"),
        callhdr_method: opt(GRPC_CALL_HDR, "Method"),
        gstream_id: opt(GRPC_STREAM, "id"),
        _pad: 0,
    })
}

/// Which processes to attach to.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only these pids (empty: any).
    pub pids: Vec<u32>,
    /// Only processes with this comm.
    pub comm: Option<String>,
}

struct Target {
    exe: PathBuf,
    links: Vec<(ProbeId, &'static str, UProbeLinkId)>,
    trust: HashMap<ProbeId, Trust>,
    detached: HashSet<ProbeId>,
}

/// Attached executables and the checks of their probes.
pub struct Manager {
    scope: Scope,
    next_cookie: u64,
    /// Executables seen, by (device, inode): the cookie if attached.
    files: HashMap<(u64, u64), Option<u64>>,
    targets: HashMap<u64, Target>,
    /// Work for [`Manager::apply`]: processes that exec'd, probes to detach.
    execs: Vec<u32>,
    detach: Vec<(u64, ProbeId)>,
    /// Print what is attached on stderr.
    pub verbose: bool,
}

fn probe_of(s: &GoSpan) -> ProbeId {
    match s.probe {
        GoProbe::HttpServer => ProbeId::HttpServer,
        GoProbe::HttpClient => ProbeId::HttpClientRoundTrip,
        GoProbe::GrpcStream => ProbeId::GrpcClientStream,
    }
}

/// The checks of one span event's values.
fn plausible_span(s: &GoSpan) -> Result<(), Implausible> {
    if s.read_failed {
        return Err(Implausible {
            what: "net/http.Request",
            value: "unreadable".into(),
            expected: "readable memory",
        });
    }
    plausible::goid("runtime.g.goid", s.goid as i64)?;
    if s.probe == GoProbe::GrpcStream {
        plausible::grpc_method("CallHdr.Method", &s.path.bytes)?;
        plausible::host("CallHdr.Host", &s.host.bytes)?;
        if !(1..1 << 31).contains(&s.status) {
            return Err(Implausible {
                what: "transport.Stream.id",
                value: s.status.to_string(),
                expected: "a stream id (1 to 2^31-1)",
            });
        }
    } else if s.entry {
        plausible::http_method("net/http.Request.Method", &s.method.bytes)?;
        plausible::url_path("net/url.URL.Path", &s.path.bytes)?;
        plausible::host("net/http.Request.Host", &s.host.bytes)?;
    } else if !s.status_unknown && !s.client_error {
        plausible::status("HTTP status", s.status)?;
    }
    Ok(())
}

/// The checks of a header list: a real HTTP/2 stream id, field names as
/// HTTP/2 sends them (lowercase, printable), a sane count.
fn plausible_headers(h: &GoHeaders) -> Result<(), Implausible> {
    let bad = |what, value: String, expected| {
        Err(Implausible {
            what,
            value,
            expected,
        })
    };
    if h.read_failed {
        return bad("hpack.HeaderField", "unreadable".into(), "readable memory");
    }
    if h.stream_id == 0 || h.stream_id > 1 << 31 {
        return bad(
            "http2.FrameHeader.StreamID",
            h.stream_id.to_string(),
            "a stream id (1 to 2^31-1)",
        );
    }
    if h.total > 4096 {
        return bad(
            "[]hpack.HeaderField length",
            h.total.to_string(),
            "a plausible header count",
        );
    }
    for (name, _) in &h.fields {
        let ok = !name.bytes.is_empty()
            && name
                .bytes
                .iter()
                .all(|&b| b.is_ascii_graphic() && !b.is_ascii_uppercase());
        if !ok {
            return bad(
                "hpack.HeaderField.Name",
                format!("{:?}", name.lossy()),
                "a lowercase HTTP/2 header name",
            );
        }
    }
    Ok(())
}

impl Manager {
    pub fn new(scope: Scope) -> Manager {
        Manager {
            scope,
            next_cookie: 1,
            files: HashMap::new(),
            targets: HashMap::new(),
            execs: Vec::new(),
            detach: Vec::new(),
            verbose: true,
        }
    }

    /// Attaches to every running Go process in scope.
    pub fn scan(&mut self, probes: &mut Probes) {
        let me = std::process::id();
        let pids = if self.scope.pids.is_empty() {
            procfs::pids()
        } else {
            self.scope.pids.clone()
        };
        for pid in pids {
            if pid != me {
                self.attach_pid(probes, pid);
            }
        }
    }

    fn in_scope(&self, pid: u32) -> bool {
        (self.scope.pids.is_empty() || self.scope.pids.contains(&pid))
            && self
                .scope
                .comm
                .as_ref()
                .is_none_or(|c| procfs::comm(pid).as_deref() == Some(c.as_str()))
    }

    /// Attaches to the executable of `pid` if it is Go and not attached
    /// yet. Returns its cookie when it is (now or before).
    pub fn attach_pid(&mut self, probes: &mut Probes, pid: u32) -> Option<u64> {
        if !self.in_scope(pid) {
            return None;
        }
        let meta = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
        let file = (meta.dev(), meta.ino());
        if let Some(known) = self.files.get(&file) {
            return *known;
        }
        let cookie = match plan::plan_pid(pid) {
            Ok(plan) => self.attach_plan(probes, &plan),
            Err(e) if e.is_not_go() => None,
            Err(e) => {
                eprintln!("sniff: Go uprobes: {e}");
                None
            }
        };
        self.files.insert(file, cookie);
        cookie
    }

    /// Attaches to an executable file (for processes started from it later).
    pub fn attach_path(&mut self, probes: &mut Probes, path: &Path) -> Result<u64, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = (meta.dev(), meta.ino());
        if let Some(Some(cookie)) = self.files.get(&file) {
            return Ok(*cookie);
        }
        let plan = plan::plan_path(path).map_err(|e| e.to_string())?;
        let cookie = self
            .attach_plan(probes, &plan)
            .ok_or_else(|| format!("{}: no Go probe could be attached", path.display()))?;
        self.files.insert(file, Some(cookie));
        Ok(cookie)
    }

    fn attach_plan(&mut self, probes: &mut Probes, plan: &Plan) -> Option<u64> {
        let exe = plan.target.exe.display().to_string();
        let who = match plan.target.pid {
            Some(pid) => format!("{exe} (pid {pid}, Go {})", plan.go.raw_version),
            None => format!("{exe} (Go {})", plan.go.raw_version),
        };
        if let Err(e) = &plan.go.call_conv {
            eprintln!("sniff: Go uprobes not attached to {who}: {e}");
            return None;
        }
        let offsets = match go_offsets(plan) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("sniff: Go uprobes not attached to {who}: {e}");
                return None;
            }
        };
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        if let Err(e) = probes.set_go_offsets(cookie, &offsets) {
            eprintln!("sniff: Go uprobes not attached to {who}: {e}");
            return None;
        }
        let mut target = Target {
            exe: plan.target.exe.clone(),
            links: Vec::new(),
            trust: HashMap::new(),
            detached: HashSet::new(),
        };
        let mut attached = Vec::new();
        for &(id, enter, ret) in ATTACHED {
            let Some(p) = plan.probe(id) else { continue };
            let a = match &p.outcome {
                Ok(a) => a,
                // Not using a library is no news.
                Err(plan::Unavailable::NotLinked { .. }) => continue,
                Err(why) => {
                    if self.verbose {
                        eprintln!("sniff: {who}: {} not probed: {why}", id.name());
                    }
                    continue;
                }
            };
            if let Err(why) = check_registers(id, a) {
                eprintln!("sniff: {who}: {} not probed: {why}", id.name());
                continue;
            }
            let path = &plan.target.attach_path;
            let entry = probes.attach_go(enter, vec![a.entry.aya_point(Some(cookie))], path);
            let rets = entry.and_then(|l| {
                let Some(ret) = ret else {
                    return Ok((l, None));
                };
                let points = a
                    .returns
                    .iter()
                    .map(|s| s.aya_point(Some(cookie)))
                    .collect();
                match probes.attach_go(ret, points, path) {
                    Ok(r) => Ok((l, Some((ret, r)))),
                    Err(e) => {
                        probes.detach_go(enter, l);
                        Err(e)
                    }
                }
            });
            match rets {
                Ok((l, r)) => {
                    target.links.push((id, enter, l));
                    if let Some((ret, r)) = r {
                        target.links.push((id, ret, r));
                    }
                    target.trust.insert(id, Trust::new(id.name()));
                    attached.push(id.name());
                }
                Err(e) => eprintln!("sniff: {who}: {} not probed: {e}", id.name()),
            }
        }
        if attached.is_empty() {
            return None;
        }
        if self.verbose {
            eprintln!(
                "sniff: Go uprobes attached to {who}: {}",
                attached.join(", ")
            );
        }
        self.targets.insert(cookie, target);
        Some(cookie)
    }

    /// Looks at one event: notes exec'd programs, checks Go events. Returns
    /// false for an event to drop (its probe is being detached). The work
    /// it finds is done by [`Manager::apply`].
    pub fn on_event(&mut self, ev: &Event<'_>) -> bool {
        let (cookie, id, check) = match ev {
            Event::Exec(c) => {
                self.execs.push(c.key.tgid);
                return true;
            }
            Event::GoSpan(s) => (s.target, probe_of(s), plausible_span(s)),
            Event::GoHeaders(h) => (
                h.target,
                match h.list {
                    GrpcList::ClientSent | GrpcList::ServerSent => ProbeId::GrpcWriteHeader,
                    GrpcList::ServerReceived => ProbeId::GrpcServerHeaders,
                    GrpcList::ClientReceived => ProbeId::GrpcClientHeaders,
                },
                plausible_headers(h),
            ),
            Event::GoGoroutine(g) => (
                g.target,
                ProbeId::GoroutineNew,
                plausible::goid("runtime.g.goid (parent)", g.parent as i64)
                    .and_then(|()| plausible::goid("runtime.g.goid (new)", g.child as i64)),
            ),
            _ => return true,
        };
        let Some(target) = self.targets.get_mut(&cookie) else {
            return false;
        };
        if target.detached.contains(&id) {
            return false;
        }
        let Some(trust) = target.trust.get_mut(&id) else {
            return false;
        };
        match trust.observe(check) {
            Verdict::Detach(why) => {
                eprintln!("sniff: {}: {why}", target.exe.display());
                target.detached.insert(id);
                self.detach.push((cookie, id));
                false
            }
            Verdict::Checking | Verdict::Trusted => match ev {
                // After the checking phase, implausible events are dropped.
                Event::GoSpan(s) => plausible_span(s).is_ok(),
                _ => true,
            },
        }
    }

    /// Attaches to the Go programs exec'd since the last call, and detaches
    /// the probes found implausible.
    pub fn apply(&mut self, probes: &mut Probes) {
        for pid in std::mem::take(&mut self.execs) {
            self.attach_pid(probes, pid);
        }
        for (cookie, id) in std::mem::take(&mut self.detach) {
            let Some(target) = self.targets.get_mut(&cookie) else {
                continue;
            };
            for (probe, program, link) in std::mem::take(&mut target.links) {
                if probe == id {
                    probes.detach_go(program, link);
                } else {
                    target.links.push((probe, program, link));
                }
            }
        }
    }

    /// How many executables have probes attached.
    pub fn attached(&self) -> usize {
        self.targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golang::{
        plan::plan_bytes,
        testbins::{self, Program, Variant},
    };

    /// The registers the eBPF programs hard-wire are the ones the plan
    /// derives for real Go 1.19 binaries, and the offsets are all found,
    /// with DWARF and without.
    #[test]
    fn plans_of_real_binaries_fit_the_programs() {
        let target = || plan::Target {
            attach_path: "/x".into(),
            pid: None,
            exe: "/x".into(),
        };
        let cases = [
            (Program::NetHttp, Variant::Full),
            (Program::NetHttp, Variant::Stripped),
            (Program::Grpc, Variant::Full),
        ];
        for (program, variant) in cases {
            let Some(bytes) = testbins::bytes(program, variant) else {
                return;
            };
            let plan = plan_bytes(&bytes, target()).unwrap();
            let grpc = program == Program::Grpc;
            for &(id, _, _) in ATTACHED {
                let is_grpc = id.name().starts_with("grpc");
                if is_grpc != grpc && id != ProbeId::GoroutineNew {
                    continue;
                }
                let a = plan.probe(id).unwrap().outcome.as_ref().unwrap();
                check_registers(id, a).unwrap();
            }
            let o = go_offsets(&plan).unwrap();
            assert_eq!(o.g_goid, 152);
            if grpc {
                assert_eq!((o.loopy_side, o.mhf_headers_frame, o.mhf_fields), (0, 0, 8));
                assert_eq!((o.hf_stream_id, o.field_name, o.field_value), (8, 0, 16));
                assert_eq!(o.field_size, 40);
                continue;
            }
            assert_eq!((o.req_method, o.req_url, o.req_host), (0, 16, 128));
            assert_eq!((o.url_host, o.url_path, o.resp_status), (40, 56, 16));
            assert_eq!((o.sresp_req, o.sresp_status), (8, 120), "{variant:?}");
        }
    }

    #[test]
    fn implausible_values_are_caught() {
        use crate::events::{Comm, Common, ConnKey, GoStr};
        let s = |v: &str| GoStr {
            bytes: v.as_bytes().to_vec(),
            len: v.len() as u32,
        };
        let mut span = GoSpan {
            common: Common {
                key: ConnKey {
                    tgid: 1,
                    fd: -1,
                    generation: 0,
                },
                tid: 1,
                ts_ns: 0,
                comm: Comm::from("x"),
            },
            probe: GoProbe::HttpServer,
            entry: true,
            goid: 5,
            start_ns: 0,
            target: 1,
            status: 0,
            read_failed: false,
            client_error: false,
            status_unknown: false,
            method: s("GET"),
            host: s("localhost:80"),
            path: s("/a"),
        };
        assert_eq!(plausible_span(&span), Ok(()));
        span.method = s("\u{1}\u{2}");
        assert!(plausible_span(&span).is_err());
        span.method = s("GET");
        span.path = s("a\nb");
        assert!(plausible_span(&span).is_err());
        span.path = s("/a");
        span.read_failed = true;
        assert!(plausible_span(&span).is_err());
        span.read_failed = false;
        span.entry = false;
        span.status = 70000;
        assert!(plausible_span(&span).is_err());
        span.status_unknown = true;
        assert_eq!(plausible_span(&span), Ok(()));
    }
}
