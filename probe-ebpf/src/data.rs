//! Payload syscalls: read, write, readv, writev, recvfrom, sendto, recvmsg,
//! sendmsg, recvmmsg, sendmmsg, sendfile, splice.
//!
//! Entry: filter (pid, comm, socket, ports), then save where the bytes are.
//! Exit: take as many bytes as the syscall really moved (its return value),
//! give them the next stream position of that direction, and emit them.
//!
//! Tracepoint formats (`/sys/kernel/tracing/events/syscalls/<name>/format`):
//! every `sys_enter_*` has its arguments as 8-byte slots from offset 16, and
//! every `sys_exit_*` has `long ret` at offset 16.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_ktime_get_ns, bpf_probe_read_user,
        generated::bpf_probe_read_user as raw_probe_read_user,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use probe_common::{
    CFG_FILTER_COMM, CFG_FILTER_PIDS, CFG_PROTO_HTTP, CONN_IGNORED, CONN_MUTED, ConnState,
    DIR_EGRESS, DIR_INGRESS, EventHeader, EventKind, PROTO_HTTP2, PROTO_MATCHED, PROTO_REJECTED,
    ROLE_UNKNOWN, Syscall, stat,
};

use crate::{
    emit::{self, DataMeta, Source},
    maps::{
        BUF_IOVEC, BUF_MMSGHDR, BUF_MSGHDR, BUF_NONE, BUF_PLAIN, CONFIG, CONNS, PENDING, PIDS,
        Pending, count, pending_put, pending_take,
    },
    socket, task,
};

/// `MSG_PEEK`: the bytes stay in the socket and will be read again.
const MSG_PEEK: u64 = 0x2;
/// `MSG_TRUNC` on a stream socket: bytes are discarded, not copied.
const MSG_TRUNC: u64 = 0x20;

/// Reads tracepoint argument `n` (0-based) of a `sys_enter_*` event.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: syscall tracepoint records hold 6 argument slots from offset
    // 16; direct context reads are bounds-checked by the verifier.
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(2 + n)) }
}

/// Reads `ret` of a `sys_exit_*` event.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    arg(ctx, 0) as i64
}

/// Whether the current process passes the pid and comm filters.
#[inline(always)]
pub fn traced(tgid: u32) -> bool {
    let cfg = CONFIG.load();
    if tgid == cfg.self_tgid {
        return false;
    }
    // SAFETY: read-only lookup of a u8 value.
    if cfg.flags & CFG_FILTER_PIDS != 0 && unsafe { PIDS.get(&tgid) }.is_none() {
        return false;
    }
    if cfg.flags & CFG_FILTER_COMM != 0 && task::comm() != cfg.comm {
        return false;
    }
    true
}

/// Saves a data syscall's arguments if `fd` is a socket we capture.
#[inline(always)]
fn enter(
    fd: i32,
    syscall: Syscall,
    direction: u8,
    buf_kind: u8,
    ptr: u64,
    count_: u64,
    opaque: bool,
) {
    let id = task::pid_tgid();
    let tgid = (id >> 32) as u32;
    if !traced(tgid) {
        return;
    }
    let Some((state, _)) =
        socket::lookup_or_track(tgid, id as u32, fd, ROLE_UNKNOWN, syscall as u8, 0)
    else {
        return;
    };
    // SAFETY: pointer into a map value, valid for this program run.
    let (flags, proto, generation) =
        unsafe { ((*state).flags, (*state).proto, (*state).generation) };
    if flags & (CONN_IGNORED | CONN_MUTED) != 0 || proto == PROTO_REJECTED {
        return;
    }
    let pending = Pending {
        fd,
        syscall: syscall as u8,
        direction,
        buf_kind,
        opaque: opaque as u8,
        ptr,
        count: count_,
        // SAFETY: plain helper call.
        enter_ns: unsafe { bpf_ktime_get_ns() },
        generation,
    };
    pending_put(id, &pending);
}

/// Emits the bytes a data syscall moved.
#[inline(always)]
fn exit(ctx: &TracePointContext, syscall: Syscall) {
    let id = task::pid_tgid();
    let Some(p) = pending_take(id, syscall as u8) else {
        return;
    };
    let rc = ret(ctx);
    if rc <= 0 {
        return;
    }
    let tgid = (id >> 32) as u32;
    let key = probe_common::ConnKey { tgid, fd: p.fd };
    let Some(state) = CONNS.get_ptr_mut(&key) else {
        count(stat::LOST_CONN, 1);
        return;
    };
    // SAFETY: pointer into a map value, valid for this program run.
    if unsafe { (*state).generation } != p.generation {
        count(stat::LOST_CONN, 1);
        return;
    }
    let meta = DataMeta {
        header: EventHeader {
            kind: EventKind::Data as u32,
            tgid,
            tid: id as u32,
            fd: p.fd,
            generation: p.generation,
            ts_ns: 0,
            comm: task::comm(),
        },
        enter_ns: p.enter_ns,
        syscall: p.syscall,
        direction: p.direction,
    };
    let cfg = CONFIG.load();
    let rc = rc as u64;
    match p.buf_kind {
        BUF_PLAIN if p.opaque == 0 => {
            send(
                &meta,
                state,
                &Source::Plain { ptr: p.ptr },
                rc,
                cfg.cap_bytes,
            );
        }
        BUF_IOVEC => {
            let src = Source::Iovec {
                ptr: p.ptr,
                count: p.count,
            };
            send(&meta, state, &src, rc, cfg.cap_bytes);
        }
        BUF_MSGHDR => {
            // struct user_msghdr { void *msg_name; int msg_namelen;
            //   struct iovec *msg_iov; size_t msg_iovlen; ... }
            // SAFETY: user memory read through the helper.
            let src = match unsafe { bpf_probe_read_user((p.ptr + 16) as *const [u64; 2]) } {
                Ok([iov, iovlen]) => Source::Iovec {
                    ptr: iov,
                    count: iovlen,
                },
                Err(_) => {
                    count(stat::READ_FAILURES, 1);
                    Source::Opaque
                }
            };
            send(&meta, state, &src, rc, cfg.cap_bytes);
        }
        BUF_MMSGHDR => {
            // The return value counts messages; bytes come from each msg_len.
            let total = emit::mmsg_total(p.ptr, rc);
            if total > 0 {
                let src = Source::Mmsg {
                    ptr: p.ptr,
                    count: rc,
                };
                send(&meta, state, &src, total, cfg.cap_bytes);
            }
        }
        _ => send(&meta, state, &Source::Opaque, rc, cfg.cap_bytes),
    }
}

/// Syscalls that moved fewer bytes than this are not judged by the protocol
/// check (it needs a method's first four bytes): they are sent as they are.
const MIN_PROBE_BYTES: u64 = 4;

/// Assigns stream positions to `moved` bytes, applies the protocol check,
/// and emits them, copying at most `cap` bytes (`Config::h2_cap_bytes` on
/// HTTP/2 connections).
#[inline(always)]
fn send(meta: &DataMeta, state: *mut ConnState, src: &Source, moved: u64, cap: u32) {
    let mut cap = cap;
    let dir = if meta.direction == DIR_EGRESS { 0 } else { 1 };
    // SAFETY: pointer into a map value; the position counter is updated
    // atomically because threads may share a socket. SeqCst, not Relaxed:
    // LLVM 22's BPF backend turns a relaxed fetch-add into a plain `lock add`
    // and then hands back the addend instead of the old value.
    let pos = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*state).pos[dir], moved)
    };
    let cfg = CONFIG.load();
    if cfg.flags & CFG_PROTO_HTTP != 0 {
        // SAFETY: pointer into a map value, valid for this program run.
        let mut proto = unsafe { (*state).proto };
        if proto != PROTO_MATCHED && proto != PROTO_HTTP2 {
            if proto == PROTO_REJECTED {
                return;
            }
            if moved < MIN_PROBE_BYTES && !matches!(src, Source::Opaque) {
                // Too short to judge (a reader taking a request a byte at a
                // time, like python's CGIHTTPRequestHandler): send it, let
                // userspace decide, and do not count it as a probe. Judged
                // and dropped, these bytes would leave nothing to decide on.
            } else if let Some(matched) = looks_like_http(src, moved) {
                proto = matched;
                // SAFETY: as above.
                unsafe { (*state).proto = matched };
            } else {
                // SAFETY: as above.
                let probes = unsafe { (*state).probes }.saturating_add(1);
                unsafe { (*state).probes = probes };
                if probes as u32 >= cfg.proto_probes {
                    unsafe { (*state).proto = PROTO_REJECTED };
                    count(stat::PROTO_REJECTED, 1);
                }
                return;
            }
        }
        if proto == PROTO_HTTP2 {
            cap = cfg.h2_cap_bytes;
        }
    }
    emit::data(meta, src, pos, moved, cap);
}

/// Reads the first bytes of `src` and checks them for the start of an HTTP/1
/// message (`PROTO_MATCHED`), the HTTP/2 client preface or a plausible
/// HTTP/2 frame header, for a connection joined mid-way (`PROTO_HTTP2`).
#[inline(always)]
fn looks_like_http(src: &Source, moved: u64) -> Option<u8> {
    let ptr = match *src {
        Source::Plain { ptr } => ptr,
        Source::Iovec { ptr, count } => {
            if count == 0 {
                return None;
            }
            // SAFETY: user memory read through the helper.
            match unsafe { bpf_probe_read_user(ptr as *const [u64; 2]) } {
                Ok([base, len]) if len >= 9 || len as u64 == moved => base,
                _ => return None,
            }
        }
        Source::Mmsg { ptr, count } => {
            if count == 0 {
                return None;
            }
            // The first message's first segment.
            // SAFETY: user memory reads through the helper.
            let iov = match unsafe { bpf_probe_read_user((ptr + 16) as *const [u64; 2]) } {
                Ok([iov, iovlen]) if iovlen > 0 => iov,
                _ => return None,
            };
            match unsafe { bpf_probe_read_user(iov as *const [u64; 2]) } {
                Ok([base, len]) if len >= 9 => base,
                _ => return None,
            }
        }
        Source::Opaque => return None,
    };
    let mut b = [0u8; 16];
    let n = if moved < 16 { moved } else { 16 };
    // SAFETY: reads at most 16 bytes into a 16-byte stack buffer.
    if unsafe { raw_probe_read_user(b.as_mut_ptr().cast(), n as u32, ptr as *const _) } != 0 {
        return None;
    }
    http_start(&b, n as usize)
}

/// The protocol check itself, on the first `n` (≤ 16) bytes: the
/// `PROTO_*` they show, if any.
#[inline(always)]
fn http_start(b: &[u8; 16], n: usize) -> Option<u8> {
    if n >= 4 {
        let w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        // "PRI " starts the HTTP/2 client preface; request methods (RFC 9110
        // §9) and the WebDAV ones seen in the wild, by their first four
        // bytes; "HTTP" starts a status line.
        if w == u32::from_be_bytes(*b"PRI ") {
            return Some(PROTO_HTTP2);
        }
        const STARTS: [&[u8; 4]; 10] = [
            b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
            b"HTTP",
        ];
        let mut i = 0;
        while i < STARTS.len() {
            if w == u32::from_be_bytes(*STARTS[i]) {
                return Some(PROTO_MATCHED);
            }
            i += 1;
        }
    }
    if n >= 9 && h2_frame_header(b) {
        return Some(PROTO_HTTP2);
    }
    None
}

/// A strict check of an HTTP/2 frame header (RFC 9113 §4.1):
/// length ≤ 16384 (the default SETTINGS_MAX_FRAME_SIZE), a known type,
/// the reserved bit clear, and stream id / length rules per type (§6).
#[inline(always)]
fn h2_frame_header(b: &[u8; 16]) -> bool {
    let len = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
    let ty = b[3];
    let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
    if len > 16384 || ty > 9 || stream & 0x8000_0000 != 0 {
        return false;
    }
    match ty {
        // DATA, HEADERS, CONTINUATION: on a stream.
        0 | 1 | 9 => stream != 0,
        // PRIORITY
        2 => stream != 0 && len == 5,
        // RST_STREAM
        3 => stream != 0 && len == 4,
        // SETTINGS
        4 => stream == 0 && len % 6 == 0,
        // PUSH_PROMISE
        5 => stream != 0 && len >= 4,
        // PING
        6 => stream == 0 && len == 8,
        // GOAWAY
        7 => stream == 0 && len >= 8,
        // WINDOW_UPDATE
        _ => len == 4,
    }
}

macro_rules! plain_io {
    ($enter:ident, $exit:ident, $sys:expr, $dir:expr, $flags_arg:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            let flags = if $flags_arg > 0 {
                arg(&ctx, $flags_arg)
            } else {
                0
            };
            if flags & MSG_PEEK != 0 {
                return 0;
            }
            let opaque = flags & MSG_TRUNC != 0;
            enter(
                arg(&ctx, 0) as i32,
                $sys,
                $dir,
                BUF_PLAIN,
                arg(&ctx, 1),
                arg(&ctx, 2),
                opaque,
            );
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx, $sys);
            0
        }
    };
}

macro_rules! vector_io {
    ($enter:ident, $exit:ident, $sys:expr, $dir:expr, $kind:expr, $flags_arg:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            let flags = if $flags_arg > 0 {
                arg(&ctx, $flags_arg)
            } else {
                0
            };
            if flags & MSG_PEEK != 0 {
                return 0;
            }
            let kind = if flags & MSG_TRUNC != 0 {
                BUF_NONE
            } else {
                $kind
            };
            enter(
                arg(&ctx, 0) as i32,
                $sys,
                $dir,
                kind,
                arg(&ctx, 1),
                arg(&ctx, 2),
                false,
            );
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx, $sys);
            0
        }
    };
}

// read(fd, buf, count) / write(fd, buf, count)
plain_io!(
    data_enter_read,
    data_exit_read,
    Syscall::Read,
    DIR_INGRESS,
    0
);
plain_io!(
    data_enter_write,
    data_exit_write,
    Syscall::Write,
    DIR_EGRESS,
    0
);
// recvfrom(fd, ubuf, size, flags, addr, addr_len) / sendto(fd, buff, len, flags, ...)
plain_io!(
    data_enter_recvfrom,
    data_exit_recvfrom,
    Syscall::Recvfrom,
    DIR_INGRESS,
    3
);
plain_io!(
    data_enter_sendto,
    data_exit_sendto,
    Syscall::Sendto,
    DIR_EGRESS,
    0
);
// readv(fd, vec, vlen) / writev(fd, vec, vlen)
vector_io!(
    data_enter_readv,
    data_exit_readv,
    Syscall::Readv,
    DIR_INGRESS,
    BUF_IOVEC,
    0
);
vector_io!(
    data_enter_writev,
    data_exit_writev,
    Syscall::Writev,
    DIR_EGRESS,
    BUF_IOVEC,
    0
);
// recvmsg(fd, msg, flags) / sendmsg(fd, msg, flags)
vector_io!(
    data_enter_recvmsg,
    data_exit_recvmsg,
    Syscall::Recvmsg,
    DIR_INGRESS,
    BUF_MSGHDR,
    2
);
vector_io!(
    data_enter_sendmsg,
    data_exit_sendmsg,
    Syscall::Sendmsg,
    DIR_EGRESS,
    BUF_MSGHDR,
    0
);
// recvmmsg(fd, mmsg, vlen, flags, timeout) / sendmmsg(fd, mmsg, vlen, flags)
vector_io!(
    data_enter_recvmmsg,
    data_exit_recvmmsg,
    Syscall::Recvmmsg,
    DIR_INGRESS,
    BUF_MMSGHDR,
    3
);
vector_io!(
    data_enter_sendmmsg,
    data_exit_sendmmsg,
    Syscall::Sendmmsg,
    DIR_EGRESS,
    BUF_MMSGHDR,
    0
);

/// sendfile64(out_fd, in_fd, offset, count): bytes go from a file to a
/// socket inside the kernel; we count them (an opaque, truncated event) so
/// the stream positions stay exact.
#[tracepoint]
pub fn data_enter_sendfile64(ctx: TracePointContext) -> u32 {
    enter(
        arg(&ctx, 0) as i32,
        Syscall::Sendfile,
        DIR_EGRESS,
        BUF_NONE,
        0,
        0,
        true,
    );
    0
}

#[tracepoint]
pub fn data_exit_sendfile64(ctx: TracePointContext) -> u32 {
    exit(&ctx, Syscall::Sendfile);
    0
}

/// splice(fd_in, off_in, fd_out, off_out, len, flags): like sendfile when
/// `fd_out` is a socket; when `fd_in` is one, bytes leave it unseen.
#[tracepoint]
pub fn data_enter_splice(ctx: TracePointContext) -> u32 {
    let fd_in = arg(&ctx, 0) as i32;
    let fd_out = arg(&ctx, 2) as i32;
    // Only one of the two can be the socket we track; try the output first.
    let id = task::pid_tgid();
    enter(fd_out, Syscall::Splice, DIR_EGRESS, BUF_NONE, 0, 0, true);
    // SAFETY: read-only look at this thread's own slot.
    if unsafe { PENDING.get(&id) }.is_none_or(|p| p.syscall != Syscall::Splice as u8) {
        enter(fd_in, Syscall::Splice, DIR_INGRESS, BUF_NONE, 0, 0, true);
    }
    0
}

#[tracepoint]
pub fn data_exit_splice(ctx: TracePointContext) -> u32 {
    exit(&ctx, Syscall::Splice);
    0
}
