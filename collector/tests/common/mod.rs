//! Running the real `sniff` binary from tests: start it, wait until its
//! programs are attached, stop it with a signal, and collect its JSON lines.
//!
//! Kernel tests need root (or CAP_BPF + CAP_PERFMON). Without them a test
//! says why and returns early, except under `CI=true`, where it fails.

#![allow(dead_code)]

pub mod account;
pub mod go;
pub mod peers;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard, mpsc},
    thread,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::Value;

pub const SNIFF: &str = env!("CARGO_BIN_EXE_sniff");

/// Kernel tests run one at a time: each loads its own programs, and tests
/// filtered by this process's pid would see each other's traffic.
static KERNEL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    KERNEL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// True if this process may load eBPF. Otherwise prints why, and under CI
/// panics instead.
pub fn can_load_ebpf() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = "kernel test needs root (or CAP_BPF and CAP_PERFMON) to load eBPF";
    if in_ci() {
        panic!("{msg}; CI must run tests as root");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

pub struct Sniff {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines already taken from `lines` by [`Sniff::wait_for_lines`].
    seen: Vec<String>,
    stderr: Option<thread::JoinHandle<String>>,
    /// stderr lines as they come (all of them are also in the final
    /// [`Output::stderr`]).
    err_lines: mpsc::Receiver<String>,
    err_seen: Vec<String>,
}

/// A test that panics before stopping sniff must not leave it running.
impl Drop for Sniff {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Sniff {
    /// Starts `sniff ARGS` and waits until it reports its programs attached.
    pub fn start(args: &[&str]) -> Sniff {
        let mut child = Command::new(SNIFF)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sniff");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("capturing") {
                    let _ = ready_tx.send(());
                }
                let _ = err_tx.send(line.clone());
                all.push_str(&line);
                line.clear();
            }
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            all.push_str(&rest);
            all
        });
        let mut sniff = Sniff {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr: Some(stderr),
            err_lines: err_rx,
            err_seen: Vec::new(),
        };
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = sniff.child.kill();
            let status = sniff.child.wait().ok();
            let err = sniff.take_stderr();
            panic!("sniff did not start (exit {status:?}); its stderr:\n{err}");
        }
        sniff
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Waits until sniff has printed `n` exchange lines (JSON output), or
    /// `timeout` passed; returns how many it printed. Exchanges come out as
    /// they complete, so a test can stop sniff as soon as the traffic it
    /// made is reported instead of sleeping.
    pub fn wait_for_exchanges(&mut self, n: usize, timeout: Duration) -> usize {
        self.wait_for_lines(n, timeout, |l| l.contains("\"type\":\"exchange\""))
    }

    /// Waits until `n` stdout lines satisfy `pred`, or `timeout` passed;
    /// returns how many did.
    pub fn wait_for_lines(
        &mut self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let count = |seen: &[String]| seen.iter().filter(|l| pred(l)).count();
        while count(&self.seen) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        count(&self.seen)
    }

    /// Waits until a stderr line satisfies `pred`, or `timeout` passed.
    pub fn wait_for_stderr(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.err_seen.iter().any(|l| pred(l)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(line) => self.err_seen.push(line),
                Err(_) => return false,
            }
        }
    }

    /// Sends `signal`, waits for the exit, and returns stdout lines, stderr
    /// and the exit status.
    pub fn stop_with(self, signal: i32) -> Output {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.finish()
    }

    pub fn stop(self) -> Output {
        self.stop_with(libc::SIGINT)
    }

    /// Waits for sniff to exit on its own (e.g. `--duration`).
    pub fn finish(mut self) -> Output {
        let status = self.child.wait().expect("wait for sniff");
        let stderr = self.take_stderr();
        let mut lines = std::mem::take(&mut self.seen);
        // The reader thread ends at EOF, which ends this iterator.
        lines.extend(self.lines.iter());
        Output {
            lines,
            stderr,
            status,
        }
    }
}

/// `sniff replay FILE ARGS...`: stdout (must succeed; needs no root).
pub fn replay(file: &Path, args: &[&str]) -> Output {
    let out = Command::new(SNIFF)
        .arg("replay")
        .arg(file)
        .args(args)
        .output()
        .expect("run sniff replay");
    let output = Output {
        lines: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    };
    assert!(
        out.status.success(),
        "sniff replay {} failed: {}",
        file.display(),
        output.stderr
    );
    output
}

pub struct Output {
    pub lines: Vec<String>,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

impl Output {
    /// Every stdout line as JSON (panics on a line that is not).
    pub fn json(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    pub fn of_type(&self, ty: &str) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v["type"] == ty)
            .collect()
    }

    /// The last stats object.
    pub fn stats(&self) -> Value {
        self.of_type("stats")
            .pop()
            .unwrap_or_else(|| panic!("no stats line; stderr:\n{}", self.stderr))
    }
}

/// A connection's identity in sniff's output.
pub type ConnId = (u64, i64, u64); // pid, fd, generation

pub fn conn_id(v: &Value) -> ConnId {
    (
        v["pid"].as_u64().expect("pid"),
        v["fd"].as_i64().expect("fd"),
        v["generation"].as_u64().expect("generation"),
    )
}

/// Bytes of one direction of one connection rebuilt from data events by
/// position; panics on overlaps that disagree, holes, or truncation.
pub fn reassemble(events: &[&Value]) -> Vec<u8> {
    let mut chunks: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for e in events {
        assert_eq!(e["truncated"], false, "unexpected truncation: {e}");
        assert_eq!(e["read_failed"], false, "unexpected read failure: {e}");
        let payload = base64::engine::general_purpose::STANDARD
            .decode(e["payload_b64"].as_str().expect("payload"))
            .expect("base64");
        assert_eq!(payload.len() as u64, e["len"].as_u64().unwrap());
        let pos = e["pos"].as_u64().expect("pos");
        if let Some(old) = chunks.insert(pos, payload.clone()) {
            assert_eq!(old, payload, "two different chunks at position {pos}");
        }
    }
    let mut out = Vec::new();
    for (pos, chunk) in chunks {
        assert_eq!(pos, out.len() as u64, "hole or overlap at position {pos}");
        out.extend_from_slice(&chunk);
    }
    out
}

/// Deterministic, position-dependent bytes: a misplaced chunk shows.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
