//! connect, accept, accept4: a socket's role, and its addresses as the
//! kernel's socket holds them (so an accept with a NULL address buffer, or a
//! non-blocking connect, still gives both ends).
//!
//! `sys_enter_connect`: fd @16, uservaddr @24, addrlen @32.
//! `sys_exit_accept`/`sys_exit_accept4`: ret @16 is the new fd.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use probe_common::{ROLE_CLIENT, ROLE_SERVER, Syscall};

use crate::{
    data::{arg, ret, traced},
    maps::{BUF_NONE, Pending, pending_put, pending_take},
    socket, task,
};

/// `-EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i64 = -115;

#[tracepoint]
pub fn conn_enter_connect(ctx: TracePointContext) -> u32 {
    let id = task::pid_tgid();
    if !traced((id >> 32) as u32) {
        return 0;
    }
    let pending = Pending {
        fd: arg(&ctx, 0) as i32,
        syscall: Syscall::Connect as u8,
        direction: 0,
        buf_kind: BUF_NONE,
        opaque: 0,
        ptr: 0,
        count: 0,
        // SAFETY: plain helper call.
        enter_ns: unsafe { bpf_ktime_get_ns() },
        generation: 0,
    };
    pending_put(id, &pending);
    0
}

#[tracepoint]
pub fn conn_exit_connect(ctx: TracePointContext) -> u32 {
    let id = task::pid_tgid();
    let Some(p) = pending_take(id, Syscall::Connect as u8) else {
        return 0;
    };
    let rc = ret(&ctx);
    if rc != 0 && rc != EINPROGRESS {
        return 0;
    }
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    let sys = Syscall::Connect as u8;
    if let Some((state, false)) =
        socket::lookup_or_track(tgid, tid, p.fd, ROLE_CLIENT, sys, rc as i32)
    {
        // Already tracked (e.g. a UDP socket connected again): new role/peer.
        socket::reannounce(tgid, tid, p.fd, state, ROLE_CLIENT, sys, rc as i32);
    }
    0
}

#[inline(always)]
fn accepted(ctx: &TracePointContext, syscall: Syscall) {
    let rc = ret(ctx);
    if rc < 0 {
        return;
    }
    let id = task::pid_tgid();
    let tgid = (id >> 32) as u32;
    if !traced(tgid) {
        return;
    }
    let _ = socket::lookup_or_track(tgid, id as u32, rc as i32, ROLE_SERVER, syscall as u8, 0);
}

#[tracepoint]
pub fn conn_exit_accept(ctx: TracePointContext) -> u32 {
    accepted(&ctx, Syscall::Accept);
    0
}

#[tracepoint]
pub fn conn_exit_accept4(ctx: TracePointContext) -> u32 {
    accepted(&ctx, Syscall::Accept4);
    0
}
