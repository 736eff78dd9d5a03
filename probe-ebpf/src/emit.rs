//! Writing records to the ring buffer: fixed-size records, and payload
//! capture that walks plain buffers, iovecs and mmsg messages chunk by chunk.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    cty::c_void,
    helpers::{
        bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_user as raw_probe_read_user},
    },
};
use probe_common::{
    CHUNK_SIZE, DATA_LAST, DATA_READ_FAILED, DATA_TRUNCATED, DataEvent, EventHeader, EventKind,
    stat,
};

use crate::maps::{CONFIG, EVENTS, SCRATCH, Scratch, count};

/// Copies a fixed-size record (connection, close, exit, Go span, exec) into
/// the ring buffer, waking the reader as data events do; a full buffer is
/// counted.
#[inline(always)]
pub fn record<T>(ev: &T) {
    if EVENTS.output(ev, wakeup_flag()).is_err() {
        count(stat::RINGBUF_DROPS, 1);
    }
}

/// Ring buffer flag for an event: wake the reader only when enough bytes
/// wait (`Config::wakeup_bytes`); between wake-ups it polls on a short timer.
/// Waking it for every event costs a context switch per syscall, which on a
/// busy machine is most of what capture costs.
#[inline(always)]
pub fn wakeup_flag() -> u64 {
    let threshold = CONFIG.load().wakeup_bytes as u64;
    if threshold == 0 {
        return BPF_RB_FORCE_WAKEUP as u64;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) < threshold {
        return BPF_RB_NO_WAKEUP as u64;
    }
    match scratch() {
        // SAFETY: plain helper call.
        Some(s) => wake_gated(&mut s.woke_ns, unsafe { bpf_ktime_get_ns() }),
        None => BPF_RB_FORCE_WAKEUP as u64,
    }
}

/// `wakeup_flag` for data events: the ring is asked how full it is only
/// once this CPU has written a 64th of the wake-up threshold since it last
/// asked (a helper call per event was a tenth of the exit program's time).
/// With 64 CPUs that delays a wake-up by at most one threshold more.
#[inline(always)]
fn data_wakeup_flag(s: &mut Scratch, size: u64, now: u64) -> u64 {
    let threshold = CONFIG.load().wakeup_bytes as u64;
    if threshold == 0 {
        return BPF_RB_FORCE_WAKEUP as u64;
    }
    s.unwoken += size;
    if s.unwoken < threshold / 64 {
        return BPF_RB_NO_WAKEUP as u64;
    }
    s.unwoken = 0;
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) < threshold {
        return BPF_RB_NO_WAKEUP as u64;
    }
    wake_gated(&mut s.woke_ns, now)
}

/// Least time between two wake-ups one CPU forces. While the reader is
/// behind it is awake and draining (its poll returns at once), so more
/// wake-ups do nothing for it, and each one is an interrupt to this CPU
/// (on a virtual machine, an exit to the hypervisor): at 4 KiB writes they
/// were a tenth of the traced process's time. A reader gone to sleep is
/// woken at most this much later, while the ring holds an eighth of its
/// size or more.
const WAKE_GAP_NS: u64 = 1_000_000;

/// Forces a wake-up unless this CPU forced one less than `WAKE_GAP_NS` ago.
#[inline(always)]
fn wake_gated(woke_ns: &mut u64, now: u64) -> u64 {
    if now.wrapping_sub(*woke_ns) < WAKE_GAP_NS {
        return BPF_RB_NO_WAKEUP as u64;
    }
    *woke_ns = now;
    BPF_RB_FORCE_WAKEUP as u64
}

/// Hides a value from the optimiser so that bounds checks written after it
/// stay in the program for the verifier to see.
#[inline(always)]
fn opaque(v: u64) -> u64 {
    // SAFETY: a volatile read of a local: the optimiser must assume any
    // value comes back.
    unsafe { core::ptr::read_volatile(&v) }
}

/// Where the bytes of one syscall live.
pub enum Source {
    /// One user buffer.
    Plain { ptr: u64 },
    /// `count` `struct iovec` at `ptr`.
    Iovec { ptr: u64, count: u64 },
    /// `count` `struct mmsghdr` at `ptr` (sendmmsg/recvmmsg), each message
    /// with its own iovec and byte count.
    Mmsg { ptr: u64, count: u64 },
    /// Nothing readable (sendfile, splice, MSG_TRUNC): only the length.
    Opaque,
}

/// The event fields that are the same for every chunk of one syscall.
pub struct DataMeta {
    pub header: EventHeader,
    pub enter_ns: u64,
    pub syscall: u8,
    pub direction: u8,
}

/// State of one syscall's capture, shared with the per-step callback. It
/// lives in the per-CPU scratch map, not on the stack: values loaded from a
/// map are unknown to the verifier, so it checks the callback once instead of
/// following every iteration's exact numbers.
///
/// A syscall is a list of messages (one, except for sendmmsg/recvmmsg); a
/// message is a list of segments (one, except for iovecs); its bytes are
/// staged chunk by chunk and sent as `DataEvent`s.
#[repr(C)]
pub struct Walk {
    /// `struct mmsghdr` array, its length, and the next message to open.
    msg_ptr: u64,
    msg_count: u64,
    msg_next: u64,
    /// Stream position of the syscall's first byte, and bytes of the
    /// messages opened so far.
    base_pos: u64,
    msg_base: u64,
    /// Stream position of the current message's first byte.
    msg_pos: u64,
    /// Current user buffer (plain buffer, or current iovec segment).
    seg_ptr: u64,
    seg_left: u64,
    /// The current message's iovec array, and the next segment to read.
    iov_ptr: u64,
    iov_count: u64,
    iov_next: u64,
    /// Per-syscall (per-message for mmsg) capture cap.
    cap: u32,
    /// Bytes to capture of the current message: min(its length, cap).
    limit: u32,
    /// Bytes the current message moved.
    syscall_len: u32,
    /// Bytes of the current message captured so far.
    copied: u32,
    /// Bytes staged in `scratch.data`, and their offset in the message.
    chunk_len: u32,
    chunk_start: u32,
    failed: u32,
    /// A message is open.
    active: u32,
    /// Bytes of all mmsg messages (first pass).
    total: u64,
    /// The bytes never pass through user memory (sendfile, splice,
    /// MSG_TRUNC): not a truncation a bigger cap would avoid.
    opaque: u64,
}

/// Steps of the capture loop: each step opens a message, reads an iovec
/// entry, or copies one piece. Enough for a full-cap syscall in chunks plus
/// two steps per iovec segment (`UIO_MAXIOV` is 1024), several times over
/// for mmsg. `bpf_loop` checks the callback once, so the bound is free.
const MAX_STEPS: u32 = 1 << 16;

/// Largest sendmmsg/recvmmsg `vlen` (`UIO_MAXIOV`).
const MAX_MMSG: u64 = 1024;
/// `sizeof(struct mmsghdr)`: a 56-byte `user_msghdr` and `unsigned msg_len`.
const MMSGHDR_SIZE: u64 = 64;
/// Offsets in `struct user_msghdr` / `struct mmsghdr`.
const MSGHDR_IOV: u64 = 16;
const MMSGHDR_LEN: u64 = 56;

#[inline(always)]
fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: plain helper call.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // SAFETY: this CPU's slot; programs do not nest on one CPU.
    SCRATCH.get_ptr_mut(cpu).map(|p| unsafe { &mut *p })
}

/// Bytes moved by the first `count` messages of an mmsghdr array (the exit
/// value of sendmmsg/recvmmsg is a message count, not a byte count).
#[inline(always)]
pub fn mmsg_total(ptr: u64, count: u64) -> u64 {
    let Some(s) = scratch() else {
        return 0;
    };
    s.walk.msg_ptr = ptr;
    s.walk.total = 0;
    let n = if count > MAX_MMSG { MAX_MMSG } else { count };
    // SAFETY: `add_len` has the callback signature bpf_loop expects.
    unsafe { bpf_loop(n as u32, add_len as *mut c_void, core::ptr::null_mut(), 0) };
    s.walk.total
}

#[inline(never)]
extern "C" fn add_len(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    let at = s.walk.msg_ptr + index * MMSGHDR_SIZE + MMSGHDR_LEN;
    // SAFETY: user memory read through the helper.
    match unsafe { bpf_probe_read_user(at as *const u32) } {
        Ok(len) => {
            s.walk.total += len as u64;
            0
        }
        Err(_) => {
            count(stat::READ_FAILURES, 1);
            1
        }
    }
}

/// Emits `moved` bytes found at `src` as `DataEvent`s starting at stream
/// position `pos`, copying at most `cap` bytes per syscall (per message for
/// mmsg). The last event of each message carries `DATA_LAST`, plus
/// `DATA_TRUNCATED` when fewer bytes were captured than moved, so userspace
/// knows the exact size of the hole.
#[inline(always)]
pub fn data(meta: &DataMeta, src: &Source, pos: u64, moved: u64, cap: u32) {
    let Some(s) = scratch() else {
        return;
    };
    let syscall_len = if moved > u32::MAX as u64 {
        u32::MAX
    } else {
        moved as u32
    };
    s.event = DataEvent {
        header: EventHeader {
            kind: EventKind::Data as u32,
            ..meta.header
        },
        enter_ns: meta.enter_ns,
        pos,
        syscall_len,
        chunk_offset: 0,
        len: 0,
        syscall: meta.syscall,
        direction: meta.direction,
        flags: 0,
    };
    let w = &mut s.walk;
    w.base_pos = pos;
    w.msg_base = 0;
    w.msg_pos = pos;
    w.msg_next = 0;
    w.msg_count = 0;
    w.cap = cap;
    w.iov_next = 0;
    w.seg_left = 0;
    w.seg_ptr = 0;
    w.iov_ptr = 0;
    w.iov_count = 0;
    w.syscall_len = syscall_len;
    w.limit = if syscall_len < cap { syscall_len } else { cap };
    w.copied = 0;
    w.chunk_len = 0;
    w.chunk_start = 0;
    w.failed = 0;
    w.active = 1;
    w.opaque = matches!(src, Source::Opaque) as u64;
    match *src {
        Source::Plain { ptr } if w.limit as usize <= CHUNK_SIZE => {
            // One buffer, one event (most syscalls): no loop.
            let n = w.limit;
            let rc = stage(s, 0, n as u64, ptr);
            let w = &mut s.walk;
            if rc == 0 {
                w.copied = n;
                w.chunk_len = n;
            } else {
                w.failed = 1;
            }
            close_message(s);
            return;
        }
        Source::Plain { ptr } => {
            w.seg_ptr = ptr;
            w.seg_left = syscall_len as u64;
        }
        Source::Iovec { ptr, count } => {
            w.iov_ptr = ptr;
            w.iov_count = count;
        }
        Source::Mmsg { ptr, count } => {
            w.msg_ptr = ptr;
            w.msg_count = if count > MAX_MMSG { MAX_MMSG } else { count };
            w.active = 0;
        }
        Source::Opaque => {}
    }
    // SAFETY: `step` has the callback signature bpf_loop expects; it finds
    // its state in this CPU's scratch slot.
    unsafe { bpf_loop(MAX_STEPS, step as *mut c_void, core::ptr::null_mut(), 0) };
}

/// One step of the capture loop. Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    if s.walk.active == 0 {
        return open_message(s);
    }
    let w = &mut s.walk;
    if w.copied >= w.limit {
        return close_message(s);
    }
    if w.seg_left == 0 {
        if w.iov_next >= w.iov_count {
            return close_message(s);
        }
        // struct iovec { void *iov_base; size_t iov_len; }
        // SAFETY: user memory read through the helper.
        let iov: Result<[u64; 2], _> =
            unsafe { bpf_probe_read_user((w.iov_ptr + w.iov_next * 16) as *const [u64; 2]) };
        w.iov_next += 1;
        return match iov {
            Ok([base, len]) => {
                w.seg_ptr = base;
                w.seg_left = len;
                0
            }
            Err(_) => {
                w.failed = 1;
                close_message(s)
            }
        };
    }
    let chunk_len = w.chunk_len as u64 & (CHUNK_SIZE as u64 - 1);
    let mut piece = w.limit.saturating_sub(w.copied) as u64;
    if piece > w.seg_left {
        piece = w.seg_left;
    }
    let room = CHUNK_SIZE as u64 - chunk_len;
    if piece > room {
        piece = room;
    }
    let seg_ptr = w.seg_ptr;
    let piece = if piece > CHUNK_SIZE as u64 {
        CHUNK_SIZE as u64
    } else {
        piece
    };
    let rc = stage(s, chunk_len, piece, seg_ptr);
    let w = &mut s.walk;
    if rc != 0 {
        w.failed = 1;
        return close_message(s);
    }
    w.copied += piece as u32;
    w.chunk_len = chunk_len as u32 + piece as u32;
    w.seg_ptr += piece;
    w.seg_left -= piece;
    if w.chunk_len as usize >= CHUNK_SIZE && w.copied < w.limit {
        flush(s, false);
        let w = &mut s.walk;
        w.chunk_start += w.chunk_len;
        w.chunk_len = 0;
    }
    0
}

/// Copies `len` user bytes at `ptr` into the staging buffer at `off`;
/// returns the helper's result (0 on success).
#[inline(always)]
fn stage(s: &mut Scratch, off: u64, len: u64, ptr: u64) -> i64 {
    // Bounds the verifier can follow: off < CHUNK_SIZE and len <=
    // CHUNK_SIZE, so the copy stays in the 2 * CHUNK_SIZE buffer.
    let off = opaque(off) & (CHUNK_SIZE as u64 - 1);
    let len = opaque(len);
    let len = if len > CHUNK_SIZE as u64 {
        CHUNK_SIZE as u64
    } else {
        len
    };
    // SAFETY: in bounds as above; the helper validates the user pointer.
    unsafe {
        raw_probe_read_user(
            s.data.as_mut_ptr().add(off as usize).cast(),
            len as u32,
            ptr as *const c_void,
        )
    }
}

/// Opens the next mmsg message: its iovec, its length and position.
#[inline(always)]
fn open_message(s: &mut Scratch) -> i64 {
    let w = &mut s.walk;
    if w.msg_next >= w.msg_count {
        return 1;
    }
    let at = w.msg_ptr + w.msg_next * MMSGHDR_SIZE;
    w.msg_next += 1;
    // SAFETY: user memory reads through the helper.
    let iov = unsafe { bpf_probe_read_user((at + MSGHDR_IOV) as *const [u64; 2]) };
    let len = unsafe { bpf_probe_read_user((at + MMSGHDR_LEN) as *const u32) };
    let (Ok([iov_ptr, iov_count]), Ok(len)) = (iov, len) else {
        // Without the length, later positions would be wrong: stop here.
        count(stat::READ_FAILURES, 1);
        return 1;
    };
    if len == 0 {
        return 0;
    }
    w.msg_pos = w.base_pos + w.msg_base;
    w.msg_base += len as u64;
    w.iov_ptr = iov_ptr;
    w.iov_count = iov_count;
    w.iov_next = 0;
    w.seg_left = 0;
    w.syscall_len = len;
    w.limit = if len < w.cap { len } else { w.cap };
    w.copied = 0;
    w.chunk_len = 0;
    w.chunk_start = 0;
    w.failed = 0;
    w.active = 1;
    s.event.syscall_len = len;
    0
}

/// Sends the current message's last event and counts what was not captured.
#[inline(always)]
fn close_message(s: &mut Scratch) -> i64 {
    flush(s, true);
    let w = &mut s.walk;
    if w.copied < w.syscall_len && w.opaque == 0 {
        count(stat::TRUNCATED_SYSCALLS, 1);
        count(stat::TRUNCATED_BYTES, (w.syscall_len - w.copied) as u64);
    }
    if w.failed != 0 {
        count(stat::READ_FAILURES, 1);
    }
    w.active = 0;
    if w.msg_next >= w.msg_count {
        return 1;
    }
    0
}

/// Sends `scratch.event` with the staged chunk of the current message.
#[inline(always)]
fn flush(s: &mut Scratch, last: bool) {
    let w = &s.walk;
    let mut flags = 0u16;
    if last {
        flags |= DATA_LAST;
        if w.copied < w.syscall_len {
            flags |= DATA_TRUNCATED;
        }
    }
    if w.failed != 0 {
        flags |= DATA_READ_FAILED;
    }
    let (chunk_start, len, msg_pos) = (w.chunk_start, w.chunk_len, w.msg_pos);
    s.event.pos = msg_pos + chunk_start as u64;
    s.event.chunk_offset = chunk_start;
    s.event.len = len;
    s.event.flags = flags;
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    s.event.header.ts_ns = now;
    let len = opaque(len as u64);
    let len = if len > CHUNK_SIZE as u64 {
        CHUNK_SIZE as u64
    } else {
        len
    };
    let size = core::mem::size_of::<DataEvent>() as u64 + len;
    let flag = data_wakeup_flag(s, size, now);
    // SAFETY: `size` is at most the DataEvent plus CHUNK_SIZE, within the
    // scratch value, which starts with the event and then the data.
    let bytes =
        unsafe { core::slice::from_raw_parts((s as *const Scratch).cast::<u8>(), size as usize) };
    if EVENTS.output(bytes, flag).is_ok() {
        count(stat::EVENTS, 1);
        count(stat::BYTES, len);
    } else {
        count(stat::RINGBUF_DROPS, 1);
        count(stat::RINGBUF_DROP_BYTES, len);
    }
}
