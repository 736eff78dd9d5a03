//! Maps and load-time globals shared by every program.

use crate::emit::Walk;
use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use probe_common::{CHUNK_SIZE, Config, ConnKey, ConnState, DataEvent, KernelOffsets, stat};

/// Filters and caps, written by the loader.
#[unsafe(no_mangle)]
pub static CONFIG: Global<Config> = Global::new(Config::empty());

/// Kernel struct field offsets from BTF, written by the loader.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_comm: 0,
    task_group_leader: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_inode: 0,
    file_private_data: 0,
    inode_mode: 0,
    socket_type: 0,
    socket_sk: 0,
    sk_family: 0,
    sk_state: 0,
    sk_daddr: 0,
    sk_rcv_saddr: 0,
    sk_dport: 0,
    sk_num: 0,
    sk_v6_daddr: 0,
    sk_v6_rcv_saddr: 0,
    valid: 0,
});

/// One field of `OFFSETS`, read on its own. The loader's globals live in a
/// read-only map that is frozen before the programs load, so the verifier
/// knows each such value as a constant; a whole-struct copy on the stack
/// would lose that for the 4-byte fields.
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: `Global` is a transparent wrapper of the value; a volatile
        // read of one field of a static.
        unsafe {
            core::ptr::read_volatile(
                &raw const (*(&raw const $crate::maps::OFFSETS)
                    .cast::<probe_common::KernelOffsets>())
                .$field,
            )
        } as usize
    };
}

pub(crate) use offset;

/// Every record for userspace. The loader sets its size (`--ring-mb`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024 * 1024, 0);

/// Arguments of the syscall each thread is in, saved at entry for the exit
/// handler. Keyed by pid_tgid (one syscall per thread at a time). A thread
/// keeps its slot from one syscall to the next, written in place, and frees
/// it when it exits: no hash insert and delete per syscall.
#[map]
pub static PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(65536, 0);

/// `Pending::syscall` of a slot whose syscall has exited.
const SLOT_USED: u8 = 0;

/// Saves the current thread's syscall arguments.
#[inline(always)]
pub fn pending_put(id: u64, pending: &Pending) {
    if let Some(slot) = PENDING.get_ptr_mut(&id) {
        // SAFETY: pointer into a map value; only this thread uses its slot.
        unsafe { *slot = *pending };
    } else if PENDING.insert(&id, pending, 0).is_err() {
        count(stat::PENDING_FULL, 1);
    }
}

/// Takes the current thread's saved arguments if they are `syscall`'s;
/// the slot is marked used either way (a slot left by another syscall, e.g.
/// one whose exit fired before our exit programs were attached, is stale).
#[inline(always)]
pub fn pending_take(id: u64, syscall: u8) -> Option<Pending> {
    let slot = PENDING.get_ptr_mut(&id)?;
    // SAFETY: pointer into a map value; only this thread uses its slot.
    let p = unsafe { *slot };
    unsafe { (*slot).syscall = SLOT_USED };
    (p.syscall == syscall).then_some(p)
}

/// Sockets we have seen, keyed by (tgid, fd). Entries go at close; userspace
/// removes those of exited processes. Not an LRU: a live connection must
/// never be evicted silently (a failed insert is counted instead).
#[map]
pub static CONNS: HashMap<ConnKey, ConnState> = HashMap::with_max_entries(65536, 0);

/// Processes with at least one captured socket: only their exits are
/// reported, so userspace frees their connections without hearing about
/// every short-lived process on the machine.
#[map]
pub static TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// Pids to capture under `CFG_FILTER_PIDS`.
#[map]
pub static PIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Ports to capture under `CFG_FILTER_PORTS` (local or remote).
#[map]
pub static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// Per-CPU counters, indexed by `probe_common::stat`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Staging area for one data event: header then payload. Indexed by CPU id
/// (the loader sizes it to the number of possible CPUs). Twice the chunk
/// size so that "offset < CHUNK and length <= CHUNK" is provably in bounds.
#[map]
pub static SCRATCH: Array<Scratch> = Array::with_max_entries(256, 0);

#[repr(C)]
pub struct Scratch {
    pub event: DataEvent,
    pub data: [u8; 2 * CHUNK_SIZE],
    pub walk: Walk,
    /// Bytes this CPU has written since it last asked the ring whether to
    /// wake the reader (kept across syscalls).
    pub unwoken: u64,
    /// When this CPU last forced a wake-up of the reader (ktime ns).
    pub woke_ns: u64,
}

/// Where a syscall's bytes are, as saved at entry.
pub const BUF_NONE: u8 = 0;
/// `ptr` is a buffer of `count` bytes.
pub const BUF_PLAIN: u8 = 1;
/// `ptr` is an array of `count` `struct iovec`.
pub const BUF_IOVEC: u8 = 2;
/// `ptr` is a `struct user_msghdr`.
pub const BUF_MSGHDR: u8 = 3;
/// `ptr` is an array of `count` `struct mmsghdr`.
pub const BUF_MMSGHDR: u8 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    pub fd: i32,
    /// A `probe_common::Syscall`.
    pub syscall: u8,
    pub direction: u8,
    /// `BUF_*`.
    pub buf_kind: u8,
    /// Bytes leave user memory unseen (sendfile, splice, MSG_TRUNC).
    pub opaque: u8,
    pub ptr: u64,
    pub count: u64,
    pub enter_ns: u64,
    pub generation: u64,
}

#[inline(always)]
pub fn count(index: u32, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; programs do not nest on one CPU.
        unsafe { *p += n };
    }
}
