//! `sniff`: see what the processes on this machine say to each other over
//! HTTP/1.x, HTTP/2 and gRPC, from the kernel, without touching them.

mod backfill;
mod btf;
mod clock;
mod events;
mod filter;
mod format;
mod golang;
mod jsonline;
mod live;
mod loader;
mod pipeline;
mod procfs;
mod raw;
mod recording;
mod render;
mod replay;
mod session;
mod sock_diag;
mod uprobes;

use std::{
    io::{self, BufWriter, IsTerminal as _},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use probe_common::MAX_CAP_BYTES;

use crate::{
    clock::Clock,
    filter::{Filters, PathMatch, ProtoFilter, StatusMatch, parse_latency, parse_side},
    format::parse_size,
    loader::{CaptureConfig, LoadError, Probes},
    raw::RawPrinter,
    render::{Redactor, Renderer},
};

const ABOUT: &str = "See what the processes on this machine say to each other over HTTP/1.x, \
HTTP/2 and gRPC, straight from the kernel (eBPF on syscall tracepoints), without touching them.";

const AFTER_HELP: &str = "\
Examples:
  sniff                               every HTTP exchange on the machine (same as --proto http)
  sniff --proto grpc                  gRPC calls only: service/method, status, message counts
  sniff --port 8080 --status 5xx      server errors on connections to or from port 8080
  sniff --comm nginx --path /api      exchanges of processes named nginx whose path starts /api
  sniff --path '~^/users/[0-9]+$'     a path matching a regular expression (leading ~)
  sniff --min-latency 100ms -H        slow exchanges, with their headers
  sniff --json | jq .                 one JSON object per exchange (schema: docs/json-schema.md)
  sniff --raw                         every socket read/write, undecoded
  sniff record -o cap.sniff --duration 30     save raw events to replay later
  sniff replay cap.sniff              the same output, later, on any machine
  sniff replay traffic.pcap           decode a tcpdump/Wireshark capture the same way

Go programs (Go 1.17+, amd64) are also probed from the inside (uprobes on net/http and
grpc-go; nothing in the program changes), running now or started later:
  sniff                               (--source both) each exchange of a Go program gets a
                                      \"go:\" line: goroutine, handler, which handler made a call
  sniff --source uprobes              Go calls from uprobes alone, gRPC with decoded headers
  sniff topology --duration 30        [caller, caller_func, callee, callee_func] with counts,
                                      errors, p50/p99 (sniff topology --help)
  sniff compare --pid 4242            both views of one program, matched; exit 1 if they differ

Both ends of a connection on this host are reported once, from the client's side,
naming the server process; --side client|server shows one side's view of every
connection instead. Secrets (Authorization, Cookie, Set-Cookie, ...) are redacted
unless --show-secrets.

Loss is never silent: anything dropped or cut short is counted, reported on stderr
and in --json output ({\"type\":\"stats\",...}), and the exchanges it touched are
flagged (gap, truncated). Needs root, or CAP_BPF and CAP_PERFMON.";

const TOPOLOGY_HELP: &str = "\
Go programs (Go 1.17 or later, amd64) running now or started during the run are found
and probed without touching them: net/http's serverHandler.ServeHTTP (the request
being served), (*Transport).roundTrip (each outgoing call) and runtime.newproc1
(which goroutine started which), so a call made from a goroutine the handler
started is still attributed to that handler.

  [demo, /handle, 127.0.0.1:9932 (demo), /echo]   /handle of demo called /echo on port 9932,
                                                  served by the local process demo
  [demo, /echo, none, none]                       a request to /echo that called nothing
  [demo, unlinked, 127.0.0.1:80, /x]              a call no request could be tied to (e.g.
                                                  made by a worker fed through a channel)

Examples:
  sniff topology --duration 30
  sniff topology --json --pid 4242 --service-name 4242=checkout

errors: calls that failed or got a 5xx, and leaf requests answered with a 5xx.";

const COMPARE_HELP: &str = "\
The same request seen from the syscalls (bytes on the socket, decoded) and from inside
the Go process (net/http's ServeHTTP and roundTrip) is matched by process, side (server
or client), method, path and start time. Compared fields: status, and the Host
(Host header or :authority against net/http's Request.Host / URL.Host).

Examples:
  sniff compare --pid 4242 --duration 30
  sniff compare ./myservice --duration 60      processes of that binary, even started later

Only exchanges that completed during the run are compared; HTTP/1 from net/http.";

#[derive(Parser, Debug)]
#[command(name = "sniff", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    capture: CaptureArgs,

    #[command(flatten)]
    view: ViewArgs,

    /// Print every captured socket event (undecoded): time, process, fd,
    /// direction, syscall, length and a preview of the bytes, as sent
    /// (nothing is redacted in raw bytes).
    #[arg(long)]
    raw: bool,

    /// Bytes of payload shown per event with --raw.
    #[arg(long, value_name = "BYTES", default_value_t = 80)]
    preview: usize,

    /// Where HTTP exchanges come from: syscalls (socket bytes, any
    /// language), uprobes (Go net/http calls, from inside Go programs), or
    /// both (socket bytes, with the Go view added for Go programs: the
    /// goroutine, the handler, and which handler made a client call).
    #[arg(long, value_name = "SOURCE", default_value = "both", value_parser = ["syscalls", "uprobes", "both"])]
    source: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture raw events to a file (for `sniff replay`), decoding nothing.
    Record {
        /// Where to write the recording.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Stop once the file reaches this size (e.g. 100M, 2G).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_bytes: Option<u64>,
        /// Record connections that look like HTTP only: http (default) or any.
        #[arg(long, value_name = "PROTO", default_value = "http")]
        proto: String,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// The service four-tuple of Go programs, from Go uprobes: which
    /// handler (caller_func) of which service (caller) calls which endpoint
    /// (callee_func) of which host:port (callee), with counts, errors and
    /// p50/p99 latency, printed when capture ends (Ctrl-C or --duration).
    #[command(after_help = TOPOLOGY_HELP)]
    Topology {
        /// One JSON object per tuple: caller, caller_func, callee,
        /// callee_func, count, errors, p50_ns, p99_ns.
        #[arg(long)]
        json: bool,
        /// Name the service of process PID (default: its executable's
        /// name). Repeat for several.
        #[arg(long = "service-name", value_name = "PID=NAME", value_parser = uprobes::topology::parse_service_name)]
        service_names: Vec<(u32, String)>,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Run both sources on one Go program and compare them: exchanges seen
    /// by both (matched), by one only, and fields that differ. Exits 1 on
    /// any disagreement.
    #[command(after_help = COMPARE_HELP)]
    Compare {
        /// The Go executable (for processes started from it, now or during
        /// the run); or give running processes with --pid.
        #[arg(value_name = "BINARY")]
        exe: Option<PathBuf>,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Decode a `sniff record` file, or a pcap/pcapng capture, exactly as a
    /// live run would.
    Replay {
        /// A sniff recording, or a pcap / pcapng file (tcpdump -w, Wireshark).
        file: PathBuf,
        #[command(flatten)]
        view: ViewArgs,
    },
}

/// What to capture (applied in the kernel).
#[derive(Args, Debug, Clone)]
struct CaptureArgs {
    /// Only these processes (repeat, or separate with commas).
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<u32>,

    /// Only processes with this name (as in /proc/PID/comm; first 15 bytes).
    #[arg(short, long, value_name = "NAME")]
    comm: Option<String>,

    /// Only connections with this local or remote port (repeat, or commas).
    #[arg(long = "port", value_name = "PORT", value_delimiter = ',', value_parser = parse_port)]
    ports: Vec<u16>,

    /// Capture Unix domain sockets too (off by default).
    #[arg(long)]
    unix: bool,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,

    /// Bytes copied per syscall; the rest is counted, not copied, and HTTP/1
    /// parsers keep their place across it (e.g. 64K, 2M; at most 16M).
    /// Default 256K, and 16M on connections that start as HTTP/2, whose
    /// frames cannot be followed across a hole; given, it applies to all.
    #[arg(long, value_name = "SIZE", value_parser = parse_cap)]
    max_bytes_per_syscall: Option<u32>,

    /// Kernel-to-user ring buffer size (a power of two, e.g. 8M, 64M).
    /// Bigger absorbs longer bursts; it is mapped twice, so it counts
    /// double in sniff's resident memory.
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_ring)]
    ring_size: u32,

    /// Seconds between loss reports on stderr (only when something was lost)
    /// and stats lines in --json output; 0 turns them off.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    stats_interval: f64,
}

/// What to show of HTTP exchanges.
#[derive(Args, Debug, Clone)]
struct ViewArgs {
    /// Protocols to show: http (HTTP/1.x and HTTP/2), http1, http2 or grpc.
    #[arg(long, value_name = "PROTO", default_value = "http", value_parser = ProtoFilter::parse)]
    proto: ProtoFilter,

    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,

    /// Only these methods (repeat, or commas).
    #[arg(long = "method", value_name = "METHOD", value_delimiter = ',')]
    methods: Vec<String>,

    /// Only paths starting with this; with a leading ~, a regular expression.
    #[arg(long, value_name = "PREFIX|~REGEX", value_parser = PathMatch::parse)]
    path: Option<PathMatch>,

    /// Only this Host / :authority (a name matches any port of it).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,

    /// Only these statuses: 404, 5xx, 400-499, or a comma list.
    #[arg(long, value_name = "STATUS", value_parser = StatusMatch::parse)]
    status: Option<StatusMatch>,

    /// Only exchanges at least this slow (250us, 100ms, 1.5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_latency)]
    min_latency: Option<Duration>,

    /// Show what each connection's client (or server) saw, for every
    /// connection, instead of one report per exchange.
    #[arg(long, value_name = "SIDE", value_parser = parse_side)]
    side: Option<protocols::record::Side>,

    /// Print request and response headers.
    #[arg(short = 'H', long)]
    headers: bool,

    /// Include the first bytes of bodies (text: escaped; --json: base64
    /// fields req_body_b64 / resp_body_b64).
    #[arg(short = 'B', long)]
    bodies: bool,

    /// Show header values that are redacted by default.
    #[arg(long)]
    show_secrets: bool,

    /// Also redact this header (repeat).
    #[arg(long = "redact", value_name = "HEADER")]
    redact: Vec<String>,

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    color: String,
}

impl ViewArgs {
    fn filters(&self) -> Filters {
        Filters {
            proto: self.proto,
            methods: self.methods.clone(),
            path: self.path.clone(),
            hosts: self.hosts.clone(),
            status: self.status.clone(),
            min_latency: self.min_latency,
            side: self.side,
        }
    }

    fn renderer(&self, clock_offset_ns: i128) -> anyhow::Result<Renderer> {
        let color = match self.color.as_str() {
            "always" => true,
            "never" => false,
            "auto" => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            other => anyhow::bail!("--color {other:?}: use auto, always or never"),
        };
        Ok(Renderer {
            json: self.json,
            color: color && !self.json,
            headers: self.headers,
            bodies: self.bodies,
            redact: Redactor::new(!self.show_secrets, &self.redact),
            clock_offset_ns,
            last_second: Default::default(),
        })
    }
}

impl CaptureArgs {
    fn config(&self, proto_http: bool) -> CaptureConfig {
        CaptureConfig {
            pids: self.pids.clone(),
            comm: self.comm.clone(),
            ports: self.ports.clone(),
            unix: self.unix,
            proto_http,
            cap_bytes: self
                .max_bytes_per_syscall
                .unwrap_or(probe_common::DEFAULT_CAP_BYTES),
            h2_cap_bytes: self
                .max_bytes_per_syscall
                .unwrap_or(probe_common::DEFAULT_H2_CAP_BYTES),
            ring_bytes: self.ring_size,
            go: false,
            go_only: false,
        }
    }

    fn options(&self) -> session::Options {
        session::Options {
            duration: self.duration.map(Duration::from_secs_f64),
            stats_interval: (self.stats_interval > 0.0)
                .then(|| Duration::from_secs_f64(self.stats_interval)),
            report: true,
        }
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(0) => Err("port 0 is no connection's port".into()),
        Ok(p) => Ok(p),
        Err(_) => Err("a port is a number from 1 to 65535".into()),
    }
}

fn parse_cap(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if n == 0 || n > MAX_CAP_BYTES as u64 {
        return Err(format!("must be between 1 and {MAX_CAP_BYTES} bytes"));
    }
    Ok(n as u32)
}

fn parse_ring(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !(64 << 10..=1 << 30).contains(&n) {
        return Err("must be between 64K and 1G".into());
    }
    if !n.is_power_of_two() {
        let up = n.next_power_of_two();
        let hint = if up >= 1 << 20 {
            format!("{}M", up >> 20)
        } else {
            format!("{}K", up >> 10)
        };
        return Err(format!(
            "must be a power of two (the kernel's rule for ring buffers), e.g. {hint}"
        ));
    }
    Ok(n as u32)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sniff: {e:#}");
            match e.downcast_ref::<LoadError>() {
                // sysexits.h EX_NOPERM
                Some(LoadError::Privileges { .. }) => ExitCode::from(77),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn load(cfg: &CaptureConfig) -> anyhow::Result<Probes> {
    let started = std::time::Instant::now();
    let probes = Probes::load(cfg)?;
    eprintln!(
        "sniff: capturing ({} tracepoints attached in {:.2} s). Ctrl-C to stop.",
        probes.attached,
        started.elapsed().as_secs_f64()
    );
    Ok(probes)
}

/// Output is written out at the end of every read of the ring buffer (see
/// `session::run`), so a larger buffer only means fewer `write` calls when
/// many exchanges arrive at once, not later output.
const STDOUT_BUFFER: usize = 64 * 1024;

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None if cli.raw => {
            let stop = session::stop_flag().context("installing signal handlers")?;
            let mut probes = load(&cli.capture.config(false))?;
            let stdout = BufWriter::with_capacity(STDOUT_BUFFER, io::stdout().lock());
            let mut printer = RawPrinter::new(stdout, cli.view.json, cli.preview, Clock::new());
            session::run(
                &mut probes,
                &mut printer,
                &cli.capture.options(),
                &stop,
                None,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let stop = session::stop_flag().context("installing signal handlers")?;
            let clock = Clock::new();
            let renderer = cli.view.renderer(clock.offset_ns())?;
            let mut cfg = cli.capture.config(true);
            cfg.go = cli.source != "syscalls";
            cfg.go_only = cli.source == "uprobes";
            let mut probes = load(&cfg)?;
            if cli.source == "uprobes" {
                need_go(&probes)?;
            }
            let go = probes.go_loaded();
            let mut manager = go.then(|| go_manager(&cli.capture, &mut probes));
            let stdout = BufWriter::with_capacity(STDOUT_BUFFER, io::stdout().lock());
            let opts = cli.capture.options();
            if cli.source == "uprobes" {
                let mut sink =
                    uprobes::sink::CallSink::new(cli.view.json, clock.offset_ns(), stdout);
                session::run(&mut probes, &mut sink, &opts, &stop, manager.as_mut())?;
            } else {
                let mut sink = live::HttpSink::new(cli.view.filters(), renderer, stdout, None);
                if go {
                    sink = sink.with_go(uprobes::join::Enricher::new(false));
                }
                session::run(&mut probes, &mut sink, &opts, &stop, manager.as_mut())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Compare { exe, capture }) => {
            if exe.is_none() && capture.pids.is_empty() {
                anyhow::bail!("say which Go program to compare: --pid PID, or its BINARY path");
            }
            let stop = session::stop_flag().context("installing signal handlers")?;
            let mut cfg = capture.config(true);
            cfg.go = true;
            if let Some(exe) = &exe
                && cfg.comm.is_none()
                && cfg.pids.is_empty()
            {
                // The kernel side captures the processes of that name.
                let name = exe.file_name().map(|n| n.to_string_lossy().into_owned());
                cfg.comm = name.map(|n| n.chars().take(15).collect());
            }
            let mut probes = load(&cfg)?;
            need_go(&probes)?;
            let mut manager = go_manager(&capture, &mut probes);
            if let Some(exe) = &exe {
                manager
                    .attach_path(&mut probes, exe)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            if manager.attached() == 0 {
                anyhow::bail!(
                    "no Go uprobe could be attached to pid {:?}: not a Go program (Go 1.17+ on amd64)?",
                    capture.pids
                );
            }
            let renderer = render::Renderer {
                json: true,
                color: false,
                headers: false,
                bodies: false,
                redact: Redactor::new(true, &[]),
                clock_offset_ns: 0,
                last_second: Default::default(),
            };
            let mut sink = live::HttpSink::new(Filters::default(), renderer, io::sink(), None)
                .both_sides()
                .with_go(uprobes::join::Enricher::new(true));
            session::run(
                &mut probes,
                &mut sink,
                &capture.options(),
                &stop,
                Some(&mut manager),
            )?;
            let go = sink.take_go().unwrap_or_default();
            let pids = &capture.pids;
            let in_scope = |tgid: u32| pids.is_empty() || pids.contains(&tgid);
            let kernel: Vec<_> = go.kernel.into_iter().filter(|k| in_scope(k.tgid)).collect();
            let calls: Vec<_> = go
                .finished
                .into_iter()
                .filter(|c| in_scope(c.tgid))
                .collect();
            let report = uprobes::join::compare(&kernel, &calls);
            let mut stdout = io::stdout().lock();
            uprobes::compare::write(&report, &mut stdout)?;
            Ok(if report.agrees() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Record {
            output,
            max_bytes,
            proto,
            capture,
        }) => {
            let proto_http = match proto.as_str() {
                "http" => true,
                "any" => false,
                other => anyhow::bail!("--proto {other:?}: use http or any"),
            };
            let stop = session::stop_flag().context("installing signal handlers")?;
            let file = std::fs::File::create(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            let clock = Clock::new();
            let header = recording::Header {
                clock_offset_ns: clock.offset_ns() as i64,
                sniff_version: env!("CARGO_PKG_VERSION").to_string(),
                kernel: kernel_release(),
                hostname: hostname(),
                args: std::env::args().collect(),
            };
            let writer = recording::Writer::new(file, &header)?;
            let mut probes = load(&capture.config(proto_http))?;
            let mut sink = live::RecordSink::new(writer, max_bytes, stop.clone());
            session::run(&mut probes, &mut sink, &capture.options(), &stop, None)?;
            eprintln!(
                "sniff: wrote {} to {}",
                format::bytes_human(sink.bytes_written()),
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Topology {
            json,
            service_names,
            capture,
        }) => {
            let stop = session::stop_flag().context("installing signal handlers")?;
            let mut cfg = capture.config(false);
            cfg.go = true;
            cfg.go_only = true;
            let mut probes = load(&cfg)?;
            need_go(&probes)?;
            let mut manager = go_manager(&capture, &mut probes);
            let namer = uprobes::topology::HostNamer::new(service_names.into_iter().collect());
            let stdout = BufWriter::with_capacity(STDOUT_BUFFER, io::stdout().lock());
            let mut sink = uprobes::sink::TopologySink::new(Box::new(namer), json, stdout);
            session::run(
                &mut probes,
                &mut sink,
                &capture.options(),
                &stop,
                Some(&mut manager),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Replay { file, view }) => {
            replay::run(&file, &view.filters(), |offset| view.renderer(offset))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Commands made of Go uprobes cannot go on without them.
fn need_go(probes: &Probes) -> anyhow::Result<()> {
    if !probes.go_loaded() {
        anyhow::bail!("this needs Go uprobes, which could not be loaded (see above)");
    }
    Ok(())
}

/// Attaches Go uprobes to the running Go programs in scope (programs
/// started later are attached as they exec).
fn go_manager(capture: &CaptureArgs, probes: &mut Probes) -> uprobes::Manager {
    let mut manager = uprobes::Manager::new(uprobes::Scope {
        pids: capture.pids.clone(),
        comm: capture.comm.clone(),
    });
    manager.scan(probes);
    eprintln!(
        "sniff: Go uprobes on {} executable(s); Go programs started from now on are probed as they start",
        manager.attached()
    );
    manager
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::parse_ring;

    #[test]
    fn ring_size_must_be_a_power_of_two() {
        assert_eq!(parse_ring("8M"), Ok(8 << 20));
        assert_eq!(parse_ring("64K"), Ok(64 << 10));
        let e = parse_ring("3M").unwrap_err();
        assert!(e.contains("power of two") && e.ends_with("4M"), "{e}");
        assert!(parse_ring("100K").unwrap_err().ends_with("128K"));
        assert!(parse_ring("2G").is_err());
    }
}
