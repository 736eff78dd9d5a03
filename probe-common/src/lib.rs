//! Types that cross the kernel/user boundary.
//!
//! Every struct here is `#[repr(C)]`, has no padding the compiler could leave
//! uninitialised (explicit `_pad` fields instead), and has its size pinned by a
//! compile-time assert, so the eBPF programs and the `sniff` binary agree on
//! every byte. The `user` feature adds `aya::Pod` so userspace can read maps.

#![no_std]

/// `TASK_COMM_LEN` in the kernel.
pub const COMM_LEN: usize = 16;

/// Largest payload a single [`DataEvent`] carries. Bigger syscalls are split
/// into several events. 32 KiB keeps a typical HTTP write in one event while
/// leaving the ring buffer room for thousands of events in flight.
pub const CHUNK_SIZE: usize = 32 * 1024;

/// The largest per-syscall capture cap: 16 MiB (512 chunks). A single
/// syscall rarely moves more; larger values are clamped by the loader.
pub const MAX_CAP_BYTES: u32 = 16 * 1024 * 1024;

/// Default per-syscall capture cap. Bytes beyond it are not copied but are
/// still counted (the event says how many bytes the syscall moved), so
/// parsers keep their framing across the known hole. 256 KiB covers whole
/// HTTP heads and most bodies; a bulk download's tail is where the cut lands.
pub const DEFAULT_CAP_BYTES: u32 = 256 * 1024;

/// Default per-syscall cap on connections the kernel saw start as HTTP/2:
/// the largest. HTTP/2 frames cannot be followed across a hole (their
/// headers are in it), and one write of a 4 MB gRPC message is ordinary, so
/// these are copied whole.
pub const DEFAULT_H2_CAP_BYTES: u32 = MAX_CAP_BYTES;

/// Kinds of ring-buffer records; the first field of every [`EventHeader`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Data = 1,
    Conn = 2,
    Close = 3,
    ProcExit = 4,
    /// A Go uprobe span entry or return ([`GoSpanEvent`]).
    GoSpan = 5,
    /// A Go goroutine created another ([`GoGoroutineEvent`]).
    GoGoroutine = 6,
    /// A process called execve ([`ExecEvent`]), sent only under
    /// [`CFG_EXEC_EVENTS`].
    Exec = 7,
    /// A grpc-go header list ([`GoHeadersEvent`]).
    GoHeaders = 8,
}

impl EventKind {
    pub fn from_u32(v: u32) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Data),
            2 => Some(EventKind::Conn),
            3 => Some(EventKind::Close),
            4 => Some(EventKind::ProcExit),
            5 => Some(EventKind::GoSpan),
            6 => Some(EventKind::GoGoroutine),
            7 => Some(EventKind::Exec),
            8 => Some(EventKind::GoHeaders),
            _ => None,
        }
    }
}

/// The syscall that produced an event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Read = 1,
    Write = 2,
    Readv = 3,
    Writev = 4,
    Recvfrom = 5,
    Sendto = 6,
    Recvmsg = 7,
    Sendmsg = 8,
    Recvmmsg = 9,
    Sendmmsg = 10,
    Sendfile = 11,
    Splice = 12,
    Connect = 13,
    Accept = 14,
    Accept4 = 15,
    Close = 16,
}

impl Syscall {
    pub fn from_u8(v: u8) -> Option<Syscall> {
        use Syscall::*;
        Some(match v {
            1 => Read,
            2 => Write,
            3 => Readv,
            4 => Writev,
            5 => Recvfrom,
            6 => Sendto,
            7 => Recvmsg,
            8 => Sendmsg,
            9 => Recvmmsg,
            10 => Sendmmsg,
            11 => Sendfile,
            12 => Splice,
            13 => Connect,
            14 => Accept,
            15 => Accept4,
            16 => Close,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Syscall::*;
        match self {
            Read => "read",
            Write => "write",
            Readv => "readv",
            Writev => "writev",
            Recvfrom => "recvfrom",
            Sendto => "sendto",
            Recvmsg => "recvmsg",
            Sendmsg => "sendmsg",
            Recvmmsg => "recvmmsg",
            Sendmmsg => "sendmmsg",
            Sendfile => "sendfile",
            Splice => "splice",
            Connect => "connect",
            Accept => "accept",
            Accept4 => "accept4",
            Close => "close",
        }
    }
}

/// Bytes written by the traced process.
pub const DIR_EGRESS: u8 = 0;
/// Bytes read by the traced process.
pub const DIR_INGRESS: u8 = 1;

/// Starts every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// An [`EventKind`].
    pub kind: u32,
    /// Process id (thread group id).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// The file descriptor, or -1 for process events.
    pub fd: i32,
    /// Tells reuses of one (tgid, fd) apart: a new value whenever the fd
    /// refers to a different socket than before.
    pub generation: u64,
    /// When the event happened (syscall exit), `bpf_ktime_get_ns` clock.
    pub ts_ns: u64,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<EventHeader>() == 48);

/// This is the last event of its syscall.
pub const DATA_LAST: u16 = 1 << 0;
/// The syscall moved more bytes than were captured (cap, iovec limit, or a
/// syscall like sendfile whose bytes never pass through user memory). The
/// missing bytes are `syscall_len - (chunk_offset + len)` after this event.
pub const DATA_TRUNCATED: u16 = 1 << 1;
/// Reading user memory failed; the bytes of this piece are missing.
pub const DATA_READ_FAILED: u16 = 1 << 2;

/// Payload bytes moved by one syscall (or one piece of it). `len` bytes of
/// payload follow the struct in the ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DataEvent {
    pub header: EventHeader,
    /// Syscall entry time.
    pub enter_ns: u64,
    /// Offset in this direction's byte stream of the first payload byte.
    pub pos: u64,
    /// Bytes the syscall really moved (its return value; per message for
    /// sendmmsg/recvmmsg).
    pub syscall_len: u32,
    /// Offset of this event's payload within the syscall's bytes.
    pub chunk_offset: u32,
    /// Payload bytes captured in this event.
    pub len: u32,
    /// A [`Syscall`].
    pub syscall: u8,
    /// [`DIR_EGRESS`] or [`DIR_INGRESS`].
    pub direction: u8,
    /// `DATA_*` flags.
    pub flags: u16,
}
const _: () = assert!(core::mem::size_of::<DataEvent>() == 80);

/// How a socket became known.
pub const ROLE_UNKNOWN: u8 = 0;
/// The traced process called connect() on it.
pub const ROLE_CLIENT: u8 = 1;
/// The traced process got it from accept().
pub const ROLE_SERVER: u8 = 2;

/// A socket seen for the first time (connect, accept, or first I/O on a
/// socket that existed before capture started), with its addresses read from
/// the kernel's socket.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnEvent {
    pub header: EventHeader,
    /// `AF_INET`, `AF_INET6` or `AF_UNIX`.
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u16,
    /// `ROLE_*`.
    pub role: u8,
    /// TCP state (`TCP_ESTABLISHED` = 1, `TCP_SYN_SENT` = 2, ...).
    pub state: u8,
    /// A [`Syscall`] that revealed the socket (connect, accept, or the I/O
    /// syscall).
    pub syscall: u8,
    pub _pad: u8,
    /// connect() return value (0, or -EINPROGRESS for non-blocking).
    pub ret: i32,
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    /// IPv4 addresses use the first 4 bytes; IPv6 all 16.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<ConnEvent>() == 96);

/// A captured socket closed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CloseEvent {
    pub header: EventHeader,
    /// Bytes moved over the connection's life, per direction (including
    /// bytes not captured).
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
}
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 64);

/// A process whose sockets we tracked exited (the whole thread group).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcExitEvent {
    pub header: EventHeader,
}
const _: () = assert!(core::mem::size_of::<ProcExitEvent>() == 48);

/// A process replaced its program (`sched_process_exec`): its new
/// executable is read from `/proc/PID/exe` by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
}
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 48);

/// [`GoSpanEvent::probe`]: `net/http.serverHandler.ServeHTTP`.
pub const GO_HTTP_SERVER: u8 = 1;
/// [`GoSpanEvent::probe`]: `net/http.(*Transport).roundTrip`.
pub const GO_HTTP_CLIENT: u8 = 2;
/// [`GoSpanEvent::probe`]: grpc-go `(*http2Client).NewStream`, reported at
/// its return only: `path` is `CallHdr.Method`, `host` `CallHdr.Host`,
/// `status` the new stream's id, in the goroutine that made the call.
pub const GO_GRPC_STREAM: u8 = 3;
/// [`GoSpanEvent::phase`]: the function's entry (strings filled).
pub const GO_PHASE_ENTRY: u8 = 1;
/// [`GoSpanEvent::phase`]: one of its `RET`s (status filled).
pub const GO_PHASE_RETURN: u8 = 2;
/// A read of the target's memory failed: some fields are empty.
pub const GO_READ_FAILED: u8 = 1 << 0;
/// At return: the client call returned a non-nil error.
pub const GO_CLIENT_ERROR: u8 = 1 << 1;
/// At return: the server's status could not be read (its ResponseWriter is
/// not net/http's HTTP/1 `*response` for this request).
pub const GO_STATUS_UNKNOWN: u8 = 1 << 2;

/// Bytes of a Go string copied into a [`GoSpanEvent`] (the real length is
/// sent beside them).
pub const GO_METHOD_LEN: usize = 16;
pub const GO_HOST_LEN: usize = 64;
pub const GO_PATH_LEN: usize = 128;

/// One Go uprobe hit on a probed function: its entry (method, host, path
/// read from the `*http.Request`) or a return (status, entry time).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoSpanEvent {
    pub header: EventHeader,
    /// The goroutine (`runtime.g.goid`).
    pub goid: u64,
    /// Entry time (at return: the matching entry's).
    pub start_ns: u64,
    /// The attach cookie: which attached executable.
    pub target: u64,
    /// At return: HTTP status, 0 if not known.
    pub status: i64,
    /// Real lengths of the strings (the arrays hold the first bytes).
    pub method_len: u32,
    pub host_len: u32,
    pub path_len: u32,
    /// `GO_HTTP_*`.
    pub probe: u8,
    /// `GO_PHASE_*`.
    pub phase: u8,
    /// `GO_*` flags.
    pub flags: u8,
    pub _pad: u8,
    pub method: [u8; GO_METHOD_LEN],
    pub host: [u8; GO_HOST_LEN],
    pub path: [u8; GO_PATH_LEN],
}
const _: () = assert!(core::mem::size_of::<GoSpanEvent>() == 304);

/// `runtime.newproc1` returned: goroutine `parent` created `child`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoGoroutineEvent {
    pub header: EventHeader,
    pub parent_goid: u64,
    pub child_goid: u64,
    pub target: u64,
}
const _: () = assert!(core::mem::size_of::<GoGoroutineEvent>() == 72);

/// [`GoHeadersEvent::kind`]: `(*loopyWriter).writeHeader` of a client
/// transport: request headers sent.
pub const GO_GRPC_CLIENT_SENT: u8 = 1;
/// `(*loopyWriter).writeHeader` of a server transport: response headers or
/// trailers sent.
pub const GO_GRPC_SERVER_SENT: u8 = 2;
/// `(*http2Server).operateHeaders`: request headers received.
pub const GO_GRPC_SERVER_RECEIVED: u8 = 3;
/// `(*http2Client).operateHeaders`: response headers or trailers received.
pub const GO_GRPC_CLIENT_RECEIVED: u8 = 4;

/// Header fields copied per [`GoHeadersEvent`], and bytes of each name and
/// value: gRPC's pseudo-headers, content-type, grpc-status and -message,
/// user-agent and a few custom metadata entries fit.
pub const GO_FIELDS: usize = 12;
pub const GO_FIELD_NAME_LEN: usize = 32;
pub const GO_FIELD_VALUE_LEN: usize = 96;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoField {
    /// Real lengths (the arrays hold the first bytes).
    pub name_len: u32,
    pub value_len: u32,
    pub name: [u8; GO_FIELD_NAME_LEN],
    pub value: [u8; GO_FIELD_VALUE_LEN],
}
const _: () = assert!(core::mem::size_of::<GoField>() == 136);

/// One HTTP/2 header list as grpc-go holds it, decoded
/// (`[]hpack.HeaderField`), sent or received.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoHeadersEvent {
    pub header: EventHeader,
    pub goid: u64,
    pub target: u64,
    pub stream_id: u32,
    /// Fields in the list; the first [`GO_FIELDS`] are in `fields`.
    pub total: u32,
    /// `GO_GRPC_*`.
    pub kind: u8,
    /// The list ends the stream (trailers, or a trailers-only response).
    /// Known for sent lists only.
    pub end_stream: u8,
    /// `GO_READ_FAILED`.
    pub flags: u8,
    pub _pad: [u8; 5],
    pub fields: [GoField; GO_FIELDS],
}
const _: () = assert!(core::mem::size_of::<GoHeadersEvent>() == 80 + 136 * GO_FIELDS);

/// Struct field offsets one attached Go executable's probes read through,
/// from its DWARF or the fallback table (`collector/src/golang/offsets.rs`).
/// Keyed by the attach cookie in the `GO_TARGETS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GoOffsets {
    /// `runtime.g.goid`.
    pub g_goid: u32,
    /// `net/http.Request`: Method, URL, Host.
    pub req_method: u32,
    pub req_url: u32,
    pub req_host: u32,
    /// `net/url.URL`: Host, Path.
    pub url_host: u32,
    pub url_path: u32,
    /// `net/http.Response.StatusCode`.
    pub resp_status: u32,
    /// `net/http.response` (the HTTP/1 ResponseWriter): req, status.
    pub sresp_req: u32,
    pub sresp_status: u32,
    /// grpc-go `loopyWriter.side` (0: client, 1: server).
    pub loopy_side: u32,
    /// x/net `MetaHeadersFrame`: HeadersFrame (pointer), Fields (slice).
    pub mhf_headers_frame: u32,
    pub mhf_fields: u32,
    /// x/net `HeadersFrame.FrameHeader` + `FrameHeader.StreamID`.
    pub hf_stream_id: u32,
    /// x/net `hpack.HeaderField`: Name, Value, and its size.
    pub field_name: u32,
    pub field_value: u32,
    pub field_size: u32,
    /// grpc-go `CallHdr`: Host, Method; `Stream.id`.
    pub callhdr_host: u32,
    pub callhdr_method: u32,
    pub gstream_id: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<GoOffsets>() == 80);

/// Key of the kernel's connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
}
const _: () = assert!(core::mem::size_of::<ConnKey>() == 8);

/// Do not capture this socket (filtered out, or a family we skip); it was
/// never announced, so its close is not reported either.
pub const CONN_IGNORED: u8 = 1;
/// Userspace needs no more of this socket's bytes (set from userspace);
/// its close is still reported.
pub const CONN_MUTED: u8 = 2;

/// Protocol check not decided yet.
pub const PROTO_UNKNOWN: u8 = 0;
/// First bytes looked like a wanted protocol: send everything.
pub const PROTO_MATCHED: u8 = 1;
/// Gave up: not a wanted protocol; nothing more is sent.
pub const PROTO_REJECTED: u8 = 2;
/// First bytes were HTTP/2 (the client preface, or a frame on a connection
/// joined mid-way): send everything, under `Config::h2_cap_bytes`.
pub const PROTO_HTTP2: u8 = 3;

/// Value of the kernel's connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnState {
    /// `struct file *` the fd pointed to when classified: if the fd now
    /// points elsewhere (dup2, exec, a missed close), it is a new connection.
    pub file: u64,
    pub generation: u64,
    /// Bytes moved so far, indexed by direction.
    pub pos: [u64; 2],
    /// `CONN_*` flags.
    pub flags: u8,
    /// `PROTO_*`.
    pub proto: u8,
    /// Data events checked by the protocol check so far.
    pub probes: u8,
    pub role: u8,
    pub family: u16,
    pub sock_type: u16,
}
const _: () = assert!(core::mem::size_of::<ConnState>() == 40);

/// Capture everything from these pids only (PIDS map).
pub const CFG_FILTER_PIDS: u32 = 1 << 0;
/// Capture processes whose comm equals `Config::comm` only.
pub const CFG_FILTER_COMM: u32 = 1 << 1;
/// Capture sockets whose local or remote port is in the PORTS map only.
pub const CFG_FILTER_PORTS: u32 = 1 << 2;
/// Capture AF_UNIX sockets too.
pub const CFG_UNIX: u32 = 1 << 3;
/// Send a connection's bytes only once its first bytes look like HTTP/1 or
/// HTTP/2 (and give up after `Config::proto_probes` events). Syscalls that
/// moved fewer than 4 bytes are too short to judge: they are sent, and not
/// counted as probes.
pub const CFG_PROTO_HTTP: u32 = 1 << 4;
/// Report every execve ([`ExecEvent`]), so userspace can attach Go uprobes
/// to programs started after it.
pub const CFG_EXEC_EVENTS: u32 = 1 << 5;

/// Settings the loader writes into the programs before loading them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// `CFG_*` flags.
    pub flags: u32,
    /// The sniffer's own pid: never captured, so its output can't feed back.
    pub self_tgid: u32,
    /// Per-syscall capture cap in bytes (≤ [`MAX_CAP_BYTES`]).
    pub cap_bytes: u32,
    /// Data events a connection gets to show wanted bytes under
    /// `CFG_PROTO_HTTP` before it is rejected.
    pub proto_probes: u32,
    /// Data events wake the reader only once this many bytes wait in the
    /// ring buffer (the reader also polls on a short timer): one wake-up per
    /// batch instead of one per event. 0 wakes on every event.
    pub wakeup_bytes: u32,
    /// The cap for `PROTO_HTTP2` connections (≤ [`MAX_CAP_BYTES`]).
    pub h2_cap_bytes: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<Config>() == 40);

impl Config {
    pub const fn empty() -> Config {
        Config {
            flags: 0,
            self_tgid: 0,
            cap_bytes: DEFAULT_CAP_BYTES,
            proto_probes: 64,
            wakeup_bytes: 0,
            h2_cap_bytes: DEFAULT_H2_CAP_BYTES,
            comm: [0; COMM_LEN],
        }
    }
}

/// Byte offsets of the kernel struct fields the programs read, found in the
/// running kernel's BTF by the loader (so one binary works across kernels).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_group_leader: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_inode: u32,
    pub file_private_data: u32,
    pub inode_mode: u32,
    pub socket_type: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// Non-zero once filled in; the programs capture nothing without it.
    pub valid: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 88);

/// Indices of the per-CPU STATS counters.
pub mod stat {
    /// Data events written to the ring buffer.
    pub const EVENTS: u32 = 0;
    /// Payload bytes written to the ring buffer.
    pub const BYTES: u32 = 1;
    /// Records the ring buffer had no room for.
    pub const RINGBUF_DROPS: u32 = 2;
    /// Payload bytes in those records.
    pub const RINGBUF_DROP_BYTES: u32 = 3;
    /// Syscalls whose bytes exceeded the cap (or iovec/mmsg limits); not
    /// sendfile/splice, whose bytes are never in user memory.
    pub const TRUNCATED_SYSCALLS: u32 = 4;
    /// Bytes moved but not captured because of the cap or limits.
    pub const TRUNCATED_BYTES: u32 = 5;
    /// Failed reads of user memory (payload or iovec).
    pub const READ_FAILURES: u32 = 6;
    /// Syscall arguments that could not be saved (in-flight table full).
    pub const PENDING_FULL: u32 = 7;
    /// Sockets that could not be tracked (connection table full).
    pub const CONNS_FULL: u32 = 8;
    /// Socket syscalls whose connection entry vanished between entry and
    /// exit (closed concurrently by another thread).
    pub const LOST_CONN: u32 = 9;
    /// Connections rejected by the in-kernel protocol check.
    pub const PROTO_REJECTED: u32 = 10;
    /// Kernel struct reads that failed (fd table, socket).
    pub const KERNEL_READ_FAILURES: u32 = 11;
    /// Go uprobe entry hits that were the same call again (Go re-runs a
    /// function from its entry after growing the goroutine's stack).
    pub const GO_DUPLICATE_ENTRIES: u32 = 12;
    /// Go uprobe returns without a recorded entry (entry before attach,
    /// or its state evicted).
    pub const GO_UNMATCHED_RETURNS: u32 = 13;
    /// Go uprobe hits of an executable with no offsets (being detached).
    pub const GO_NO_TARGET: u32 = 14;
    pub const COUNT: u32 = 15;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are #[repr(C)], made only of integers and integer
    // arrays, with explicit padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::ConnKey {}
    unsafe impl aya::Pod for super::ConnState {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::GoOffsets {}
}
