//! Ring-buffer records turned into typed events, with every length checked:
//! a short or unknown record is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use probe_common::{
    COMM_LEN, CloseEvent, ConnEvent, DATA_LAST, DATA_READ_FAILED, DATA_TRUNCATED, DIR_EGRESS,
    DataEvent, EventHeader, EventKind, ExecEvent, GO_CLIENT_ERROR, GO_FIELDS,
    GO_GRPC_CLIENT_RECEIVED, GO_GRPC_CLIENT_SENT, GO_GRPC_SERVER_RECEIVED, GO_GRPC_STREAM,
    GO_HTTP_SERVER, GO_PHASE_ENTRY, GO_READ_FAILED, GO_STATUS_UNKNOWN, GoGoroutineEvent,
    GoHeadersEvent, GoSpanEvent, ProcExitEvent, ROLE_CLIENT, ROLE_SERVER, Syscall,
};
use protocols::record::Direction;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("record of {len} bytes is shorter than its {need}-byte header")]
    Short { len: usize, need: usize },
    #[error("record kind {0} is unknown")]
    UnknownKind(u32),
    #[error("data record says {claimed} payload bytes but carries {actual}")]
    PayloadLength { claimed: usize, actual: usize },
}

/// Identity of a connection: the fd of a process, told apart across reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
    pub generation: u64,
}

/// A process name as the kernel keeps it (up to 15 bytes), without
/// allocating: events carry one each.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Comm {
    bytes: [u8; COMM_LEN],
    len: u8,
}

impl Comm {
    pub fn new(raw: &[u8]) -> Comm {
        let raw = &raw[..raw.len().min(COMM_LEN)];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let mut bytes = [0u8; COMM_LEN];
        bytes[..len].copy_from_slice(&raw[..len]);
        Comm {
            bytes,
            len: len as u8,
        }
    }

    /// The name; bytes that are not UTF-8 (rare) show as `?`.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..self.len as usize])
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Comm {
        Comm::new(s.as_bytes())
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for Comm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Common {
    pub key: ConnKey,
    pub tid: u32,
    pub ts_ns: u64,
    pub comm: Comm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    pub common: Common,
    pub enter_ns: u64,
    pub syscall: Option<Syscall>,
    pub direction: Direction,
    /// Stream position of `payload[0]`.
    pub pos: u64,
    /// Bytes the syscall moved.
    pub syscall_len: u32,
    /// Offset of `payload` within those bytes.
    pub chunk_offset: u32,
    pub last: bool,
    pub truncated: bool,
    pub read_failed: bool,
    pub payload: &'a [u8],
}

impl Data<'_> {
    /// Bytes of this syscall known to be missing after this event (the
    /// kernel did not copy them), or 0.
    pub fn missing_after(&self) -> u64 {
        if !self.last {
            return 0;
        }
        let seen = self.chunk_offset as u64 + self.payload.len() as u64;
        (self.syscall_len as u64).saturating_sub(seen)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Unknown,
    Client,
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unknown => "unknown",
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub common: Common,
    pub family: u16,
    pub sock_type: u16,
    pub role: Role,
    pub tcp_state: u8,
    pub syscall: Option<Syscall>,
    pub ret: i32,
    /// `None` for families without IP addresses (Unix sockets).
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub common: Common,
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
}

/// Which probed Go function a [`GoSpan`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoProbe {
    /// `net/http.serverHandler.ServeHTTP`.
    HttpServer,
    /// `net/http.(*Transport).roundTrip`.
    HttpClient,
    /// grpc-go `(*http2Client).NewStream` (return only): `path` is the
    /// method, `host` the target, `status` the stream id.
    GrpcStream,
}

/// A Go string as copied by the kernel: its first bytes and real length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoStr {
    pub bytes: Vec<u8>,
    pub len: u32,
}

impl GoStr {
    fn new(raw: &[u8], len: u32) -> GoStr {
        GoStr {
            bytes: raw[..raw.len().min(len as usize)].to_vec(),
            len,
        }
    }

    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A Go uprobe hit: entry (request fields) or return (status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoSpan {
    pub common: Common,
    pub probe: GoProbe,
    pub entry: bool,
    pub goid: u64,
    pub start_ns: u64,
    /// The attach cookie (which executable).
    pub target: u64,
    pub status: i64,
    pub read_failed: bool,
    pub client_error: bool,
    pub status_unknown: bool,
    pub method: GoStr,
    pub host: GoStr,
    pub path: GoStr,
}

/// Goroutine `parent` created `child` in process `common.key.tgid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoGoroutine {
    pub common: Common,
    pub parent: u64,
    pub child: u64,
    pub target: u64,
}

/// Which grpc-go function a [`GoHeaders`] list comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcList {
    /// A client sent request headers (`loopyWriter.writeHeader`).
    ClientSent,
    /// A server sent response headers or trailers (`loopyWriter.writeHeader`).
    ServerSent,
    /// A server received request headers (`http2Server.operateHeaders`).
    ServerReceived,
    /// A client received response headers or trailers
    /// (`http2Client.operateHeaders`).
    ClientReceived,
}

/// A decoded HTTP/2 header list as grpc-go holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoHeaders {
    pub common: Common,
    pub goid: u64,
    pub target: u64,
    pub stream_id: u32,
    pub list: GrpcList,
    pub end_stream: bool,
    /// Fields in the list (only the first `GO_FIELDS` are in `fields`).
    pub total: u32,
    pub read_failed: bool,
    /// (name, value): each the first bytes and the real length.
    pub fields: Vec<(GoStr, GoStr)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Data(Data<'a>),
    Conn(Conn),
    Close(Close),
    ProcExit(Common),
    GoSpan(GoSpan),
    GoGoroutine(GoGoroutine),
    GoHeaders(GoHeaders),
    /// A process started a new program.
    Exec(Common),
}

impl Event<'_> {
    /// When it happened (`bpf_ktime_get_ns` clock).
    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Data(d) => d.common.ts_ns,
            Event::Conn(c) => c.common.ts_ns,
            Event::Close(c) => c.common.ts_ns,
            Event::ProcExit(p) | Event::Exec(p) => p.ts_ns,
            Event::GoSpan(s) => s.common.ts_ns,
            Event::GoGoroutine(g) => g.common.ts_ns,
            Event::GoHeaders(h) => h.common.ts_ns,
        }
    }
}

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

fn read<T: Copy>(buf: &[u8]) -> Result<T, EventError> {
    let need = size_of::<T>();
    if buf.len() < need {
        return Err(EventError::Short {
            len: buf.len(),
            need,
        });
    }
    // SAFETY: length checked above; T is a #[repr(C)] integer-only struct
    // from probe-common, valid for any bit pattern; read_unaligned has no
    // alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

fn common(h: &EventHeader) -> Common {
    Common {
        key: ConnKey {
            tgid: h.tgid,
            fd: h.fd,
            generation: h.generation,
        },
        tid: h.tid,
        ts_ns: h.ts_ns,
        comm: Comm::new(&h.comm),
    }
}

fn addr(family: u16, bytes: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses one ring-buffer record.
pub fn parse(buf: &[u8]) -> Result<Event<'_>, EventError> {
    let header: EventHeader = read(buf)?;
    match EventKind::from_u32(header.kind) {
        Some(EventKind::Data) => {
            let ev: DataEvent = read(buf)?;
            let payload = &buf[size_of::<DataEvent>()..];
            let claimed = ev.len as usize;
            if payload.len() < claimed {
                return Err(EventError::PayloadLength {
                    claimed,
                    actual: payload.len(),
                });
            }
            Ok(Event::Data(Data {
                common: common(&ev.header),
                enter_ns: ev.enter_ns,
                syscall: Syscall::from_u8(ev.syscall),
                direction: if ev.direction == DIR_EGRESS {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                pos: ev.pos,
                syscall_len: ev.syscall_len,
                chunk_offset: ev.chunk_offset,
                last: ev.flags & DATA_LAST != 0,
                truncated: ev.flags & DATA_TRUNCATED != 0,
                read_failed: ev.flags & DATA_READ_FAILED != 0,
                // Ring-buffer records are padded to 8 bytes: trust `len`.
                payload: &payload[..claimed],
            }))
        }
        Some(EventKind::Conn) => {
            let ev: ConnEvent = read(buf)?;
            Ok(Event::Conn(Conn {
                common: common(&ev.header),
                family: ev.family,
                sock_type: ev.sock_type,
                role: match ev.role {
                    ROLE_CLIENT => Role::Client,
                    ROLE_SERVER => Role::Server,
                    _ => Role::Unknown,
                },
                tcp_state: ev.state,
                syscall: Syscall::from_u8(ev.syscall),
                ret: ev.ret,
                local: addr(ev.family, &ev.local_addr, ev.local_port),
                remote: addr(ev.family, &ev.remote_addr, ev.remote_port),
            }))
        }
        Some(EventKind::Close) => {
            let ev: CloseEvent = read(buf)?;
            Ok(Event::Close(Close {
                common: common(&ev.header),
                egress_bytes: ev.egress_bytes,
                ingress_bytes: ev.ingress_bytes,
            }))
        }
        Some(EventKind::ProcExit) => {
            let ev: ProcExitEvent = read(buf)?;
            Ok(Event::ProcExit(common(&ev.header)))
        }
        Some(EventKind::GoSpan) => {
            let ev: GoSpanEvent = read(buf)?;
            Ok(Event::GoSpan(GoSpan {
                common: common(&ev.header),
                probe: match ev.probe {
                    GO_HTTP_SERVER => GoProbe::HttpServer,
                    GO_GRPC_STREAM => GoProbe::GrpcStream,
                    _ => GoProbe::HttpClient,
                },
                entry: ev.phase == GO_PHASE_ENTRY,
                goid: ev.goid,
                start_ns: ev.start_ns,
                target: ev.target,
                status: ev.status,
                read_failed: ev.flags & GO_READ_FAILED != 0,
                client_error: ev.flags & GO_CLIENT_ERROR != 0,
                status_unknown: ev.flags & GO_STATUS_UNKNOWN != 0,
                method: GoStr::new(&ev.method, ev.method_len),
                host: GoStr::new(&ev.host, ev.host_len),
                path: GoStr::new(&ev.path, ev.path_len),
            }))
        }
        Some(EventKind::GoGoroutine) => {
            let ev: GoGoroutineEvent = read(buf)?;
            Ok(Event::GoGoroutine(GoGoroutine {
                common: common(&ev.header),
                parent: ev.parent_goid,
                child: ev.child_goid,
                target: ev.target,
            }))
        }
        Some(EventKind::GoHeaders) => {
            let ev: GoHeadersEvent = read(buf)?;
            let n = (ev.total as usize).min(GO_FIELDS);
            Ok(Event::GoHeaders(GoHeaders {
                common: common(&ev.header),
                goid: ev.goid,
                target: ev.target,
                stream_id: ev.stream_id,
                list: match ev.kind {
                    GO_GRPC_CLIENT_SENT => GrpcList::ClientSent,
                    GO_GRPC_SERVER_RECEIVED => GrpcList::ServerReceived,
                    GO_GRPC_CLIENT_RECEIVED => GrpcList::ClientReceived,
                    _ => GrpcList::ServerSent,
                },
                end_stream: ev.end_stream != 0,
                total: ev.total,
                read_failed: ev.flags & GO_READ_FAILED != 0,
                fields: ev.fields[..n]
                    .iter()
                    .map(|f| {
                        (
                            GoStr::new(&f.name, f.name_len),
                            GoStr::new(&f.value, f.value_len),
                        )
                    })
                    .collect(),
            }))
        }
        Some(EventKind::Exec) => {
            let ev: ExecEvent = read(buf)?;
            Ok(Event::Exec(common(&ev.header)))
        }
        None => Err(EventError::UnknownKind(header.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: EventKind) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"curl");
        EventHeader {
            kind: kind as u32,
            tgid: 10,
            tid: 11,
            fd: 3,
            generation: 99,
            ts_ns: 1000,
            comm,
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) integer struct.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn data_record_round_trip() {
        let ev = DataEvent {
            header: header(EventKind::Data),
            enter_ns: 900,
            pos: 4096,
            syscall_len: 10,
            chunk_offset: 0,
            len: 5,
            syscall: Syscall::Write as u8,
            direction: DIR_EGRESS,
            flags: DATA_LAST | DATA_TRUNCATED,
        };
        let mut buf = bytes_of(&ev);
        buf.extend_from_slice(b"hello\0\0\0");
        let Event::Data(d) = parse(&buf).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.payload, b"hello");
        assert_eq!(d.common.comm.as_str(), "curl");
        assert_eq!(d.common.key.generation, 99);
        assert_eq!(d.direction, Direction::Egress);
        assert_eq!(d.missing_after(), 5);
        assert_eq!(d.syscall, Some(Syscall::Write));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(parse(&[1, 0, 0]), Err(EventError::Short { .. })));
        let mut h = header(EventKind::Data);
        h.kind = 77;
        assert_eq!(parse(&bytes_of(&h)), Err(EventError::UnknownKind(77)));
        let ev = DataEvent {
            header: header(EventKind::Data),
            enter_ns: 0,
            pos: 0,
            syscall_len: 100,
            chunk_offset: 0,
            len: 100,
            syscall: 1,
            direction: 1,
            flags: 0,
        };
        let mut buf = bytes_of(&ev);
        buf.extend_from_slice(&[0; 10]);
        assert_eq!(
            parse(&buf),
            Err(EventError::PayloadLength {
                claimed: 100,
                actual: 10
            })
        );
    }

    #[test]
    fn conn_record_addresses() {
        let mut local = [0u8; 16];
        local[..4].copy_from_slice(&[127, 0, 0, 1]);
        let ev = ConnEvent {
            header: header(EventKind::Conn),
            family: AF_INET,
            sock_type: 1,
            role: ROLE_CLIENT,
            state: 2,
            syscall: Syscall::Connect as u8,
            _pad: 0,
            ret: -115,
            local_port: 40000,
            remote_port: 80,
            local_addr: local,
            remote_addr: local,
        };
        let Event::Conn(c) = parse(&bytes_of(&ev)).unwrap() else {
            panic!("not conn")
        };
        assert_eq!(c.local.unwrap().to_string(), "127.0.0.1:40000");
        assert_eq!(c.remote.unwrap().to_string(), "127.0.0.1:80");
        assert_eq!(c.role, Role::Client);
    }
}
