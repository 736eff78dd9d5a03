//! `cargo xtask bench capture`: what kernel capture costs and how much it can
//! carry, measured with the real `sniff` binary against a load generator in
//! this process (loopback TCP, 4 KiB writes by default). sniff runs as
//! `sniff record` into a temporary file: the capture path (kernel programs,
//! ring buffer, reader) with the cheapest consumer, so what is measured is
//! capture, not JSON printing.
//!
//! - cost: a thread writes and reads back messages at a steady rate, and
//!   back to back; its own CPU time per write+read pair (user + kernel,
//!   which includes the eBPF programs run in its syscalls), with and
//!   without sniff, alternated in five rounds in one run. CPU time, not
//!   wall time: on 2 cores the sniff process competes with the load for the
//!   CPU, and wall time would count that as the syscall's cost. The kernel's own accounting of our programs
//!   (`kernel.bpf_stats_enabled`) is shown beside it.
//! - capacity: paced rates of captured syscalls, each with a fresh sniff;
//!   its final counters say whether anything was lost. The highest
//!   loss-free rate is the result.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{Sniff, sniff_binary};

fn pair() -> anyhow::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let c = TcpStream::connect(l.local_addr()?)?;
    let (s, _) = l.accept()?;
    c.set_nodelay(true)?;
    Ok((c, s))
}

/// CPU time (user + system) of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One thread writes `size` bytes and reads them back, `iterations` times at
/// `pairs_per_sec` (infinite: back to back); returns its CPU ns per pair.
fn cost_sample(size: usize, iterations: u64, pairs_per_sec: f64) -> anyhow::Result<f64> {
    let (mut c, mut s) = pair()?;
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    for _ in 0..1000 {
        c.write_all(&out)?;
        s.read_exact(&mut back)?;
    }
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    for i in 0..iterations {
        c.write_all(&out)?;
        s.read_exact(&mut back)?;
        if i % 64 == 63 && pairs_per_sec.is_finite() {
            let due = Duration::from_secs_f64((i + 1) as f64 / pairs_per_sec);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    Ok((thread_cpu_ns() - cpu) as f64 / iterations as f64)
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
    let reads = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    Ok(writes + reads)
}

/// Run time of sniff's data programs (all of them, whichever process ran
/// them), from `bpftool prog show` with `kernel.bpf_stats_enabled` on.
fn bpf_prog_time() -> u64 {
    let Ok(out) = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
    else {
        return 0;
    };
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    progs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("data_")))
        .map(|p| p["run_time_ns"].as_u64().unwrap_or(0))
        .sum()
}

/// Turns on the kernel's per-program run-time accounting while alive.
struct BpfStats(String);

impl BpfStats {
    fn enable() -> BpfStats {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(path).unwrap_or_else(|_| "0".into());
        let _ = std::fs::write(path, "1");
        BpfStats(old.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// "sniff: stopped. N events, X captured; ... M events dropped ..." →
/// (events, dropped).
fn parse_summary(line: &str) -> anyhow::Result<(u64, u64)> {
    let number_before = |word: &str| -> Option<u64> {
        let i = line.find(word)?;
        line[..i].split_whitespace().last()?.parse().ok()
    };
    let events = number_before(" events, ").context("no event count")?;
    let dropped = number_before(" events dropped").unwrap_or(0);
    Ok((events, dropped))
}

pub fn run(size: usize, seconds: f64, iterations: u64) -> anyhow::Result<()> {
    let bin = sniff_binary()?;
    let dir = std::env::temp_dir().join(format!("sniff-bench-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&bin, &dir, size, seconds, iterations);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    bin: &Path,
    dir: &Path,
    size: usize,
    seconds: f64,
    iterations: u64,
) -> anyhow::Result<()> {
    let file = dir.join("capture.sniff");
    // The cost samples record to /dev/null: back to back at 4 KiB the load
    // offers about 750 MB/s, more than writing a file on tmpfs keeps up
    // with, and dropped events would make the "with" samples cheaper. The
    // capacity steps write a real file.
    let args = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> = ["record", "-o"].iter().map(|s| s.to_string()).collect();
        v.push(out.display().to_string());
        v.extend(
            ["--proto", "any", "--pid", &std::process::id().to_string()]
                .iter()
                .map(|s| s.to_string()),
        );
        v
    };
    let null = Path::new("/dev/null");
    println!("# capture benchmark: {size}-byte writes over loopback TCP");
    println!(
        "# sniff: {} record -o /dev/null (cost) or FILE (capacity) --proto any --pid <this process>",
        bin.display()
    );

    // Cost: alternate without / with, five rounds, each sample both paced
    // at a rate sniff keeps up with (a loss would make the "with" case
    // cheaper, not dearer) and back to back (hot caches: steadier).
    let rate = 10_000.0;
    const ROUNDS: usize = 5;
    let sample = || -> anyhow::Result<[f64; 2]> {
        Ok([
            cost_sample(size, iterations, rate)?,
            cost_sample(size, iterations, f64::INFINITY)?,
        ])
    };
    let mut without = [Vec::new(), Vec::new()];
    let mut added = [Vec::new(), Vec::new()];
    let mut lost = 0;
    for _ in 0..ROUNDS {
        let base = sample()?;
        let sniff = Sniff::start(bin, &args(null))?;
        let with = sample()?;
        let (_, dropped) = parse_summary(&sniff.stop_summary()?)?;
        lost += dropped;
        for k in 0..2 {
            without[k].push(base[k]);
            // Two captured syscalls per pair.
            added[k].push((with[k] - base[k]) / 2.0);
        }
    }
    // Then once more with the kernel's per-program accounting on (it costs
    // a little itself, so it stays off for the samples above). All program
    // time in the window is charged to the load's captured syscalls (2 per
    // pair): an upper bound when other processes run syscalls meanwhile.
    let mut in_kernel = Vec::new();
    {
        let _stats = BpfStats::enable();
        let sniff = Sniff::start(bin, &args(null))?;
        let ns0 = bpf_prog_time();
        cost_sample(size, iterations, rate)?;
        let ns1 = bpf_prog_time();
        sniff.stop_summary()?;
        in_kernel.push(ns1.saturating_sub(ns0) as f64 / (2 * iterations) as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    for (k, how) in [
        (0, format!("at {rate:.0} pairs/s")),
        (1, "back to back".into()),
    ] {
        let base = median(&mut without[k]);
        let mid = median(&mut added[k]);
        let (lo, hi) = (added[k][0], added[k][ROUNDS - 1]);
        println!(
            "cost: {iterations} write+read pairs {how}: load thread CPU {base:.0} ns per pair without sniff; added per captured syscall {mid:.0} ns (median of {ROUNDS} rounds, {lo:.0}-{hi:.0})"
        );
    }
    println!(
        "cost: our eBPF programs' run time {:.0} ns per captured syscall (enter + exit, kernel.bpf_stats_enabled, paced){}",
        median(&mut in_kernel),
        if lost > 0 {
            format!(" [sniff dropped {lost} events]")
        } else {
            String::new()
        }
    );

    // Capacity: paced rates, each with a fresh sniff.
    println!("capacity: events/s offered -> captured, MB/s, loss, sniff CPU");
    let mut best = 0.0f64;
    for events_per_sec in [
        10_000.0, 25_000.0, 50_000.0, 75_000.0, 100_000.0, 150_000.0, 200_000.0,
    ] {
        let sniff = Sniff::start(bin, &args(&file))?;
        let cpu0 = sniff.cpu_seconds();
        let t = Instant::now();
        let syscalls = paced_load(size, events_per_sec / 2.0, seconds)?;
        let elapsed = t.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(500));
        let cpu = sniff.cpu_seconds() - cpu0;
        let (events, dropped) = parse_summary(&sniff.stop_summary()?)?;
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        let rate = events as f64 / elapsed;
        println!(
            "capacity: {:>7.0} -> {:>7.0} events/s, {:>6.1} MB/s recorded, {} lost of {} syscalls, sniff CPU {:.0}%",
            events_per_sec,
            rate,
            bytes as f64 / elapsed / 1e6,
            dropped,
            syscalls,
            100.0 * cpu / elapsed,
        );
        let _ = std::fs::remove_file(&file);
        if dropped == 0 {
            best = best.max(rate);
        } else {
            break;
        }
    }
    println!("capacity: highest loss-free rate measured: {best:.0} events/s of {size} B");
    Ok(())
}
