//! `sniff`: see what the processes on this machine say to each other over
//! sockets, from the kernel, without touching them.

mod btf;
mod clock;
mod events;
mod format;
mod loader;
mod raw;
mod session;

use std::{
    io::{self, BufWriter, Write},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::Parser;
use probe_common::MAX_CAP_BYTES;

use crate::{
    clock::Clock,
    events::Event,
    format::parse_size,
    loader::{CaptureConfig, KernelStats, LoadError, Probes},
    raw::RawPrinter,
    session::Sink,
};

const ABOUT: &str = "See what the processes on this machine say to each other over sockets, \
straight from the kernel (eBPF on syscall tracepoints), without touching them.";

const AFTER_HELP: &str = "\
Examples:
  sniff --raw                         every socket read/write on the machine
  sniff --raw --port 8000             only connections to or from port 8000
  sniff --raw --comm curl             only processes named curl
  sniff --raw --json --pid 1234       one JSON object per event, with the payload (base64)
  sniff --raw --duration 10           stop after 10 seconds

Loss is never silent: anything dropped or cut short is counted, reported on stderr
when it happens and at the end, and in --json output as {\"type\":\"stats\",...} lines.
Needs root, or CAP_BPF and CAP_PERFMON.";

#[derive(Parser, Debug)]
#[command(name = "sniff", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// Print every captured socket event: time, process, fd, direction,
    /// syscall, length and a preview of the bytes.
    #[arg(long)]
    raw: bool,

    /// One JSON object per line instead of text (all fields, payload in base64).
    #[arg(long)]
    json: bool,

    /// Only these processes (repeat, or separate with commas).
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<u32>,

    /// Only processes with this name (as in /proc/PID/comm; first 15 bytes).
    #[arg(short, long, value_name = "NAME")]
    comm: Option<String>,

    /// Only connections with this local or remote port (repeat, or commas).
    #[arg(long = "port", value_name = "PORT", value_delimiter = ',')]
    ports: Vec<u16>,

    /// Capture Unix domain sockets too (off by default: they are busy and
    /// rarely HTTP).
    #[arg(long)]
    unix: bool,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,

    /// Bytes copied per syscall; the rest is counted, not copied (e.g. 64K, 2M;
    /// at most 2M).
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_cap)]
    max_bytes_per_syscall: u32,

    /// Kernel-to-user ring buffer size (a power of two; e.g. 16M, 64M).
    /// Bigger absorbs longer bursts.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_ring)]
    ring_size: u32,

    /// Bytes of payload shown per event in --raw text output.
    #[arg(long, value_name = "BYTES", default_value_t = 80)]
    preview: usize,

    /// Seconds between loss reports on stderr (only when something was lost)
    /// and stats lines in --json output; 0 turns them off.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    stats_interval: f64,
}

fn parse_cap(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if n == 0 || n > MAX_CAP_BYTES as u64 {
        return Err(format!("must be between 1 and {} bytes", MAX_CAP_BYTES));
    }
    Ok(n as u32)
}

fn parse_ring(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !(64 << 10..=1 << 30).contains(&n) {
        return Err("must be between 64K and 1G".into());
    }
    Ok(n as u32)
}

impl<W: Write> Sink for RawPrinter<W> {
    fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    if !cli.raw {
        anyhow::bail!("say what to show: --raw prints every captured socket event (see --help)");
    }
    let cfg = CaptureConfig {
        pids: cli.pids.clone(),
        comm: cli.comm.clone(),
        ports: cli.ports.clone(),
        unix: cli.unix,
        proto_http: false,
        cap_bytes: cli.max_bytes_per_syscall,
        ring_bytes: cli.ring_size,
    };
    let stop = session::stop_flag().context("installing signal handlers")?;
    let started = std::time::Instant::now();
    let mut probes = Probes::load(&cfg)?;
    eprintln!(
        "sniff: capturing ({} tracepoints attached in {:.2} s). Ctrl-C to stop.",
        probes.attached,
        started.elapsed().as_secs_f64()
    );
    let stdout = io::stdout().lock();
    let mut printer = RawPrinter::new(BufWriter::new(stdout), cli.json, cli.preview, Clock::new());
    let opts = session::Options {
        duration: cli.duration.map(Duration::from_secs_f64),
        stats_interval: (cli.stats_interval > 0.0)
            .then(|| Duration::from_secs_f64(cli.stats_interval)),
        report: true,
    };
    session::run(&mut probes, &mut printer, &opts, &stop)?;
    Ok(())
}
