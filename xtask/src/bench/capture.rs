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
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use super::{Sniff, sniff_binary};

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
    let reads = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    Ok(writes + reads)
}

pub fn run(size: usize, seconds: f64, iterations: u64) -> anyhow::Result<()> {
    let bin = sniff_binary()?;
    println!("# capture benchmark: {size}-byte writes over loopback TCP");
    println!(
        "# sniff: {} --raw --json (stdout counted, discarded)",
        bin.display()
    );

    // Cost: alternate without / with, three rounds.
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut drops = 0u64;
    for _ in 0..3 {
        without.push(cost_sample(size, iterations)?);
        let sniff = Sniff::start(&bin, &raw_args(&["--ring-size", "64M"]))?;
        with.push(cost_sample(size, iterations)?);
        thread::sleep(Duration::from_millis(300));
        let (_, stats) = sniff.stop()?;
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
    for events_per_sec in [
        10_000.0, 25_000.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0,
    ] {
        let sniff = Sniff::start(&bin, &raw_args(&[]))?;
        let cpu0 = sniff.cpu_seconds();
        let t = Instant::now();
        let syscalls = paced_load(size, events_per_sec / 2.0, seconds)?;
        let elapsed = t.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(500));
        let cpu = sniff.cpu_seconds() - cpu0;
        let (_, stats) = sniff.stop()?;
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

/// `sniff --raw --json` on this process, plus `extra`.
fn raw_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--raw", "--json", "--pid", &std::process::id().to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
