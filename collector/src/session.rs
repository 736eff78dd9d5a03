//! The live capture loop: read the ring buffer, hand events to an output,
//! keep the kernel's tables clean, report loss, and stop cleanly on Ctrl-C,
//! SIGTERM or the end of `--duration`.

use std::{
    collections::HashSet,
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use probe_common::stat;

use crate::{
    events::{self, ConnKey, Event},
    format::bytes_human,
    loader::{KernelStats, Probes},
    uprobes,
};

/// Where events go: the raw printer, or the HTTP pipeline.
pub trait Sink {
    /// One ring-buffer record, raw and parsed.
    fn event(&mut self, raw: &[u8], ev: &Event<'_>) -> io::Result<()>;
    /// Called about once a second, and after each batch of events.
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Kernel counters, every `--stats-interval` and once at the end.
    fn stats(&mut self, stats: &KernelStats, malformed: u64) -> io::Result<()>;
    /// Capture is over: flush whatever is pending.
    fn finish(&mut self) -> io::Result<()>;
    /// A line for the end-of-run report on stderr.
    fn summary(&self) -> Option<String> {
        None
    }
    /// Connections whose bytes are no longer wanted: the kernel stops
    /// sending them.
    fn muted(&mut self) -> Vec<ConnKey> {
        Vec::new()
    }
}

pub struct Options {
    pub duration: Option<Duration>,
    pub stats_interval: Option<Duration>,
    /// Print the one-line loss report on stderr.
    pub report: bool,
}

/// Installs the Ctrl-C / SIGTERM flag.
pub fn stop_flag() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    Ok(stop)
}

/// How long events may wait in the ring buffer: the kernel wakes the reader
/// only when an eighth of the ring is full (see `Config::wakeup_bytes`), so
/// at low rates this is the delay before an event is read.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Runs until stopped; returns the final kernel counters.
pub fn run(
    probes: &mut Probes,
    sink: &mut dyn Sink,
    opts: &Options,
    stop: &AtomicBool,
    mut go: Option<&mut uprobes::Manager>,
) -> io::Result<KernelStats> {
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let mut exited: HashSet<u32> = HashSet::new();
    let mut malformed: u64 = 0;
    let mut last_sweep = Instant::now();
    let mut last_trim = Instant::now();
    let mut last_stats = Instant::now();
    let mut reported = KernelStats::default();
    let mut closed_output = false;

    loop {
        let mut timeout = POLL_INTERVAL;
        if let Some(d) = deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        probes.wait(timeout);
        let drained = drain(probes, sink, &mut exited, &mut malformed, go.as_deref_mut());
        if let Some(m) = go.as_deref_mut() {
            m.apply(probes);
        }
        if let Err(e) = drained {
            if e.kind() == io::ErrorKind::BrokenPipe {
                closed_output = true;
                break;
            }
            return Err(e);
        }
        sink.tick()?;
        for key in sink.muted() {
            probes.mute(key);
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            probes.forget_processes(&exited);
            exited.clear();
            last_sweep = Instant::now();
        }
        if last_trim.elapsed() >= Duration::from_secs(10) {
            // Connections come and go; give the memory of those gone back
            // so a long run keeps a small footprint.
            // SAFETY: malloc_trim only releases free heap memory.
            unsafe { libc::malloc_trim(0) };
            last_trim = Instant::now();
        }
        if let Some(every) = opts.stats_interval
            && last_stats.elapsed() >= every
        {
            let s = probes.stats();
            sink.stats(&s, malformed)?;
            if opts.report && loss_changed(&reported, &s) {
                eprintln!("sniff: {}", loss_line(&s, malformed));
                reported = s;
            }
            last_stats = Instant::now();
        }
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }

    // Detach first, then take what the programs wrote before they went.
    probes.detach();
    let s = probes.stats();
    if !closed_output {
        match drain(probes, sink, &mut exited, &mut malformed, go) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
        sink.finish()?;
        sink.stats(&s, malformed)?;
    }
    if opts.report {
        eprintln!("sniff: stopped. {}", loss_line(&s, malformed));
        if let Some(line) = go_line(&s) {
            eprintln!("sniff: {line}");
        }
        if let Some(line) = sink.summary() {
            eprintln!("sniff: {line}");
        }
    }
    Ok(s)
}

fn drain(
    probes: &mut Probes,
    sink: &mut dyn Sink,
    exited: &mut HashSet<u32>,
    malformed: &mut u64,
    mut go: Option<&mut uprobes::Manager>,
) -> io::Result<()> {
    while let Some(item) = probes.ring.next() {
        match events::parse(&item) {
            Ok(ev) => {
                if let Event::ProcExit(p) = &ev {
                    exited.insert(p.key.tgid);
                }
                if let Some(m) = go.as_deref_mut()
                    && !m.on_event(&ev)
                {
                    continue;
                }
                sink.event(&item, &ev)?;
            }
            Err(_) => *malformed += 1,
        }
    }
    Ok(())
}

/// What the Go uprobes counted, if anything.
fn go_line(s: &KernelStats) -> Option<String> {
    let dup = s.get(stat::GO_DUPLICATE_ENTRIES);
    let unmatched = s.get(stat::GO_UNMATCHED_RETURNS);
    if dup + unmatched == 0 {
        return None;
    }
    Some(format!(
        "Go uprobes: {dup} function entries seen twice (Go re-ran them after growing a goroutine's stack) counted once; {unmatched} returns without their entry (calls in progress at attach)"
    ))
}

fn loss_changed(old: &KernelStats, new: &KernelStats) -> bool {
    [
        stat::RINGBUF_DROPS,
        stat::TRUNCATED_SYSCALLS,
        stat::READ_FAILURES,
        stat::PENDING_FULL,
        stat::CONNS_FULL,
        stat::LOST_CONN,
        stat::KERNEL_READ_FAILURES,
    ]
    .iter()
    .any(|&i| old.get(i) != new.get(i))
}

/// One line: what was captured, and everything lost or cut.
pub fn loss_line(s: &KernelStats, malformed: u64) -> String {
    let mut line = format!(
        "{} events, {} captured",
        s.get(stat::EVENTS),
        bytes_human(s.get(stat::BYTES))
    );
    let mut parts = Vec::new();
    if s.get(stat::RINGBUF_DROPS) > 0 {
        parts.push(format!(
            "{} events dropped (ring buffer full: {}; try --ring-size)",
            s.get(stat::RINGBUF_DROPS),
            bytes_human(s.get(stat::RINGBUF_DROP_BYTES))
        ));
    }
    if s.get(stat::TRUNCATED_SYSCALLS) > 0 {
        parts.push(format!(
            "{} syscalls truncated ({} not captured; see --max-bytes-per-syscall)",
            s.get(stat::TRUNCATED_SYSCALLS),
            bytes_human(s.get(stat::TRUNCATED_BYTES))
        ));
    }
    for (idx, what) in [
        (stat::READ_FAILURES, "failed reads of process memory"),
        (stat::PENDING_FULL, "syscalls missed (in-flight table full)"),
        (
            stat::CONNS_FULL,
            "sockets not tracked (connection table full)",
        ),
        (stat::LOST_CONN, "syscalls on sockets closed concurrently"),
        (stat::KERNEL_READ_FAILURES, "failed kernel reads"),
    ] {
        if s.get(idx) > 0 {
            parts.push(format!("{} {what}", s.get(idx)));
        }
    }
    if malformed > 0 {
        parts.push(format!("{malformed} malformed records"));
    }
    if parts.is_empty() {
        line.push_str("; capture lost nothing");
    } else {
        line.push_str("; ");
        line.push_str(&parts.join(", "));
    }
    line
}
