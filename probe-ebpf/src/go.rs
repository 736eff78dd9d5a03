//! Go uprobes: net/http server and client calls and goroutine creation,
//! read from Go's register ABI (Go ≥ 1.17, amd64), plus the exec
//! tracepoint that tells userspace about programs started later.
//!
//! Registers (Go internal ABI; `collector/src/golang/abi.rs` derives the
//! same from each function's signature, and the loader refuses a plan that
//! disagrees with the ones hard-wired here):
//!
//! | program | function | at | reads |
//! |---|---|---|---|
//! | `go_http_server_enter` | `net/http.serverHandler.ServeHTTP` | entry | `rw` data word RCX, `req` RDI |
//! | `go_http_server_return` | same | each `RET` | the `*http.response` saved at entry |
//! | `go_http_client_enter` | `net/http.(*Transport).roundTrip` | entry | `req` RBX |
//! | `go_http_client_return` | same | each `RET` | `*Response` RAX, error itab RBX |
//! | `go_newproc_enter` | `runtime.newproc1` | entry | creator `*g` RBX |
//! | `go_newproc_return` | same | each `RET` | new `*g` RAX |
//! | `go_grpc_stream_enter` | grpc-go `(*http2Client).NewStream` | entry | `callHdr` RDI |
//! | `go_grpc_stream_return` | same | each `RET` | `*Stream` RAX, error itab RBX |
//! | `go_grpc_write_header` | grpc-go `(*loopyWriter).writeHeader` | entry | `l` RAX (side), streamID RBX, endStream RCX, hf (RDI, RSI) |
//! | `go_grpc_server_headers` | grpc-go `(*http2Server).operateHeaders` | entry | `frame` RBX |
//! | `go_grpc_client_headers` | grpc-go `(*http2Client).operateHeaders` | entry | `frame` RBX |
//!
//! The current goroutine is R14 in Go code. Struct offsets come per attached
//! executable from `GO_TARGETS`, keyed by the attach cookie.
//!
//! A probe only reads: registers from `pt_regs` and the target's memory
//! through `bpf_probe_read_user`, which fails safely. No uretprobe is used
//! (its return trampoline breaks Go's stack unwinding and kills the
//! process); return sites are probed with plain uprobes at each `RET`.
//!
//! When a goroutine's stack must grow, Go copies the stack and re-runs the
//! function from its entry with the same arguments: the entry probe fires
//! twice for one call. Entries are keyed by (process, probe, goroutine) and
//! an entry with the same argument pointer as the one in flight is dropped
//! (counted in `GO_DUPLICATE_ENTRIES`).

use aya_ebpf::{
    EbpfContext,
    cty::c_void,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
        generated::{bpf_get_attach_cookie, bpf_probe_read_user as raw_probe_read_user},
    },
    macros::{map, tracepoint, uprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, TracePointContext},
};
use probe_common::{
    CFG_EXEC_EVENTS, EventHeader, EventKind, ExecEvent, GO_CLIENT_ERROR, GO_FIELD_NAME_LEN,
    GO_FIELD_VALUE_LEN, GO_FIELDS, GO_GRPC_CLIENT_RECEIVED, GO_GRPC_CLIENT_SENT,
    GO_GRPC_SERVER_RECEIVED, GO_GRPC_SERVER_SENT, GO_GRPC_STREAM, GO_HOST_LEN, GO_HTTP_CLIENT,
    GO_HTTP_SERVER, GO_METHOD_LEN, GO_PATH_LEN, GO_PHASE_ENTRY, GO_PHASE_RETURN, GO_READ_FAILED,
    GO_STATUS_UNKNOWN, GoGoroutineEvent, GoHeadersEvent, GoOffsets, GoSpanEvent, stat,
};

use crate::{
    emit,
    maps::{CONFIG, EVENTS, count},
    task,
};

/// Offsets per attached executable, keyed by attach cookie (the loader's
/// target id). Written by userspace before attaching.
#[map]
pub static GO_TARGETS: HashMap<u64, GoOffsets> = HashMap::with_max_entries(4096, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CallKey {
    tgid: u32,
    probe: u32,
    goid: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Call {
    /// The `*Request` of the call.
    req: u64,
    /// Server: the `ResponseWriter` data word.
    rw: u64,
    start_ns: u64,
}

/// Calls in flight. LRU: a goroutine that dies inside a call (panic,
/// Goexit) leaves its entry behind, and that must not fill the table.
#[map]
static GO_CALLS: LruHashMap<CallKey, Call> = LruHashMap::with_max_entries(65536, 0);

/// `runtime.newproc1` in flight, per thread: the creator's goroutine id.
/// It runs on the system stack (R14 is g0 there), without preemption, so
/// entry and return are on the same thread.
#[map]
static GO_NEWPROC: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
fn read_u64(addr: u64) -> Result<u64, i64> {
    // SAFETY: reads the target's memory through the checked helper.
    unsafe { bpf_probe_read_user(addr as *const u64) }.map_err(i64::from)
}

/// Copies the first bytes of the Go string whose header (ptr, len) is at
/// `addr` into `dst`; returns the string's real length.
#[inline(always)]
fn read_go_string<const N: usize>(dst: &mut [u8; N], addr: u64) -> Result<u32, i64> {
    let ptr = read_u64(addr)?;
    let len = read_u64(addr + 8)?;
    let n = if len > N as u64 { N as u32 } else { len as u32 };
    if n > 0 && n <= N as u32 {
        // SAFETY: dst has N >= n bytes; the helper checks the source.
        let rc = unsafe {
            raw_probe_read_user(dst.as_mut_ptr() as *mut c_void, n, ptr as *const c_void)
        };
        if rc != 0 {
            return Err(rc);
        }
    }
    Ok(if len > u32::MAX as u64 {
        u32::MAX
    } else {
        len as u32
    })
}

fn header(kind: EventKind, id: u64, now: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid: (id >> 32) as u32,
        tid: id as u32,
        fd: -1,
        generation: 0,
        ts_ns: now,
        comm: task::comm(),
    }
}

struct Target {
    cookie: u64,
    off: GoOffsets,
}

#[inline(always)]
fn target(ctx: &ProbeContext) -> Option<Target> {
    // SAFETY: plain helper call on our own context.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    // SAFETY: copied out of the map at once.
    match unsafe { GO_TARGETS.get(&cookie) } {
        Some(off) => Some(Target { cookie, off: *off }),
        None => {
            count(stat::GO_NO_TARGET, 1);
            None
        }
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &aya_ebpf::bindings::pt_regs {
    // SAFETY: a uprobe's context is the task's saved user registers.
    unsafe { &*ctx.regs }
}

/// What an entry or return event carries.
struct Span {
    probe: u8,
    phase: u8,
    goid: u64,
    start_ns: u64,
    status: i64,
    flags: u8,
    /// Entry: the `*Request` whose method, host and path are read.
    req: u64,
}

fn emit_span(t: &Target, id: u64, now: u64, s: &Span) {
    let Some(mut entry) = EVENTS.reserve::<GoSpanEvent>(0) else {
        count(stat::RINGBUF_DROPS, 1);
        return;
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is the reserved record, exactly one GoSpanEvent; zeroed
    // first so no stale ring-buffer bytes reach userspace.
    let ev = unsafe {
        core::ptr::write_bytes(p, 0, 1);
        &mut *p
    };
    ev.header = header(EventKind::GoSpan, id, now);
    ev.goid = s.goid;
    ev.start_ns = s.start_ns;
    ev.target = t.cookie;
    ev.status = s.status;
    ev.probe = s.probe;
    ev.phase = s.phase;
    ev.flags = s.flags;
    if s.phase == GO_PHASE_ENTRY && read_request(t, s, ev).is_err() {
        ev.flags |= GO_READ_FAILED;
    }
    entry.submit(emit::wakeup_flag());
}

/// Method, host and path of `*Request`: the server reports `Request.Host`
/// (the Host header), the client `URL.Host` (where it connects).
#[inline(always)]
fn read_request(t: &Target, s: &Span, ev: &mut GoSpanEvent) -> Result<(), i64> {
    let o = &t.off;
    ev.method_len = read_go_string::<GO_METHOD_LEN>(&mut ev.method, s.req + o.req_method as u64)?;
    let url = read_u64(s.req + o.req_url as u64)?;
    ev.path_len = read_go_string::<GO_PATH_LEN>(&mut ev.path, url + o.url_path as u64)?;
    let host_at = if s.probe == GO_HTTP_SERVER {
        s.req + o.req_host as u64
    } else {
        url + o.url_host as u64
    };
    ev.host_len = read_go_string::<GO_HOST_LEN>(&mut ev.host, host_at)?;
    Ok(())
}

#[inline(always)]
fn goid(t: &Target, g: u64) -> Result<u64, i64> {
    read_u64(g + t.off.g_goid as u64)
}

/// Records a call's entry unless it is the same call again (stack growth),
/// and reports it.
#[inline(always)]
fn enter(ctx: &ProbeContext, probe: u8, req: u64, rw: u64) -> Result<(), i64> {
    enter_as(ctx, probe, req, rw, true)
}

#[inline(always)]
fn enter_as(ctx: &ProbeContext, probe: u8, req: u64, rw: u64, report: bool) -> Result<(), i64> {
    let Some(t) = target(ctx) else { return Ok(()) };
    let id = bpf_get_current_pid_tgid();
    let goid = goid(&t, regs(ctx).r14)?;
    let key = CallKey {
        tgid: (id >> 32) as u32,
        probe: probe as u32,
        goid,
    };
    // SAFETY: copied out at once.
    if let Some(c) = unsafe { GO_CALLS.get(&key) }
        && c.req == req
    {
        count(stat::GO_DUPLICATE_ENTRIES, 1);
        return Ok(());
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let call = Call {
        req,
        rw,
        start_ns: now,
    };
    GO_CALLS.insert(&key, &call, 0).map_err(i64::from)?;
    if !report {
        return Ok(());
    }
    let span = Span {
        probe,
        phase: GO_PHASE_ENTRY,
        goid,
        start_ns: now,
        status: 0,
        flags: 0,
        req,
    };
    emit_span(&t, id, now, &span);
    Ok(())
}

/// Takes the call's entry back at a return site.
#[inline(always)]
fn leave(ctx: &ProbeContext, probe: u8) -> Option<(Target, u64, u64, Call)> {
    let t = target(ctx)?;
    let id = bpf_get_current_pid_tgid();
    let goid = goid(&t, regs(ctx).r14).ok()?;
    let key = CallKey {
        tgid: (id >> 32) as u32,
        probe: probe as u32,
        goid,
    };
    // SAFETY: copied out at once.
    let Some(call) = (unsafe { GO_CALLS.get(&key) }).copied() else {
        count(stat::GO_UNMATCHED_RETURNS, 1);
        return None;
    };
    let _ = GO_CALLS.remove(&key);
    Some((t, id, goid, call))
}

/// Emits the return span of `call` (taken back by [`leave`]).
#[inline(always)]
fn returned(t: &Target, id: u64, goid: u64, call: &Call, probe: u8, status: i64, flags: u8) {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let span = Span {
        probe,
        phase: GO_PHASE_RETURN,
        goid,
        start_ns: call.start_ns,
        status,
        flags,
        req: call.req,
    };
    emit_span(t, id, now, &span);
}

/// `net/http.serverHandler.ServeHTTP(sh, rw ResponseWriter, req *Request)`
/// entry: rw = (itab RBX, data RCX), req = RDI.
#[uprobe]
pub fn go_http_server_enter(ctx: ProbeContext) -> u32 {
    let r = regs(&ctx);
    let _ = enter(&ctx, GO_HTTP_SERVER, r.rdi, r.rcx);
    0
}

/// ServeHTTP at a `RET`: the status the handler wrote, read from the
/// `*http.response` saved at entry if that is what it is (its `req` field
/// is this request); 0 if the handler wrote nothing (net/http then sends
/// 200).
#[uprobe]
pub fn go_http_server_return(ctx: ProbeContext) -> u32 {
    let Some((t, id, goid, call)) = leave(&ctx, GO_HTTP_SERVER) else {
        return 0;
    };
    let mut flags = 0;
    let mut status = 0;
    match read_u64(call.rw + t.off.sresp_req as u64) {
        Ok(req) if req == call.req => match read_u64(call.rw + t.off.sresp_status as u64) {
            Ok(v) => status = v as i64,
            Err(_) => flags |= GO_READ_FAILED,
        },
        Ok(_) => flags |= GO_STATUS_UNKNOWN,
        Err(_) => flags |= GO_READ_FAILED | GO_STATUS_UNKNOWN,
    }
    returned(&t, id, goid, &call, GO_HTTP_SERVER, status, flags);
    0
}

/// `net/http.(*Transport).roundTrip(t, req *Request)` entry: req = RBX.
#[uprobe]
pub fn go_http_client_enter(ctx: ProbeContext) -> u32 {
    let r = regs(&ctx);
    let _ = enter(&ctx, GO_HTTP_CLIENT, r.rbx, 0);
    0
}

/// roundTrip at a `RET`: results `*Response` = RAX, error = (RBX, RCX).
#[uprobe]
pub fn go_http_client_return(ctx: ProbeContext) -> u32 {
    let Some((t, id, goid, call)) = leave(&ctx, GO_HTTP_CLIENT) else {
        return 0;
    };
    let r = regs(&ctx);
    let mut flags = 0;
    let mut status = 0;
    if r.rbx != 0 {
        flags |= GO_CLIENT_ERROR;
    } else if r.rax != 0 {
        match read_u64(r.rax + t.off.resp_status as u64) {
            Ok(v) => status = v as i64,
            Err(_) => flags |= GO_READ_FAILED,
        }
    }
    returned(&t, id, goid, &call, GO_HTTP_CLIENT, status, flags);
    0
}

/// `runtime.newproc1(fn, callergp *g, callerpc) *g` entry: callergp = RBX.
#[uprobe]
pub fn go_newproc_enter(ctx: ProbeContext) -> u32 {
    let Some(t) = target(&ctx) else { return 0 };
    let callergp = regs(&ctx).rbx;
    if callergp == 0 {
        return 0;
    }
    if let Ok(parent) = goid(&t, callergp) {
        let _ = GO_NEWPROC.insert(&bpf_get_current_pid_tgid(), &parent, 0);
    }
    0
}

/// newproc1 at a `RET`: the new `*g` = RAX, its goid already assigned.
#[uprobe]
pub fn go_newproc_return(ctx: ProbeContext) -> u32 {
    let Some(t) = target(&ctx) else { return 0 };
    let id = bpf_get_current_pid_tgid();
    // SAFETY: copied out at once.
    let Some(parent) = (unsafe { GO_NEWPROC.get(&id) }).copied() else {
        count(stat::GO_UNMATCHED_RETURNS, 1);
        return 0;
    };
    let _ = GO_NEWPROC.remove(&id);
    let Ok(child) = goid(&t, regs(&ctx).rax) else {
        return 0;
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let ev = GoGoroutineEvent {
        header: header(EventKind::GoGoroutine, id, now),
        parent_goid: parent,
        child_goid: child,
        target: t.cookie,
    };
    emit::record(&ev);
    0
}

/// grpc-go `(*http2Client).NewStream(ctx, callHdr *CallHdr)` entry:
/// callHdr = RDI (ctx is RBX, RCX).
#[uprobe]
pub fn go_grpc_stream_enter(ctx: ProbeContext) -> u32 {
    let r = regs(&ctx);
    let _ = enter_as(&ctx, GO_GRPC_STREAM, r.rdi, 0, false);
    0
}

/// NewStream at a `RET`: `*Stream` = RAX, error = (RBX, RCX). Reports the
/// method and host of the call with the new stream's id, from the
/// goroutine that made the call (which the header probes do not see: the
/// headers are written by the connection's writer goroutine).
#[uprobe]
pub fn go_grpc_stream_return(ctx: ProbeContext) -> u32 {
    let Some((t, id, goid, call)) = leave(&ctx, GO_GRPC_STREAM) else {
        return 0;
    };
    let r = regs(&ctx);
    if r.rbx != 0 || r.rax == 0 {
        return 0;
    }
    // SAFETY: reads the target's memory through the checked helper.
    let Ok(stream_id) =
        (unsafe { bpf_probe_read_user((r.rax + t.off.gstream_id as u64) as *const u32) })
    else {
        return 0;
    };
    let Some(mut entry) = EVENTS.reserve::<GoSpanEvent>(0) else {
        count_drop();
        return 0;
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is the reserved record, exactly one GoSpanEvent; zeroed
    // first so no stale ring-buffer bytes reach userspace.
    let ev = unsafe {
        core::ptr::write_bytes(p, 0, 1);
        &mut *p
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    ev.header = header(EventKind::GoSpan, id, now);
    ev.goid = goid;
    ev.start_ns = call.start_ns;
    ev.target = t.cookie;
    ev.status = stream_id as i64;
    ev.probe = GO_GRPC_STREAM;
    ev.phase = GO_PHASE_RETURN;
    let o = &t.off;
    match read_go_string::<GO_PATH_LEN>(&mut ev.path, call.req + o.callhdr_method as u64) {
        Ok(n) => ev.path_len = n,
        Err(_) => ev.flags |= GO_READ_FAILED,
    }
    match read_go_string::<GO_HOST_LEN>(&mut ev.host, call.req + o.callhdr_host as u64) {
        Ok(n) => ev.host_len = n,
        Err(_) => ev.flags |= GO_READ_FAILED,
    }
    entry.submit(emit::wakeup_flag());
    0
}

/// One decoded header list: `count` `hpack.HeaderField`s at `fields`.
struct HeaderList {
    kind: u8,
    stream_id: u32,
    end: u8,
    fields: u64,
    count: u64,
}

/// Sends one header list.
#[inline(always)]
fn emit_headers(ctx: &ProbeContext, t: &Target, l: &HeaderList) {
    let (kind, stream_id, end, fields, count) = (l.kind, l.stream_id, l.end, l.fields, l.count);
    let Some(mut entry) = EVENTS.reserve::<GoHeadersEvent>(0) else {
        count_drop();
        return;
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is the reserved record, exactly one GoHeadersEvent;
    // zeroed first so no stale ring-buffer bytes reach userspace.
    let ev = unsafe {
        core::ptr::write_bytes(p, 0, 1);
        &mut *p
    };
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    ev.header = header(EventKind::GoHeaders, id, now);
    ev.goid = goid(t, regs(ctx).r14).unwrap_or(0);
    ev.target = t.cookie;
    ev.stream_id = stream_id;
    ev.total = if count > u32::MAX as u64 {
        u32::MAX
    } else {
        count as u32
    };
    ev.kind = kind;
    ev.end_stream = end;
    let o = &t.off;
    for i in 0..GO_FIELDS {
        if i as u64 >= count {
            break;
        }
        let f = fields + i as u64 * o.field_size as u64;
        let field = &mut ev.fields[i];
        match read_go_string::<GO_FIELD_NAME_LEN>(&mut field.name, f + o.field_name as u64) {
            Ok(n) => field.name_len = n,
            Err(_) => ev.flags |= GO_READ_FAILED,
        }
        match read_go_string::<GO_FIELD_VALUE_LEN>(&mut field.value, f + o.field_value as u64) {
            Ok(n) => field.value_len = n,
            Err(_) => ev.flags |= GO_READ_FAILED,
        }
    }
    entry.submit(emit::wakeup_flag());
}

#[inline(always)]
fn count_drop() {
    count(stat::RINGBUF_DROPS, 1);
}

/// grpc-go `(*loopyWriter).writeHeader(streamID uint32, endStream bool,
/// hf []hpack.HeaderField, onWrite func())`: a header list about to be
/// HPACK-encoded and sent, by either side.
#[uprobe]
pub fn go_grpc_write_header(ctx: ProbeContext) -> u32 {
    let Some(t) = target(&ctx) else { return 0 };
    let r = regs(&ctx);
    let Ok(side) = read_u64(r.rax + t.off.loopy_side as u64) else {
        return 0;
    };
    let kind = if side == 1 {
        GO_GRPC_SERVER_SENT
    } else {
        GO_GRPC_CLIENT_SENT
    };
    let end = (r.rcx & 0xff != 0) as u8;
    let list = HeaderList {
        kind,
        stream_id: r.rbx as u32,
        end,
        fields: r.rdi,
        count: r.rsi,
    };
    emit_headers(&ctx, &t, &list);
    0
}

/// A received `*http2.MetaHeadersFrame` (RBX): stream id and fields.
#[inline(always)]
fn received(ctx: &ProbeContext, kind: u8) {
    let Some(t) = target(ctx) else { return };
    let frame = regs(ctx).rbx;
    let o = &t.off;
    let Ok(hf) = read_u64(frame + o.mhf_headers_frame as u64) else {
        return;
    };
    // SAFETY: reads the target's memory through the checked helper.
    let stream_id =
        unsafe { bpf_probe_read_user((hf + o.hf_stream_id as u64) as *const u32) }.unwrap_or(0);
    let (Ok(fields), Ok(n)) = (
        read_u64(frame + o.mhf_fields as u64),
        read_u64(frame + o.mhf_fields as u64 + 8),
    ) else {
        return;
    };
    let list = HeaderList {
        kind,
        stream_id,
        end: 0,
        fields,
        count: n,
    };
    emit_headers(ctx, &t, &list);
}

/// grpc-go `(*http2Server).operateHeaders(frame, ...)`: a request's headers.
#[uprobe]
pub fn go_grpc_server_headers(ctx: ProbeContext) -> u32 {
    received(&ctx, GO_GRPC_SERVER_RECEIVED);
    0
}

/// grpc-go `(*http2Client).operateHeaders(frame)`: response headers or
/// trailers.
#[uprobe]
pub fn go_grpc_client_headers(ctx: ProbeContext) -> u32 {
    received(&ctx, GO_GRPC_CLIENT_RECEIVED);
    0
}

/// `sched/sched_process_exec`: `__data_loc char[] filename` @8, pid @12,
/// old_pid @16. Only the pid is used (the current task's tgid).
#[tracepoint]
pub fn go_exec(_ctx: TracePointContext) -> u32 {
    if CONFIG.load().flags & CFG_EXEC_EVENTS == 0 {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    emit::record(&ExecEvent {
        header: header(EventKind::Exec, id, now),
    });
    0
}
