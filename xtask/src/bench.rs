//! `cargo xtask bench capture`: what kernel capture costs and how much it can
//! carry, measured with the real `sniff` binary against a load generator in
//! this process (loopback TCP, 4 KiB writes by default).
//!
//! - cost: ns per write+read pair with and without sniff attached,
//!   alternated in one run; the difference over 2 syscalls is the added cost
//!   per captured syscall.
//! - capacity: paced rates of captured syscalls; for each, sniff's own
//!   counters say whether anything was lost. The highest loss-free rate is
//!   the result.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
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
        #[arg(long, default_value_t = 200_000)]
        iterations: u64,
    },
}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Capture {
            size,
            seconds,
            iterations,
        } => capture(size, seconds, iterations),
    }
}

fn sniff_binary() -> anyhow::Result<std::path::PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "collector"])
        .status()
        .context("building sniff")?;
    if !status.success() {
        bail!("building sniff failed");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    Ok(root.join("target/release/sniff"))
}

/// A running `sniff --raw --json` whose stdout is counted and discarded.
struct Sniff {
    child: Child,
    counter: thread::JoinHandle<(u64, u64, String)>,
}

impl Sniff {
    fn start(bin: &std::path::Path, extra: &[&str]) -> anyhow::Result<Sniff> {
        let me = std::process::id().to_string();
        let mut child = Command::new(bin)
            .args(["--raw", "--json", "--pid", &me, "--stats-interval", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sniff")?;
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        let counter = thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            let (mut lines, mut bytes) = (0u64, 0u64);
            let mut last_stats = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                lines += 1;
                bytes += line.len() as u64;
                if line.starts_with("{\"type\":\"stats\"") || line.contains("\"type\":\"stats\"") {
                    last_stats = line.clone();
                }
                line.clear();
            }
            (lines, bytes, last_stats)
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("capturing") {
                    let _ = tx.send(());
                }
                line.clear();
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .context("sniff did not start (are you root?)")?;
        Ok(Sniff { child, counter })
    }

    /// CPU seconds sniff used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
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

    /// Stops sniff; returns (lines, bytes, final stats JSON).
    fn stop(mut self) -> anyhow::Result<(u64, u64, serde_json::Value)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        let (lines, bytes, stats) = self.counter.join().map_err(|_| anyhow::anyhow!("counter"))?;
        let stats: serde_json::Value =
            serde_json::from_str(&stats).context("sniff printed no final stats line")?;
        Ok((lines, bytes, stats))
    }
}

fn pair() -> anyhow::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let c = TcpStream::connect(l.local_addr()?)?;
    let (s, _) = l.accept()?;
    c.set_nodelay(true)?;
    Ok((c, s))
}

/// ns per (write `size` bytes, read them back) on one thread.
fn cost_sample(size: usize, iterations: u64) -> anyhow::Result<f64> {
    let (mut c, mut s) = pair()?;
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    // Warm up.
    for _ in 0..1000 {
        c.write_all(&out)?;
        s.read_exact(&mut back)?;
    }
    let t = Instant::now();
    for _ in 0..iterations {
        c.write_all(&out)?;
        s.read_exact(&mut back)?;
    }
    Ok(t.elapsed().as_nanos() as f64 / iterations as f64)
}

/// Writes `size`-byte messages at `pairs_per_sec` for `seconds` while another
/// thread reads them; returns captured syscalls attempted (writes + reads).
fn paced_load(size: usize, pairs_per_sec: f64, seconds: f64) -> anyhow::Result<u64> {
    let (mut c, mut s) = pair()?;
    let reader = thread::spawn(move || -> u64 {
        let mut buf = vec![0u8; size];
        let mut reads = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => reads += 1,
            }
        }
        reads
    });
    let out = vec![0xa5u8; size];
    let start = Instant::now();
    let mut writes = 0u64;
    let end = Duration::from_secs_f64(seconds);
    while start.elapsed() < end {
        let due = (start.elapsed().as_secs_f64() * pairs_per_sec) as u64;
        while writes < due {
            c.write_all(&out)?;
            writes += 1;
        }
        thread::sleep(Duration::from_micros(200));
    }
    drop(c);
    let reads = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
    Ok(writes + reads)
}

fn capture(size: usize, seconds: f64, iterations: u64) -> anyhow::Result<()> {
    let bin = sniff_binary()?;
    println!("# capture benchmark: {size}-byte writes over loopback TCP");
    println!("# sniff: {} --raw --json (stdout counted, discarded)", bin.display());

    // Cost: alternate without / with, three rounds.
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut drops = 0u64;
    for _ in 0..3 {
        without.push(cost_sample(size, iterations)?);
        let sniff = Sniff::start(&bin, &["--ring-size", "64M"])?;
        with.push(cost_sample(size, iterations)?);
        thread::sleep(Duration::from_millis(300));
        let (_, _, stats) = sniff.stop()?;
        drops += stats["ringbuf_drops"].as_u64().unwrap_or(0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut without), median(&mut with));
    println!("cost: write+read pair {a:.0} ns without, {b:.0} ns with sniff (median of 3)");
    println!(
        "cost: added per captured syscall: {:.0} ns ({:.2}x per pair){}",
        (b - a) / 2.0,
        b / a,
        if drops > 0 {
            format!(" [sniff dropped {drops} events while the loop ran flat out]")
        } else {
            String::new()
        }
    );

    // Capacity: paced rates, each with a fresh sniff.
    println!("capacity: events/s offered -> captured, MB/s, loss, sniff CPU");
    let mut best = 0.0f64;
    for events_per_sec in [10_000.0, 25_000.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0] {
        let sniff = Sniff::start(&bin, &[])?;
        let cpu0 = sniff.cpu_seconds();
        let t = Instant::now();
        let syscalls = paced_load(size, events_per_sec / 2.0, seconds)?;
        let elapsed = t.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(500));
        let cpu = sniff.cpu_seconds() - cpu0;
        let (_, _, stats) = sniff.stop()?;
        let events = stats["events"].as_u64().unwrap_or(0);
        let bytes = stats["bytes"].as_u64().unwrap_or(0);
        let lost = stats["ringbuf_drops"].as_u64().unwrap_or(0);
        let rate = events as f64 / elapsed;
        println!(
            "capacity: {:>7.0} -> {:>7.0} events/s, {:>6.1} MB/s, {} lost of {} syscalls, sniff CPU {:.0}%",
            events_per_sec,
            rate,
            bytes as f64 / elapsed / 1e6,
            lost,
            syscalls,
            100.0 * cpu / elapsed,
        );
        if lost == 0 {
            best = best.max(rate);
        } else {
            break;
        }
    }
    println!("capacity: highest loss-free rate measured: {best:.0} events/s of {size} B");
    Ok(())
}
