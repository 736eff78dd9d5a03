//! Who is running: the current task's ids and name, read straight from its
//! `task_struct` through the kernel's typed pointer.
//!
//! The verifier checks each load against the kernel's BTF (the offsets are
//! constants, see `maps::offset!`) and such loads cannot fault, so these
//! cost a few instructions where the helpers (`bpf_get_current_pid_tgid`,
//! `bpf_get_current_comm`) cost a call each, and calls are dear on kernels
//! with return-stack mitigations. Both give global (initial namespace) ids,
//! as the helpers do.

use aya_ebpf::helpers::bpf_get_current_task_btf;
use probe_common::COMM_LEN;

use crate::maps::offset;

/// The current `struct task_struct *`, for loads at BTF offsets.
#[inline(always)]
pub fn current() -> *const u8 {
    // SAFETY: plain helper call; the pointer is the running task.
    unsafe { bpf_get_current_task_btf() }.cast::<u8>()
}

/// `tgid << 32 | pid`, as `bpf_get_current_pid_tgid` gives it.
#[inline(always)]
pub fn pid_tgid() -> u64 {
    let task = current();
    let (pid_at, tgid_at) = (offset!(task_pid), offset!(task_tgid));
    // SAFETY: loads of the task's `pid` and `tgid` at their BTF offsets.
    let (pid, tgid) = unsafe {
        (
            *task.add(pid_at).cast::<u32>(),
            *task.add(tgid_at).cast::<u32>(),
        )
    };
    (tgid as u64) << 32 | pid as u64
}

/// The current process's name: its main thread's comm, what
/// `/proc/PID/comm` shows and `--comm` matches. (Threads can have names of
/// their own, e.g. grpcio's `event_engine` threads in a `python3`.)
/// `TASK_COMM_LEN` bytes, NUL-padded: the kernel pads it when it sets it.
#[inline(always)]
pub fn comm() -> [u8; COMM_LEN] {
    let task = current();
    let (leader_at, comm_at) = (offset!(task_group_leader), offset!(task_comm));
    // SAFETY: loads at BTF offsets: the task's `group_leader` pointer, then
    // two 8-byte loads inside that task's `comm[16]`. Loads through a
    // pointer read this way are fault-safe.
    let (a, b) = unsafe {
        let leader = *task.add(leader_at).cast::<*const u8>();
        let at = leader.add(comm_at);
        (*at.cast::<u64>(), *at.add(8).cast::<u64>())
    };
    let mut out = [0u8; COMM_LEN];
    out[..8].copy_from_slice(&a.to_ne_bytes());
    out[8..].copy_from_slice(&b.to_ne_bytes());
    out
}
