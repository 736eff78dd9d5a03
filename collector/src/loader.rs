//! Loading and attaching the kernel programs, and everything that must be
//! true before that can work: privileges, tracefs, kernel BTF.
//!
//! Everything attached is owned by [`Probes`]: dropping it detaches and
//! unloads every program and map (no pinning), so nothing of ours outlives
//! the process, even on SIGKILL.

use std::{collections::HashSet, path::Path, time::Duration};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        Program, ProgramError, TracePoint, UProbe,
        uprobe::{UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use probe_common::{
    CFG_EXEC_EVENTS, CFG_FILTER_COMM, CFG_FILTER_PIDS, CFG_FILTER_PORTS, CFG_PROTO_HTTP, CFG_UNIX,
    COMM_LEN, Config, ConnKey, ConnState, GoOffsets, MAX_CAP_BYTES, stat,
};

use crate::btf::{Btf, BtfError};

/// The compiled eBPF object, built by build.rs.
static PROBE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe.bpf.o"));

const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "needs root, or the capabilities CAP_BPF and CAP_PERFMON (missing: {missing}).\n\
         Run it with sudo, or grant them once: sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search,cap_sys_ptrace+ep {exe}"
    )]
    Privileges { missing: String, exe: String },
    #[error(
        "the kernel's tracing filesystem is not available at {TRACEFS} and could not be mounted ({reason}).\n\
         Mount it with: sudo mount -t tracefs nodev {TRACEFS}"
    )]
    Tracefs { reason: String },
    #[error(
        "this kernel has no syscall tracepoints ({TRACEFS}/events/syscalls is missing); it needs CONFIG_FTRACE_SYSCALLS"
    )]
    NoSyscallTracepoints,
    #[error(
        "reading the kernel's type information (BTF) failed: {0}\nsniff needs a kernel built with CONFIG_DEBUG_INFO_BTF"
    )]
    Btf(#[from] BtfError),
    #[error(
        "this sniff binary was built without its eBPF programs (SNIFF_SKIP_EBPF); rebuild it with ./x build"
    )]
    NoObject,
    #[error("loading the eBPF object failed: {0}")]
    Ebpf(#[source] Box<aya::EbpfError>),
    #[error("program {name} is missing from the eBPF object")]
    MissingProgram { name: &'static str },
    #[error("loading program {name} failed: {detail}")]
    Program { name: &'static str, detail: String },
    #[error("attaching {name} to {category}:{tracepoint} failed: {source}")]
    Attach {
        name: &'static str,
        category: &'static str,
        tracepoint: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching {name} to {target} failed: {source}")]
    AttachUprobe {
        name: &'static str,
        target: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("Go uprobes were not loaded")]
    NoGoPrograms,
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<MapError>,
    },
}

/// What to capture, as the user asked.
#[derive(Clone, Debug, Default)]
pub struct CaptureConfig {
    pub pids: Vec<u32>,
    pub comm: Option<String>,
    pub ports: Vec<u16>,
    pub unix: bool,
    /// Only send connections whose first bytes look like HTTP/1 or HTTP/2.
    pub proto_http: bool,
    pub cap_bytes: u32,
    /// The cap on connections whose first bytes were HTTP/2 (`proto_http`).
    pub h2_cap_bytes: u32,
    pub ring_bytes: u32,
    /// Load the Go uprobe programs and report execs (attaching is done per
    /// executable by `uprobes::Manager`).
    pub go: bool,
    /// Send no socket data at all (only Go uprobe and exec events).
    pub go_only: bool,
}

/// The Go uprobe programs (probe-ebpf `go.rs`), loaded when
/// [`CaptureConfig::go`] is set and attached per executable.
pub const GO_PROGRAMS: &[&str] = &[
    "go_http_server_enter",
    "go_http_server_return",
    "go_http_client_enter",
    "go_http_client_return",
    "go_newproc_enter",
    "go_newproc_return",
    "go_grpc_stream_enter",
    "go_grpc_stream_return",
    "go_grpc_write_header",
    "go_grpc_server_headers",
    "go_grpc_client_headers",
];

/// (program, tracepoint category, tracepoint). Exits come first so that no
/// syscall is entered with its exit handler missing.
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("data_exit_read", "syscalls", "sys_exit_read"),
    ("data_exit_write", "syscalls", "sys_exit_write"),
    ("data_exit_readv", "syscalls", "sys_exit_readv"),
    ("data_exit_writev", "syscalls", "sys_exit_writev"),
    ("data_exit_recvfrom", "syscalls", "sys_exit_recvfrom"),
    ("data_exit_sendto", "syscalls", "sys_exit_sendto"),
    ("data_exit_recvmsg", "syscalls", "sys_exit_recvmsg"),
    ("data_exit_sendmsg", "syscalls", "sys_exit_sendmsg"),
    ("data_exit_recvmmsg", "syscalls", "sys_exit_recvmmsg"),
    ("data_exit_sendmmsg", "syscalls", "sys_exit_sendmmsg"),
    ("data_exit_sendfile64", "syscalls", "sys_exit_sendfile64"),
    ("data_exit_splice", "syscalls", "sys_exit_splice"),
    ("conn_exit_connect", "syscalls", "sys_exit_connect"),
    ("conn_exit_accept", "syscalls", "sys_exit_accept"),
    ("conn_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("close_exit_close", "syscalls", "sys_exit_close"),
    ("process_exit", "sched", "sched_process_exit"),
    ("data_enter_read", "syscalls", "sys_enter_read"),
    ("data_enter_write", "syscalls", "sys_enter_write"),
    ("data_enter_readv", "syscalls", "sys_enter_readv"),
    ("data_enter_writev", "syscalls", "sys_enter_writev"),
    ("data_enter_recvfrom", "syscalls", "sys_enter_recvfrom"),
    ("data_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("data_enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
    ("data_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("data_enter_recvmmsg", "syscalls", "sys_enter_recvmmsg"),
    ("data_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg"),
    ("data_enter_sendfile64", "syscalls", "sys_enter_sendfile64"),
    ("data_enter_splice", "syscalls", "sys_enter_splice"),
    ("conn_enter_connect", "syscalls", "sys_enter_connect"),
    ("close_enter_close", "syscalls", "sys_enter_close"),
];

/// Loaded and attached programs plus the maps userspace reads.
pub struct Probes {
    ebpf: Option<Ebpf>,
    pub ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    conns: BpfHashMap<MapData, ConnKey, ConnState>,
    pub attached: usize,
    go: bool,
}

/// Per-CPU kernel counters, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats(pub [u64; stat::COUNT as usize]);

impl KernelStats {
    pub fn get(&self, index: u32) -> u64 {
        self.0[index as usize]
    }
}

/// Checks for the privileges loading needs, with a message that says what
/// to do. Root passes; otherwise CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN).
pub fn check_privileges() -> Result<(), LoadError> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |cap: u32| eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sniff".to_string());
    Err(LoadError::Privileges {
        missing: missing.join(", "),
        exe,
    })
}

/// Makes sure syscall tracepoints are reachable, mounting tracefs if needed.
fn ensure_tracefs() -> Result<(), LoadError> {
    let events = Path::new(TRACEFS).join("events");
    if !events.exists() {
        let debug = Path::new("/sys/kernel/debug/tracing/events");
        if !debug.exists() {
            mount_tracefs()?;
        }
    }
    let syscalls_here = Path::new(TRACEFS).join("events/syscalls").exists()
        || Path::new("/sys/kernel/debug/tracing/events/syscalls").exists();
    if !syscalls_here {
        return Err(LoadError::NoSyscallTracepoints);
    }
    Ok(())
}

fn mount_tracefs() -> Result<(), LoadError> {
    let target = std::ffi::CString::new(TRACEFS).map_err(|e| LoadError::Tracefs {
        reason: e.to_string(),
    })?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(LoadError::Tracefs {
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

impl Probes {
    /// Loads the programs with `cfg`, attaches them all, and fills the filter
    /// maps.
    pub fn load(cfg: &CaptureConfig) -> Result<Probes, LoadError> {
        check_privileges()?;
        if PROBE_OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        ensure_tracefs()?;
        raise_memlock_limit();
        let offsets = Btf::from_sys_fs()?.kernel_offsets()?;

        let mut config = Config::empty();
        config.self_tgid = std::process::id();
        config.cap_bytes = cfg.cap_bytes.clamp(1, MAX_CAP_BYTES);
        config.h2_cap_bytes = cfg.h2_cap_bytes.clamp(1, MAX_CAP_BYTES);
        // An eighth of the ring: a wake-up per batch, with room left for
        // the events that arrive while the reader gets going.
        config.wakeup_bytes = ring_size(cfg.ring_bytes) / 8;
        if !cfg.pids.is_empty() || cfg.go_only {
            config.flags |= CFG_FILTER_PIDS;
        }
        if let Some(comm) = &cfg.comm {
            config.flags |= CFG_FILTER_COMM;
            // The kernel keeps the first 15 bytes of a name plus a NUL.
            let bytes = comm.as_bytes();
            let n = bytes.len().min(COMM_LEN - 1);
            config.comm[..n].copy_from_slice(&bytes[..n]);
        }
        if !cfg.ports.is_empty() {
            config.flags |= CFG_FILTER_PORTS;
        }
        if cfg.unix {
            config.flags |= CFG_UNIX;
        }
        if cfg.proto_http {
            config.flags |= CFG_PROTO_HTTP;
        }
        if cfg.go {
            config.flags |= CFG_EXEC_EVENTS;
        }
        let cpus = aya::util::nr_cpus().map(|n| n.get()).unwrap_or(256);

        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            .override_global("OFFSETS", &offsets, true)
            .map_max_entries("SCRATCH", cpus)
            .map_max_entries("EVENTS", ring_size(cfg.ring_bytes))
            .load(PROBE_OBJECT)
            .map_err(|e| LoadError::Ebpf(Box::new(e)))?;

        if !cfg.go_only {
            fill_set::<u32>(&mut ebpf, "PIDS", &cfg.pids)?;
        }
        fill_set::<u16>(&mut ebpf, "PORTS", &cfg.ports)?;

        let mut attached = 0;
        for &(name, category, tracepoint) in PROGRAMS {
            load_tracepoint(&mut ebpf, name, category, tracepoint)?;
            attached += 1;
        }

        // Go uprobes add to the syscall view; without them sniff still
        // captures (the commands that need them check `go_loaded`).
        let go = cfg.go
            && match load_go(&mut ebpf) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("sniff: Go uprobes unavailable: {e}");
                    false
                }
            };

        // Parsing kernel BTF and the object took megabytes that are free
        // now: give them back, so a long-running sniff stays small.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(map_error("EVENTS"))?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, "STATS")?).map_err(map_error("STATS"))?;
        let conns = BpfHashMap::try_from(take(&mut ebpf, "CONNS")?).map_err(map_error("CONNS"))?;
        Ok(Probes {
            ebpf: Some(ebpf),
            ring,
            stats,
            conns,
            attached,
            go,
        })
    }

    /// Whether the Go uprobe programs are loaded (asked for, and the kernel
    /// took them).
    pub fn go_loaded(&self) -> bool {
        self.go && self.ebpf.is_some()
    }

    /// Gives the programs of the executable with attach cookie `cookie`
    /// their struct offsets (before attaching them).
    pub fn set_go_offsets(&mut self, cookie: u64, offsets: &GoOffsets) -> Result<(), LoadError> {
        let name = "GO_TARGETS";
        let ebpf = self.ebpf.as_mut().ok_or(LoadError::NoGoPrograms)?;
        let map = ebpf
            .map_mut(name)
            .ok_or_else(|| map_error(name)(MapError::InvalidName { name: name.into() }))?;
        let mut targets: BpfHashMap<_, u64, GoOffsets> =
            BpfHashMap::try_from(map).map_err(map_error(name))?;
        targets.insert(&cookie, offsets, 0).map_err(map_error(name))
    }

    /// Attaches Go uprobe program `name` at `points` of the executable
    /// `target`, for every process running it.
    pub fn attach_go(
        &mut self,
        name: &'static str,
        points: Vec<UProbeAttachPoint<'static>>,
        target: &Path,
    ) -> Result<UProbeLinkId, LoadError> {
        let program = self.go_program(name)?;
        program
            .attach(points, target, UProbeScope::AllProcesses)
            .map_err(|e| LoadError::AttachUprobe {
                name,
                target: target.display().to_string(),
                source: Box::new(e),
            })
    }

    /// Detaches one attachment made by [`Probes::attach_go`].
    pub fn detach_go(&mut self, name: &'static str, link: UProbeLinkId) {
        if let Ok(program) = self.go_program(name) {
            let _ = program.detach(link);
        }
    }

    fn go_program(&mut self, name: &'static str) -> Result<&mut UProbe, LoadError> {
        if !self.go {
            return Err(LoadError::NoGoPrograms);
        }
        let ebpf = self.ebpf.as_mut().ok_or(LoadError::NoGoPrograms)?;
        program(ebpf, name)
    }

    /// Detaches and unloads every program. The ring buffer stays readable so
    /// what is already in it can be drained.
    pub fn detach(&mut self) {
        if let Some(ebpf) = self.ebpf.as_mut() {
            // Each detach waits for an RCU grace period in the kernel (60-80
            // ms here): one after another, 31 of them made Ctrl-C take two
            // seconds. Side by side they overlap.
            std::thread::scope(|s| {
                for (_, program) in ebpf.programs_mut() {
                    s.spawn(move || match program {
                        Program::TracePoint(p) => drop(p.unload()),
                        Program::UProbe(p) => drop(p.unload()),
                        // Unloaded with the rest below.
                        _ => {}
                    });
                }
            });
        }
        self.ebpf = None;
    }

    /// Sums the per-CPU counters.
    pub fn stats(&self) -> KernelStats {
        let mut out = KernelStats::default();
        for i in 0..stat::COUNT {
            if let Ok(values) = self.stats.get(&i, 0) {
                out.0[i as usize] = values.iter().sum();
            }
        }
        out
    }

    /// Removes the kernel's connection-table entries of processes that have
    /// exited. Returns how many were removed.
    pub fn forget_processes(&mut self, tgids: &HashSet<u32>) -> usize {
        if tgids.is_empty() {
            return 0;
        }
        let doomed: Vec<ConnKey> = self
            .conns
            .keys()
            .filter_map(Result::ok)
            .filter(|k| tgids.contains(&k.tgid))
            .collect();
        doomed
            .iter()
            .filter(|k| self.conns.remove(k).is_ok())
            .count()
    }

    /// Tells the kernel to send no more bytes of one connection (its close
    /// is still reported). A no-op if the fd now refers to another socket or
    /// is gone.
    pub fn mute(&mut self, key: crate::events::ConnKey) {
        let k = ConnKey {
            tgid: key.tgid,
            fd: key.fd,
        };
        if let Ok(mut state) = self.conns.get(&k, 0)
            && state.generation == key.generation
        {
            state.flags |= probe_common::CONN_MUTED;
            // BPF_EXIST: only if still there.
            let _ = self.conns.insert(&k, &state, 2);
        }
    }

    /// Waits until the ring buffer has data or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        use std::os::fd::AsRawFd as _;
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd; EINTR (a signal) simply returns early.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }
}

/// Loads the Go uprobe programs (attached later, per executable) and
/// attaches the exec tracepoint that reports programs started later.
fn load_go(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    for &name in GO_PROGRAMS {
        let program: &mut UProbe = program(ebpf, name)?;
        program.load().map_err(|e| LoadError::Program {
            name,
            detail: verifier_summary(&e),
        })?;
    }
    load_tracepoint(ebpf, "go_exec", "sched", "sched_process_exec")
}

/// Our program `name`, as the program type `T` it must be.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram { name })?
        .try_into()
        .map_err(|e: ProgramError| LoadError::Program {
            name,
            detail: e.to_string(),
        })
}

/// Loads tracepoint program `name` and attaches it to `category/tracepoint`.
fn load_tracepoint(
    ebpf: &mut Ebpf,
    name: &'static str,
    category: &'static str,
    tracepoint: &'static str,
) -> Result<(), LoadError> {
    let program: &mut TracePoint = program(ebpf, name)?;
    let t0 = std::time::Instant::now();
    let r = program.load();
    if std::env::var_os("SNIFF_DEBUG_LOAD").is_some() {
        let insns = program
            .info()
            .ok()
            .and_then(|i| i.verified_instruction_count());
        eprintln!(
            "loaded {name} in {:?} ({insns:?} insns verified)",
            t0.elapsed()
        );
    }
    r.map_err(|e| LoadError::Program {
        name,
        detail: verifier_summary(&e),
    })?;
    program
        .attach(category, tracepoint)
        .map_err(|e| LoadError::Attach {
            name,
            category,
            tracepoint,
            source: Box::new(e),
        })?;
    Ok(())
}

fn map_error(name: &'static str) -> impl Fn(MapError) -> LoadError {
    move |e| LoadError::Map {
        name,
        source: Box::new(e),
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, LoadError> {
    ebpf.take_map(name)
        .ok_or_else(|| map_error(name)(MapError::InvalidName { name: name.into() }))
}

/// Puts `values` into a set-like `HashMap<T, u8>` of the programs.
fn fill_set<T: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    values: &[T],
) -> Result<(), LoadError> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| map_error(name)(MapError::InvalidName { name: name.into() }))?;
    let mut set: BpfHashMap<_, T, u8> = BpfHashMap::try_from(map).map_err(map_error(name))?;
    for v in values {
        set.insert(v, &1, 0).map_err(map_error(name))?;
    }
    Ok(())
}

/// The ring buffer size must be a power of two multiple of the page size.
fn ring_size(bytes: u32) -> u32 {
    bytes.max(1 << 16).next_power_of_two()
}

/// Older kernels charge BPF memory to RLIMIT_MEMLOCK; newer ones use memory
/// cgroups and ignore it. Raising it is harmless either way.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
}

/// A verifier rejection's last lines (the full log is thousands of lines).
fn verifier_summary(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{io_error}; the kernel verifier said:\n{}", tail.join("\n"))
        }
        other => other.to_string(),
    }
}
