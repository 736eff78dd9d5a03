//! `cargo xtask bench ...`: measurements with the real `sniff` binary.
//! Figures go to BENCHMARKS.md by hand, with the command that made them.

mod capture;
mod http;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
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

/// The sniff under test: `target/release/sniff`, built now, or the binary
/// named by `SNIFF_BIN` (to compare two builds on the same machine state,
/// e.g. one copied aside before a change).
fn sniff_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SNIFF_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "collector"])
        .status()
        .context("building sniff")?;
    if !status.success() {
        bail!("building sniff failed");
    }
    Ok(workspace_root()?.join("target/release/sniff"))
}

/// A running `sniff ...` whose stdout goes to a scratch file, counted when
/// it has stopped. Nothing reads the output meanwhile: on 2 cores a reader
/// competes with the load and with sniff, and was once 40% of a core (a
/// line counter in a debug build), charged to sniff as lost throughput.
struct Sniff {
    child: Child,
    output: PathBuf,
    /// Reads stderr; gives its last `sniff: stopped. ...` line.
    summary: Option<thread::JoinHandle<String>>,
}

/// What sniff printed.
#[derive(Default)]
struct Counted {
    /// Exchanges with a status: JSON lines with `"type":"exchange"` and a
    /// status, or text blocks whose first line shows one (`→ 200 ...`).
    exchanges: u64,
    /// The last `"type":"stats"` line (JSON output only).
    last_stats: String,
}

impl Counted {
    fn of(out: &[u8]) -> Counted {
        let mut c = Counted::default();
        let exchange = memchr::memmem::Finder::new(b"\"type\":\"exchange\"");
        let no_status = memchr::memmem::Finder::new(b"\"status\":null");
        let stats = memchr::memmem::Finder::new(b"\"type\":\"stats\"");
        let arrow = memchr::memmem::Finder::new(" → ".as_bytes());
        for line in out.split(|&b| b == b'\n') {
            if line.first() == Some(&b'{') {
                if exchange.find(line).is_some() {
                    c.exchanges += u64::from(no_status.find(line).is_none());
                } else if stats.find(line).is_some() {
                    c.last_stats = String::from_utf8_lossy(line).into_owned();
                }
            } else if line.first().is_some_and(u8::is_ascii_digit)
                && let Some(i) = arrow.find(line)
            {
                // `HH:MM:SS.micros METHOD TARGET VERSION → STATUS REASON ...`
                let after = &line[i + " → ".len()..];
                c.exchanges += u64::from(after.first().is_some_and(u8::is_ascii_digit));
            }
        }
        c
    }
}

impl Sniff {
    fn start(bin: &Path, args: &[String]) -> anyhow::Result<Sniff> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        // In memory (tmpfs) when there is one: writing a file on disk would
        // add the kernel's writeback to the machine's load.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let output = dir.join(format!(
            "sniff-bench-out-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&output)
            .with_context(|| format!("creating {}", output.display()))?;
        let mut child = Command::new(bin)
            .args(args)
            .args(["--stats-interval", "0"])
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sniff")?;
        let stderr = child.stderr.take().context("stderr")?;
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
        let sniff = Sniff {
            child,
            output,
            summary: Some(summary),
        };
        rx.recv_timeout(Duration::from_secs(60))
            .context("sniff did not start (are you root?)")?;
        Ok(sniff)
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

    /// Stops sniff; returns its final `sniff: stopped. ...` line.
    fn stop_summary(mut self) -> anyhow::Result<String> {
        self.end()?;
        self.summary_line()
    }

    /// Stops sniff; returns what it printed (JSON output: with its final
    /// stats; text output: `Value::Null`) and the final stderr line.
    fn stop(mut self) -> anyhow::Result<(Counted, serde_json::Value, String)> {
        self.end()?;
        let out = std::fs::read(&self.output)
            .with_context(|| format!("reading {}", self.output.display()))?;
        let counted = Counted::of(&out);
        let stats = if counted.last_stats.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&counted.last_stats).context("sniff's final stats line")?
        };
        let summary = self.summary_line()?;
        Ok((counted, stats, summary))
    }

    fn end(&mut self) -> anyhow::Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        Ok(())
    }

    fn summary_line(&mut self) -> anyhow::Result<String> {
        let handle = self.summary.take().context("stderr already read")?;
        handle.join().map_err(|_| anyhow::anyhow!("stderr reader"))
    }
}

impl Drop for Sniff {
    fn drop(&mut self) {
        // A run that failed half-way must not leave sniff running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.end();
        }
        let _ = std::fs::remove_file(&self.output);
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
