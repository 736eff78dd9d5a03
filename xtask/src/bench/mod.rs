//! `cargo xtask bench ...`: measurements with the real `sniff` binary.
//! Figures go to BENCHMARKS.md by hand, with the command that made them.

mod capture;
mod http;

use std::{
    io::{BufRead, BufReader},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Which {
    /// Kernel capture: added cost per captured syscall, and the highest
    /// event rate captured with zero loss (`sniff --raw --json`).
    Capture {
        /// Bytes per write (and per read).
        #[arg(long, default_value_t = 4096)]
        size: usize,
        /// Seconds per capacity step.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Write+read pairs per cost sample.
        #[arg(long, default_value_t = 50_000)]
        iterations: u64,
    },
    /// `sniff --proto http` against a saturated nginx (wrk for HTTP/1.1,
    /// h2load for HTTP/2): throughput with and without sniff, sniff's CPU
    /// per exchange, completeness; RSS with 10k idle connections; and
    /// `sniff replay` of a large pcap against tshark.
    Http {
        /// Seconds per load run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Alternating rounds (without, with sniff).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Idle connections for the memory measurement.
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
    },
}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Capture {
            size,
            seconds,
            iterations,
        } => capture::run(size, seconds, iterations),
        Which::Http {
            seconds,
            rounds,
            idle,
        } => http::run(seconds, rounds, idle),
    }
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf())
}

fn sniff_binary() -> anyhow::Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "collector"])
        .status()
        .context("building sniff")?;
    if !status.success() {
        bail!("building sniff failed");
    }
    Ok(workspace_root()?.join("target/release/sniff"))
}

/// A running `sniff ... --json` whose stdout is counted and discarded.
struct Sniff {
    child: Child,
    counter: thread::JoinHandle<Counted>,
    /// The last `sniff: stopped. ...` line of stderr.
    summary: thread::JoinHandle<String>,
}

#[derive(Default)]
struct Counted {
    lines: u64,
    bytes: u64,
    /// Lines with `"type":"exchange"` and a status.
    exchanges: u64,
    last_stats: String,
}

impl Sniff {
    fn start(bin: &Path, args: &[String]) -> anyhow::Result<Sniff> {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--stats-interval", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sniff")?;
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        // A large pipe and a cheap reader: at tens of thousands of 4 KiB
        // events a second, a slow reader here would block sniff's output
        // and be measured as sniff's loss.
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only keeps 64 KiB.
        unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        let counter = thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            let mut c = Counted::default();
            let mut line = Vec::new();
            let stats = memchr::memmem::Finder::new(b"\"type\":\"stats\"");
            let exchange = memchr::memmem::Finder::new(b"\"type\":\"exchange\"");
            let no_status = memchr::memmem::Finder::new(b"\"status\":null");
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                c.lines += 1;
                c.bytes += line.len() as u64;
                if stats.find(&line).is_some() {
                    c.last_stats = String::from_utf8_lossy(&line).into_owned();
                } else if exchange.find(&line).is_some() && no_status.find(&line).is_none() {
                    c.exchanges += 1;
                }
                line.clear();
            }
            c
        });
        let (tx, rx) = mpsc::channel();
        let summary = thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            let mut summary = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("capturing") {
                    let _ = tx.send(());
                }
                if line.starts_with("sniff: stopped.") {
                    summary = line.trim().to_string();
                }
                line.clear();
            }
            summary
        });
        rx.recv_timeout(Duration::from_secs(60))
            .context("sniff did not start (are you root?)")?;
        Ok(Sniff {
            child,
            counter,
            summary,
        })
    }

    /// CPU seconds sniff used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// Resident memory now, in bytes.
    fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// A memory line of /proc/PID/status (e.g. `RssAnon:`), in bytes.
    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Stops sniff; returns its final `sniff: stopped. ...` line (for runs
    /// whose stdout carries no JSON stats, such as `sniff record`).
    fn stop_summary(mut self) -> anyhow::Result<String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        self.summary
            .join()
            .map_err(|_| anyhow::anyhow!("stderr reader"))
    }

    /// Stops sniff; returns what it printed and its final stats.
    fn stop(mut self) -> anyhow::Result<(Counted, serde_json::Value)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        let counted = self
            .counter
            .join()
            .map_err(|_| anyhow::anyhow!("counter"))?;
        let stats = serde_json::from_str(&counted.last_stats)
            .context("sniff printed no final stats line")?;
        Ok((counted, stats))
    }
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}
