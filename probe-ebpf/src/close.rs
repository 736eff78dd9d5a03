//! close: the end of a captured socket's life.
//!
//! `sys_enter_close`: fd @16. `sys_exit_close`: ret @16.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use probe_common::{CONN_IGNORED, CloseEvent, ConnKey, EventHeader, EventKind, Syscall};

use crate::{
    data::{arg, ret, traced},
    emit,
    maps::{BUF_NONE, CONNS, Pending, pending_put, pending_take},
    task,
};

#[tracepoint]
pub fn close_enter_close(ctx: TracePointContext) -> u32 {
    let id = task::pid_tgid();
    let tgid = (id >> 32) as u32;
    if !traced(tgid) {
        return 0;
    }
    let fd = arg(&ctx, 0) as i32;
    // SAFETY: the value is copied out of the map.
    let Some(state) = (unsafe { CONNS.get(&ConnKey { tgid, fd }) }).copied() else {
        return 0;
    };
    let pending = Pending {
        fd,
        syscall: Syscall::Close as u8,
        direction: 0,
        buf_kind: BUF_NONE,
        opaque: 0,
        ptr: 0,
        count: 0,
        enter_ns: 0,
        generation: state.generation,
    };
    pending_put(id, &pending);
    0
}

#[tracepoint]
pub fn close_exit_close(ctx: TracePointContext) -> u32 {
    let id = task::pid_tgid();
    let Some(p) = pending_take(id, Syscall::Close as u8) else {
        return 0;
    };
    if ret(&ctx) != 0 {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    let key = ConnKey { tgid, fd: p.fd };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(state) = (unsafe { CONNS.get(&key) }).copied() else {
        return 0;
    };
    if state.generation != p.generation {
        return 0;
    }
    let _ = CONNS.remove(&key);
    if state.flags & CONN_IGNORED != 0 {
        return 0;
    }
    let ev = CloseEvent {
        header: EventHeader {
            kind: EventKind::Close as u32,
            tgid,
            tid: id as u32,
            fd: p.fd,
            generation: state.generation,
            // SAFETY: plain helper call.
            ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
            comm: task::comm(),
        },
        egress_bytes: state.pos[0],
        ingress_bytes: state.pos[1],
    };
    emit::record(&ev);
    0
}
