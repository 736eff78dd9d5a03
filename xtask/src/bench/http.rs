//! `cargo xtask bench http`: the product under load.
//!
//! A local nginx (one worker, access log off) serves a 612-byte page over
//! HTTP/1.1 (wrk, keep-alive) and h2c (h2load). Each round runs the load
//! without sniff, with `sniff --proto http --port <nginx port>` (the text
//! output for people), with the same and `--json`, attached but capturing
//! nothing (`--pid` of this benchmark process, which serves no HTTP: every
//! program returns at its first check, so this is the floor the syscall
//! tracepoints themselves set), and without sniff again; it reports the throughput ratio (against the mean of the two runs
//! without), sniff's CPU per exchange, and completeness (exchanges sniff
//! reported with a status / responses the load tool counted). sniff's
//! output goes to a file that is read only after it stops. Then: sniff's RSS with N idle tracked connections,
//! and `sniff replay` of a large pcap against `tshark` on the same file.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{Sniff, sniff_binary};

const PAGE: &[u8] = &[b'x'; 612];

/// nginx in a scratch directory, one process (no master: killing it
/// leaves nothing behind), killed on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    h1: u16,
    h2: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port}")
}

impl Nginx {
    fn start() -> anyhow::Result<Nginx> {
        let dir = std::env::temp_dir().join(format!("sniff-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("www"))?;
        std::fs::write(dir.join("www/index.html"), PAGE)?;
        let (h1, h2) = (free_port()?, free_port()?);
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             worker_rlimit_nofile 65536;\n\
             events {{ worker_connections 30000; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp;\n\
               keepalive_requests 10000000;\n\
               keepalive_timeout 600s;\n\
               server {{ listen 127.0.0.1:{h1}; root {d}/www; }}\n\
               server {{ listen 127.0.0.1:{h2} http2; root {d}/www; }}\n\
             }}\n",
            d = dir.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx (./x setup installs it)")?;
        let n = Nginx { child, dir, h1, h2 };
        wait_port(h1)?;
        wait_port(h2)?;
        Ok(n)
    }
}

/// Requests completed and requests per second, as the load tool said.
struct Load {
    requests: u64,
    rps: f64,
}

fn wrk(port: u16, seconds: u64) -> anyhow::Result<Load> {
    let out = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{seconds}s")])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .context("running wrk (./x setup installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "  123456 requests in 10.00s, 88.31MB read" / "Requests/sec:  12345.67"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("wrk printed no request count")?;
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(e) = errors {
        eprintln!("wrk: {}", e.trim());
    }
    Ok(Load { requests, rps })
}

fn h2load(port: u16, seconds: u64) -> anyhow::Result<Load> {
    let out = Command::new("h2load")
        .args(["-c8", "-m10", "-t1", "-D", &seconds.to_string()])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .context("running h2load (nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "finished in 10.00s, 23456.70 req/s, 15.3MB/s"
    // "requests: 234567 total, 234567 started, 234567 done, 234567 succeeded, 0 failed, ..."
    let rps = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim().trim_end_matches(" req/s").parse().ok())
        .context("h2load printed no req/s")?;
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .and_then(|l| l.split(',').find(|p| p.contains("succeeded")))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("h2load printed no request count")?;
    Ok(Load { requests, rps })
}

pub fn run(seconds: u64, rounds: usize, idle: usize) -> anyhow::Result<()> {
    let bin = sniff_binary()?;
    raise_fd_limit();
    let nginx = Nginx::start()?;
    println!("# http benchmark: nginx 1 worker, 612-byte page, {seconds} s runs, {rounds} rounds");
    for (label, port) in [
        ("HTTP/1.1 (wrk -t1 -c16)", nginx.h1),
        ("HTTP/2 (h2load -c8 -m10)", nginx.h2),
    ] {
        let load = |p| {
            if port == nginx.h1 {
                wrk(p, seconds)
            } else {
                h2load(p, seconds)
            }
        };
        // The main command (text for people), `--json`, and the floor:
        // everything attached, nothing captured.
        let me = std::process::id().to_string();
        let outputs: [(&str, &[&str]); 3] = [
            ("text", &[]),
            ("--json", &["--json"]),
            ("attached, capturing nothing", &["--pid", &me]),
        ];
        let floor = outputs.len() - 1;
        let mut ratios = vec![Vec::new(); outputs.len()];
        for round in 0..rounds {
            // Without sniff before and after: the load's own rate drifts by
            // 10-15% between runs on this VM.
            let before = load(port)?;
            let mut runs = Vec::new();
            for (_, extra) in outputs {
                let args: Vec<String> = ["--proto", "http", "--port", &port.to_string()]
                    .iter()
                    .chain(extra)
                    .map(|s| s.to_string())
                    .collect();
                let sniff = Sniff::start(&bin, &args)?;
                let cpu0 = sniff.cpu_seconds();
                let with = load(port)?;
                thread::sleep(Duration::from_millis(1500));
                let cpu = sniff.cpu_seconds() - cpu0;
                runs.push((with, cpu, sniff.stop()?));
            }
            let after = load(port)?;
            let base = (before.rps + after.rps) / 2.0;
            for (i, (with, cpu, (counted, stats, summary))) in runs.into_iter().enumerate() {
                let ratio = with.rps / base;
                ratios[i].push(ratio);
                let throughput = format!(
                    "{label} round {} {}: {:.0} req/s without (mean of {:.0} and {:.0}), \
                     {:.0} with sniff (ratio {ratio:.3})",
                    round + 1,
                    outputs[i].0,
                    base,
                    before.rps,
                    after.rps,
                    with.rps,
                );
                if i == floor {
                    // Nothing is captured: nothing to count.
                    println!("{throughput}");
                    continue;
                }
                let loss = if stats.is_null() {
                    // Text output: the summary line says what was lost.
                    summary
                        .split_once("; ")
                        .map_or(summary.as_str(), |(_, l)| l)
                        .to_string()
                } else {
                    format!(
                        "ring drops {}, lossy exchanges {}",
                        stats["ringbuf_drops"], stats["lossy_exchanges"]
                    )
                };
                println!(
                    "{throughput}; sniff reported {} of {} responses ({:.2}%), \
                     {:.1} µs CPU per exchange; {loss}",
                    counted.exchanges,
                    with.requests,
                    100.0 * counted.exchanges as f64 / with.requests.max(1) as f64,
                    1e6 * cpu / counted.exchanges.max(1) as f64,
                );
            }
        }
        for (i, r) in ratios.iter_mut().enumerate() {
            r.sort_by(f64::total_cmp);
            println!(
                "{label} {}: median throughput ratio {:.3}",
                outputs[i].0,
                r[r.len() / 2]
            );
        }
    }

    idle_memory(&bin, nginx.h1, idle)?;
    replay_vs_tshark(&bin, nginx.h1)?;
    Ok(())
}

fn raise_fd_limit() {
    let lim = libc::rlimit {
        rlim_cur: 200_000,
        rlim_max: 200_000,
    };
    // SAFETY: plain syscall with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// sniff's RSS with `n` keep-alive connections that each made one request
/// and then sit idle (all tracked: both ends are captured).
fn idle_memory(bin: &Path, port: u16, n: usize) -> anyhow::Result<()> {
    let args: Vec<String> = ["--json", "--port", &port.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sniff = Sniff::start(bin, &args)?;
    thread::sleep(Duration::from_millis(500));
    let before = sniff.rss_bytes();
    let request = format!("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut conns = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4096];
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(request.as_bytes())?;
        // Head and 612-byte body arrive together on loopback.
        let mut got = 0;
        while got < PAGE.len() {
            let k = s.read(&mut buf)?;
            if k == 0 {
                break;
            }
            got += k;
        }
        conns.push(s);
    }
    thread::sleep(Duration::from_secs(3));
    let after = sniff.rss_bytes();
    println!(
        "memory: sniff RSS {:.1} MB with {n} idle tracked connections ({} tracked sockets: both ends), {:.1} MB before; of it heap and stacks (RssAnon) {:.1} MB, mapped BPF maps (ring buffer) and binary (RssFile + RssShmem) {:.1} MB",
        after as f64 / 1e6,
        2 * n,
        before as f64 / 1e6,
        sniff.status_bytes("RssAnon:") as f64 / 1e6,
        (sniff.status_bytes("RssFile:") + sniff.status_bytes("RssShmem:")) as f64 / 1e6,
    );
    drop(conns);
    sniff.stop_summary()?;
    Ok(())
}

/// Records a few seconds of wrk traffic with tcpdump, then times
/// `sniff replay` and `tshark` decoding the same file.
fn replay_vs_tshark(bin: &Path, port: u16) -> anyhow::Result<()> {
    let pcap = std::env::temp_dir().join(format!("sniff-bench-{}.pcap", std::process::id()));
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-s", "0", "-B", "65536", "-w"])
        .arg(&pcap)
        .args(["tcp", "port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tcpdump")?;
    thread::sleep(Duration::from_secs(1));
    let load = wrk(port, 3)?;
    thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    dump.wait()?;
    let size = std::fs::metadata(&pcap)?.len();

    let t = Instant::now();
    let out = Command::new(bin)
        .arg("replay")
        .arg(&pcap)
        .arg("--json")
        .stderr(Stdio::null())
        .output()?;
    let sniff_time = t.elapsed().as_secs_f64();
    let sniff_exchanges = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"exchange\"") && !l.contains("\"status\":null"))
        .count();

    let t = Instant::now();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-Y",
            "http.response",
            "-T",
            "fields",
            "-e",
            "http.response.code",
        ])
        .stderr(Stdio::null())
        .output()
        .context("running tshark")?;
    let tshark_time = t.elapsed().as_secs_f64();
    let tshark_responses = String::from_utf8_lossy(&out.stdout).lines().count();
    let _ = std::fs::remove_file(&pcap);
    println!(
        "replay: {:.0} MB pcap of {} wrk requests: sniff replay --json {:.2} s ({} exchanges), \
         tshark -Y http.response {:.2} s ({} responses): tshark/sniff time ratio {:.1}",
        size as f64 / 1e6,
        load.requests,
        sniff_time,
        sniff_exchanges,
        tshark_time,
        tshark_responses,
        tshark_time / sniff_time,
    );
    Ok(())
}
