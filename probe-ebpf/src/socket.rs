//! Reads of kernel structs: from an fd of the current task to its `struct
//! file`, and from a socket file to its family, type and addresses.
//!
//! Field offsets come from the running kernel's BTF (`OFFSETS`, filled in by
//! the loader), so nothing here hard-codes a kernel version.

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel};
use probe_common::{
    CFG_FILTER_PORTS, CFG_PROTO_HTTP, CFG_UNIX, CONN_IGNORED, ConnEvent, ConnKey, ConnState,
    EventHeader, EventKind, KernelOffsets, PROTO_UNKNOWN, stat,
};

use crate::{
    emit,
    maps::{CONFIG, CONNS, OFFSETS, PORTS, TGIDS, count, offset},
    task,
};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const SOCK_STREAM: u16 = 1;

#[inline(always)]
unsafe fn read<T>(base: u64, off: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel validates the address; a bad pointer
    // gives an error, never a fault.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.map_err(|e| e as i64)
}

/// The `struct file *` behind `fd` in the current task, or an error.
///
/// task → files → fdt are read directly through the kernel's typed pointer
/// to the current task: the verifier checks each constant offset against
/// the kernel's BTF and the loads are fault-safe, without a helper call
/// each (calls are dear on kernels with return-stack mitigations). The
/// slot `fd[fd]` has a variable index and is read through the helper.
#[inline(always)]
pub fn fd_to_file(fd: i32) -> Result<u64, i64> {
    if fd < 0 {
        return Err(-1);
    }
    let (task_files, files_fdt) = (offset!(task_files), offset!(files_fdt));
    let (fdt_max_fds, fdt_fd) = (offset!(fdt_max_fds), offset!(fdt_fd));
    // SAFETY: loads through the kernel's typed task pointer at offsets of
    // its BTF; the last read goes through bpf_probe_read_kernel.
    unsafe {
        let task = task::current();
        let files = *task.add(task_files).cast::<*const u8>();
        if files.is_null() {
            return Err(-1);
        }
        let fdt = *files.add(files_fdt).cast::<*const u8>();
        if fdt.is_null() {
            return Err(-1);
        }
        let max_fds = *fdt.add(fdt_max_fds).cast::<u32>();
        if fd as u32 >= max_fds {
            return Err(-1);
        }
        let array = *fdt.add(fdt_fd).cast::<u64>();
        let file: u64 = read(array, (fd as u32) * 8)?;
        if file == 0 {
            return Err(-1);
        }
        Ok(file)
    }
}

/// What a socket file is, read once when it is first seen.
pub struct SocketInfo {
    pub family: u16,
    pub sock_type: u16,
    pub state: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// `Ok(None)` when `file` is not a socket.
#[inline(always)]
fn socket_info(o: &KernelOffsets, file: u64) -> Result<Option<SocketInfo>, i64> {
    // SAFETY: every read goes through bpf_probe_read_kernel.
    unsafe {
        let inode: u64 = read(file, o.file_inode)?;
        let mode: u16 = read(inode, o.inode_mode)?;
        if mode & S_IFMT != S_IFSOCK {
            return Ok(None);
        }
        let sock: u64 = read(file, o.file_private_data)?;
        let sock_type: u16 = read(sock, o.socket_type)?;
        let sk: u64 = read(sock, o.socket_sk)?;
        let family: u16 = read(sk, o.sk_family)?;
        let state: u8 = read(sk, o.sk_state)?;
        let mut info = SocketInfo {
            family,
            sock_type,
            state,
            local_port: 0,
            remote_port: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
        };
        if family == AF_INET || family == AF_INET6 {
            let dport: u16 = read(sk, o.sk_dport)?;
            let num: u16 = read(sk, o.sk_num)?;
            info.remote_port = u16::from_be(dport);
            info.local_port = num;
            if family == AF_INET {
                let d: [u8; 4] = read(sk, o.sk_daddr)?;
                let s: [u8; 4] = read(sk, o.sk_rcv_saddr)?;
                info.remote_addr[..4].copy_from_slice(&d);
                info.local_addr[..4].copy_from_slice(&s);
            } else {
                info.remote_addr = read(sk, o.sk_v6_daddr)?;
                info.local_addr = read(sk, o.sk_v6_rcv_saddr)?;
            }
        }
        Ok(Some(info))
    }
}

/// Whether the configuration wants this socket at all.
#[inline(always)]
fn wanted(info: &SocketInfo) -> bool {
    let cfg = CONFIG.load();
    match info.family {
        AF_INET | AF_INET6 => {}
        AF_UNIX if cfg.flags & CFG_UNIX != 0 => {}
        _ => return false,
    }
    if cfg.flags & CFG_PROTO_HTTP != 0 && info.sock_type != SOCK_STREAM {
        return false;
    }
    if cfg.flags & CFG_FILTER_PORTS != 0 {
        // SAFETY: read-only lookups of plain u8 values.
        let hit = unsafe {
            PORTS.get(&info.local_port).is_some() || PORTS.get(&info.remote_port).is_some()
        };
        if !hit {
            return false;
        }
    }
    true
}

/// The connection-table entry for `fd` of the current process, creating it
/// (and announcing it to userspace with a `ConnEvent`) when the fd is a socket
/// we have not seen, or now refers to a different socket than before.
///
/// `role` and `syscall` describe how it was found (connect, accept, or an I/O
/// syscall on a socket that predates us). Returns `None` for non-sockets and
/// on failures (counted). Ignored sockets return their entry: callers check
/// `CONN_IGNORED`. The flag is true when the entry was created now.
#[inline(always)]
pub fn lookup_or_track(
    tgid: u32,
    tid: u32,
    fd: i32,
    role: u8,
    syscall: u8,
    ret: i32,
) -> Option<(*mut ConnState, bool)> {
    let o = OFFSETS.load();
    if o.valid == 0 {
        return None;
    }
    let file = match fd_to_file(fd) {
        Ok(f) => f,
        Err(_) => return None,
    };
    let key = ConnKey { tgid, fd };
    if let Some(state) = CONNS.get_ptr_mut(&key) {
        // SAFETY: pointer into a map value, valid for this program run.
        if unsafe { (*state).file } == file {
            return Some((state, false));
        }
    }
    let info = match socket_info(&o, file) {
        Ok(Some(info)) => info,
        Ok(None) => return None,
        Err(_) => {
            count(stat::KERNEL_READ_FAILURES, 1);
            return None;
        }
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let ignored = !wanted(&info);
    let state = ConnState {
        file,
        generation: now,
        pos: [0, 0],
        flags: if ignored { CONN_IGNORED } else { 0 },
        proto: PROTO_UNKNOWN,
        probes: 0,
        role,
        family: info.family,
        sock_type: info.sock_type,
    };
    if CONNS.insert(&key, &state, 0).is_err() {
        count(stat::CONNS_FULL, 1);
        return None;
    }
    if !ignored {
        // Best effort: a full table only means this exit goes unreported
        // and userspace frees the connections on their close events.
        let _ = TGIDS.insert(&tgid, &1, 0);
        announce(tgid, tid, fd, now, &info, role, syscall, ret);
    }
    CONNS.get_ptr_mut(&key).map(|s| (s, true))
}

/// Sends a `ConnEvent` for a socket.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn announce(
    tgid: u32,
    tid: u32,
    fd: i32,
    generation: u64,
    info: &SocketInfo,
    role: u8,
    syscall: u8,
    ret: i32,
) {
    let ev = ConnEvent {
        header: EventHeader {
            kind: EventKind::Conn as u32,
            tgid,
            tid,
            fd,
            generation,
            ts_ns: generation,
            comm: task::comm(),
        },
        family: info.family,
        sock_type: info.sock_type,
        role,
        state: info.state,
        syscall,
        _pad: 0,
        ret,
        local_port: info.local_port,
        remote_port: info.remote_port,
        local_addr: info.local_addr,
        remote_addr: info.remote_addr,
    };
    emit::record(&ev);
}

/// Re-reads the socket behind an existing entry and announces it again with
/// a role (connect/accept on a socket already tracked, e.g. UDP connect).
#[inline(always)]
pub fn reannounce(
    tgid: u32,
    tid: u32,
    fd: i32,
    state: *mut ConnState,
    role: u8,
    syscall: u8,
    ret: i32,
) {
    let o = OFFSETS.load();
    // SAFETY: pointer into a map value, valid for this program run.
    let (file, generation, flags) = unsafe { ((*state).file, (*state).generation, (*state).flags) };
    if flags & CONN_IGNORED != 0 {
        return;
    }
    if let Ok(Some(info)) = socket_info(&o, file) {
        // SAFETY: as above.
        unsafe { (*state).role = role };
        announce(tgid, tid, fd, generation, &info, role, syscall, ret);
    }
}
