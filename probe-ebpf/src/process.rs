//! Process exit: drop the thread's in-flight syscall, and tell userspace
//! when a whole process with captured sockets is gone so it can free that
//! process's connections.
//!
//! `sched/sched_process_exit`: comm[16] @8, pid @24, prio @28,
//! group_dead (bool) @32.

use aya_ebpf::{
    EbpfContext, helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext,
};
use probe_common::{EventHeader, EventKind, ProcExitEvent};

use crate::{
    emit,
    maps::{PENDING, TGIDS},
    task,
};

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    let id = task::pid_tgid();
    let _ = PENDING.remove(&id);
    // SAFETY: direct read of the tracepoint record, bounds-checked by the verifier.
    let group_dead = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(32)) };
    let tgid = (id >> 32) as u32;
    // SAFETY: existence check only.
    if group_dead == 0 || unsafe { TGIDS.get(&tgid) }.is_none() {
        return 0;
    }
    let _ = TGIDS.remove(&tgid);
    let ev = ProcExitEvent {
        header: EventHeader {
            kind: EventKind::ProcExit as u32,
            tgid,
            tid: id as u32,
            fd: -1,
            generation: 0,
            // SAFETY: plain helper call.
            ts_ns: unsafe { bpf_ktime_get_ns() },
            comm: task::comm(),
        },
    };
    emit::record(&ev);
    0
}
