//! How exchanges are shown: a compact block for people (colour on a TTY
//! only), or one JSON object per line (schema in docs/json-schema.md, whose
//! version is `SCHEMA_VERSION`). Secrets are redacted in both unless the user
//! says otherwise.

use std::{
    borrow::Cow,
    cell::Cell,
    fmt, io,
    io::Write,
    net::{SocketAddr, SocketAddrV4},
};

use base64::Engine as _;
use protocols::record::{Exchange, FIELD_UNKNOWN, Flags, Grpc, Headers, Proto, Side};
use serde::Serialize;

use crate::uprobes::join::GoView;

use crate::{
    clock::rfc3339_from_unix_ns,
    events::{Comm, ConnKey},
    format::{Ascii, Bytes, preview},
    jsonline,
};

/// Version of the `--json` exchange schema. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The process at the other end of a connection, when it is on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Peer {
    pub pid: u32,
    pub comm: String,
}

/// What we know about a connection, from connect/accept, the kernel's
/// socket, or sock_diag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    pub key: ConnKey,
    pub comm: Comm,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub peer: Option<Peer>,
    /// `client` (it called connect) or `server` (it accepted), from the
    /// syscalls, or from sock_diag for connections that predate capture.
    pub role: Option<&'static str>,
    /// TCP state from sock_diag, for connections that predate capture.
    pub tcp_state: Option<u8>,
}

/// Header names whose values are hidden unless `--show-secrets`.
pub const DEFAULT_SECRETS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

#[derive(Clone, Debug)]
pub struct Redactor {
    names: Vec<String>,
}

impl Redactor {
    /// Redacts the default names plus `extra`; `None` redacts nothing.
    pub fn new(enabled: bool, extra: &[String]) -> Redactor {
        let names = if enabled {
            DEFAULT_SECRETS
                .iter()
                .map(|s| s.to_string())
                .chain(extra.iter().map(|s| s.to_ascii_lowercase()))
                .collect()
        } else {
            Vec::new()
        };
        Redactor { names }
    }

    fn is_secret(&self, name: &[u8]) -> bool {
        self.names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The value to show for a header. An auth scheme (`Bearer`, `Basic`)
    /// stays visible; the credential does not.
    fn value<'a>(&self, name: &[u8], value: &'a [u8]) -> Cow<'a, str> {
        if !self.is_secret(name) {
            return text(value);
        }
        let is_auth = name.eq_ignore_ascii_case(b"authorization")
            || name.eq_ignore_ascii_case(b"proxy-authorization");
        if is_auth && let Some(sp) = value.iter().position(|&b| b == b' ') {
            let scheme = String::from_utf8_lossy(&value[..sp]);
            return Cow::Owned(format!(
                "{scheme} <redacted {} bytes>",
                value.len() - sp - 1
            ));
        }
        Cow::Owned(format!("<redacted {} bytes>", value.len()))
    }

    /// `h` as JSON `[[name, value], ...]`, redacted (`None`: `[]`).
    fn write_headers(&self, out: &mut impl Write, h: Option<&Headers>) -> io::Result<()> {
        let fields = h.into_iter().flat_map(Headers::iter);
        jsonline::array(out, fields, |w, (n, v, _)| {
            w.write_all(b"[")?;
            jsonline::text(w, n)?;
            w.write_all(b",")?;
            if self.is_secret(n) {
                jsonline::string(w, &self.value(n, v))?;
            } else {
                jsonline::text(w, v)?;
            }
            w.write_all(b"]")
        })
    }
}

/// `bytes` as text, invalid UTF-8 replaced. Header bytes are nearly always
/// ASCII, which `str::from_utf8` checks a word at a time; the lossy
/// conversion walks them byte by byte.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

pub struct Renderer {
    pub json: bool,
    pub color: bool,
    /// Print request and response headers in the human block.
    pub headers: bool,
    /// Include body previews (human block; `req_body_b64`/`resp_body_b64`
    /// in JSON).
    pub bodies: bool,
    pub redact: Redactor,
    /// Added to capture-clock timestamps to get Unix time (ns).
    pub clock_offset_ns: i128,
    /// The last second turned into a local time of day.
    pub last_second: LastSecond,
}

/// The last Unix second shown and its local `HH:MM:SS`: `localtime_r`
/// (which takes a lock and checks the time zone) runs once per second of
/// output instead of once per exchange.
#[derive(Debug)]
pub struct LastSecond(Cell<(i64, [u8; 8])>);

impl Default for LastSecond {
    fn default() -> Self {
        LastSecond(Cell::new((i64::MIN, *b"00:00:00")))
    }
}

impl LastSecond {
    /// `HH:MM:SS.uuuuuu` in the local time zone for a Unix time in ns.
    fn time_of_day(&self, unix_ns: u64) -> Ascii<16> {
        let secs = (unix_ns / 1_000_000_000) as i64;
        let (last, mut hms) = self.0.get();
        if secs != last {
            // SAFETY: zeroed tm is a valid out-parameter for localtime_r.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            let t = secs as libc::time_t;
            // SAFETY: valid pointers to a time_t and a tm.
            unsafe { libc::localtime_r(&t, &mut tm) };
            let mut a = Ascii::<8>::new();
            a.padded(tm.tm_hour as u64, 2);
            a.push(b":");
            a.padded(tm.tm_min as u64, 2);
            a.push(b":");
            a.padded(tm.tm_sec as u64, 2);
            hms.copy_from_slice(a.as_str().as_bytes().get(..8).unwrap_or(b"00:00:00"));
            self.0.set((secs, hms));
        }
        let mut out = Ascii::<16>::new();
        out.push(&hms);
        out.push(b".");
        out.padded(unix_ns % 1_000_000_000 / 1000, 6);
        out
    }
}

impl Renderer {
    /// One exchange; `go` is the Go uprobe view of the same request, if any
    /// (`--source both`).
    pub fn exchange(
        &self,
        out: &mut impl Write,
        ex: &Exchange,
        meta: &ConnMeta,
        go: Option<&GoView>,
    ) -> io::Result<()> {
        if self.json {
            self.json(out, ex, meta, go)?;
            return out.write_all(b"\n");
        }
        self.human(out, ex, meta, go)
    }

    fn start_ns(&self, ex: &Exchange) -> u64 {
        let first = if ex.request.first_ns != 0 {
            ex.request.first_ns
        } else {
            ex.response.as_ref().map_or(0, |r| r.first_ns)
        };
        (first as i128 + self.clock_offset_ns).max(0) as u64
    }

    /// One `--json` exchange object (schema: docs/json-schema.md), members
    /// in the documented order.
    fn json<W: Write>(
        &self,
        out: &mut W,
        ex: &Exchange,
        meta: &ConnMeta,
        go: Option<&GoView>,
    ) -> io::Result<()> {
        let resp = ex.response.as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut o = jsonline::Object::start(out)?;
        o.num("schema", SCHEMA_VERSION)?;
        o.str("type", "exchange")?;
        o.str("proto", ex.proto.as_str())?;
        let start_ns = self.start_ns(ex);
        o.str("time", &rfc3339_from_unix_ns(start_ns as i128))?;
        o.num("start_ns", start_ns)?;
        o.opt_num("latency_ns", ex.latency_ns())?;
        o.num("pid", meta.key.tgid)?;
        o.str("comm", &meta.comm.as_str())?;
        o.num("fd", meta.key.fd)?;
        o.str("side", ex.side.as_str())?;
        o.opt_str("local", meta.local.map(addr_text).as_deref())?;
        o.opt_str("remote", meta.remote.map(addr_text).as_deref())?;
        o.serde("peer", &meta.peer)?;
        o.opt_str("conn_role", meta.role)?;
        o.opt_str(
            "tcp_state",
            meta.tcp_state.map(crate::sock_diag::tcp_state_name),
        )?;
        o.opt_num("stream_id", ex.stream_id)?;
        o.str("method", &ex.method)?;
        o.str("path", &ex.path)?;
        o.opt_str("authority", ex.authority.as_deref())?;
        o.str("version", ex.version)?;
        o.opt_num("status", ex.status)?;
        o.opt_str("reason", ex.reason.as_deref())?;
        o.with("interim", |w| {
            jsonline::array(w, ex.interim.iter().copied(), jsonline::number)
        })?;
        o.opt_num("grpc_status", ex.grpc.as_ref().and_then(|g| g.status))?;
        o.serde("grpc", &ex.grpc.as_ref().map(GrpcJson::from))?;
        let lists = [
            ("req_headers", Some(&ex.request.headers)),
            ("resp_headers", resp.map(|r| &r.headers)),
            ("req_trailers", Some(&ex.request.trailers)),
            ("resp_trailers", resp.map(|r| &r.trailers)),
        ];
        for (key, list) in lists {
            o.with(key, |w| self.redact.write_headers(w, list))?;
        }
        o.num("req_body_len", ex.request.body_len)?;
        o.opt_num("resp_body_len", resp.map(|r| r.body_len))?;
        if self.bodies {
            o.str("req_body_b64", &b64(&ex.request.body_preview))?;
            if let Some(r) = resp {
                o.str("resp_body_b64", &b64(&r.body_preview))?;
            }
        }
        o.opt_num("reset_code", ex.reset_code)?;
        o.with("flags", |w| {
            jsonline::array(w, ex.flags.names(), jsonline::string)
        })?;
        if let Some(go) = go {
            o.serde("go", go)?;
        }
        o.end()
    }

    /// `text` in colour `code` (an SGR parameter) when colour is on.
    fn paint<T: fmt::Display>(&self, code: &'static str, text: T) -> Paint<T> {
        Paint(self.color.then_some(code), text)
    }

    /// Written straight to `out`: a line per exchange is on the hot path of
    /// the main command, so no intermediate strings.
    fn human<W: Write>(
        &self,
        out: &mut W,
        ex: &Exchange,
        meta: &ConnMeta,
        go: Option<&GoView>,
    ) -> io::Result<()> {
        let resp = ex.response.as_ref();
        // Line 1: what was asked and answered.
        let time = self.last_second.time_of_day(self.start_ns(ex));
        write!(out, "{} ", time.as_str())?;
        match &ex.grpc {
            Some(g) if g.service.is_empty() && g.method.is_empty() => {
                // The request (and its path) was not seen.
                write!(out, "{} {} → ", self.paint("1;35", "gRPC"), UNSEEN)?;
            }
            Some(g) => {
                write!(
                    out,
                    "{} {}/{} → ",
                    self.paint("1;35", "gRPC"),
                    g.service,
                    self.paint("1", &g.method),
                )?;
            }
            None if ex.method.is_empty() && ex.path.is_empty() => {
                write!(out, "{} {} → ", UNSEEN, ex.version)?;
            }
            None => {
                let method = if ex.method.is_empty() {
                    "?"
                } else {
                    &ex.method
                };
                write!(
                    out,
                    "{} {} {} → ",
                    self.paint("1", method),
                    ex.path,
                    ex.version
                )?;
            }
        }
        match &ex.grpc {
            Some(g) => match (g.status, ex.status) {
                (Some(code), _) => write!(
                    out,
                    "{}",
                    self.paint(
                        if code == 0 { "32" } else { "31" },
                        format_args!("{} ({code})", grpc_status_name(code))
                    )
                )?,
                (None, Some(s)) if s != 200 => write!(out, "{}", self.status_text(s, None))?,
                (None, _) => write!(out, "{}", self.paint("33", "no status"))?,
            },
            None => match ex.status {
                Some(s) => write!(out, "{}", self.status_text(s, ex.reason.as_deref()))?,
                None if resp.is_some() => {
                    write!(out, "{}", self.paint("33", "(response unreadable)"))?
                }
                None => write!(out, "{}", self.paint("33", "(no response)"))?,
            },
        }
        if !ex.interim.is_empty() {
            // 1xx answers before the final one (100 Continue, 103 Early
            // Hints, 101 for an h2c upgrade).
            write!(out, " (after")?;
            for (i, code) in ex.interim.iter().enumerate() {
                write!(out, "{}{code}", if i == 0 { " " } else { ", " })?;
            }
            write!(out, ")")?;
        }
        match ex.latency_ns() {
            Some(ns) => writeln!(out, "  {}", Latency(ns))?,
            None => writeln!(out)?,
        }

        // Line 2, dimmed: who talked to whom, and how much.
        self.dim_start(out)?;
        let me = Proc(&meta.comm, meta.key.tgid);
        let them = PeerPrefix(meta.peer.as_ref());
        match ex.side {
            Side::Client => write!(
                out,
                "  {me} {} → {them}{}",
                Addr(meta.local),
                Addr(meta.remote)
            )?,
            Side::Server => write!(
                out,
                "  {them}{} → {me} {}",
                Addr(meta.remote),
                Addr(meta.local)
            )?,
        }
        if ex.proto == Proto::Http2 {
            write!(out, "  h2 stream {}", ex.stream_id.unwrap_or(0))?;
        }
        if let Some(g) = &ex.grpc {
            write!(
                out,
                "  {} {}→{} msgs",
                g.kind.as_str(),
                g.req_messages,
                g.resp_messages
            )?;
        }
        write!(out, "  req {} resp ", Bytes(ex.request.body_len))?;
        match resp {
            Some(r) => write!(out, "{}", Bytes(r.body_len))?,
            None => write!(out, "-")?,
        }
        if let Some(code) = ex.reset_code {
            write!(out, "  reset ({})", h2_error_name(code))?;
        }
        if let Some(m) = ex.grpc.as_ref().and_then(|g| g.message.as_deref()) {
            write!(out, "  \"{m}\"")?;
        }
        if !ex.flags.is_empty() {
            write!(out, "  {}", self.paint("35", FlagList(ex.flags)))?;
        }
        self.dim_end(out)?;
        if let Some(g) = go {
            self.dim_start(out)?;
            write!(out, "  go: goroutine {}, ", g.goroutine)?;
            match ex.side {
                Side::Client => write!(out, "called from handler {}", g.caller_func)?,
                Side::Server => write!(out, "handler {}", g.caller_func)?,
            }
            self.dim_end(out)?;
        }

        if self.headers {
            self.header_lines(out, "> ", &ex.request.headers)?;
            self.header_lines(out, "> trailer ", &ex.request.trailers)?;
        }
        if self.bodies && !ex.request.body_preview.is_empty() {
            writeln!(out, "    > {}", preview(&ex.request.body_preview, 200))?;
        }
        if let Some(r) = resp {
            if self.headers {
                self.header_lines(out, "< ", &r.headers)?;
                self.header_lines(out, "< trailer ", &r.trailers)?;
            }
            if self.bodies && !r.body_preview.is_empty() {
                writeln!(out, "    < {}", preview(&r.body_preview, 200))?;
            }
        }
        Ok(())
    }

    /// Starts a detail line, kept quieter than the first.
    fn dim_start(&self, out: &mut impl Write) -> io::Result<()> {
        if self.color {
            out.write_all(b"\x1b[2m")?;
        }
        Ok(())
    }

    /// Ends a line started with [`Renderer::dim_start`].
    fn dim_end(&self, out: &mut impl Write) -> io::Result<()> {
        if self.color {
            out.write_all(b"\x1b[0m")?;
        }
        out.write_all(b"\n")
    }

    fn header_lines(&self, out: &mut impl Write, dir: &str, h: &Headers) -> io::Result<()> {
        for (n, v, fl) in h.iter() {
            let value = self.redact.value(n, v);
            let mark = if fl & FIELD_UNKNOWN != 0 {
                " (unknown)"
            } else {
                ""
            };
            writeln!(
                out,
                "    {dir}{}: {value}{mark}",
                String::from_utf8_lossy(n)
            )?;
        }
        Ok(())
    }

    fn status_text<'a>(&self, status: u16, reason: Option<&'a str>) -> Paint<Status<'a>> {
        let code = match status {
            200..=299 => "32",
            300..=399 => "36",
            400..=499 => "33",
            _ => "31",
        };
        self.paint(code, Status(status, reason))
    }
}

#[derive(Serialize)]
struct GrpcJson<'a> {
    service: &'a str,
    method: &'a str,
    kind: &'static str,
    status: Option<u32>,
    message: Option<&'a str>,
    req_messages: u32,
    resp_messages: u32,
    compressed: bool,
}

impl<'a> From<&'a Grpc> for GrpcJson<'a> {
    fn from(g: &'a Grpc) -> Self {
        GrpcJson {
            service: &g.service,
            method: &g.method,
            kind: g.kind.as_str(),
            status: g.status,
            message: g.message.as_deref(),
            req_messages: g.req_messages,
            resp_messages: g.resp_messages,
            compressed: g.compressed,
        }
    }
}

/// Where the request line goes when the request was not seen (joined
/// late, or its bytes were lost): the flags say which.
const UNSEEN: &str = "(request not seen)";

/// gRPC status code names (grpc/doc/statuscodes.md).
pub fn grpc_status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE")
}

/// HTTP/2 error code names (RFC 9113 §7).
pub fn h2_error_name(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_ERROR")
}

/// `850 µs`, `12.3 ms`, `1.52 s`.
pub fn latency_human(ns: u64) -> String {
    Latency(ns).to_string()
}

/// [`latency_human`] written in place.
struct Latency(u64);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns < 1_000_000 {
            let mut a = Ascii::<4>::new();
            a.number(ns / 1000);
            f.write_str(a.as_str())?;
            f.write_str(" µs")
        } else if ns < 1_000_000_000 {
            write!(f, "{:.1} ms", ns as f64 / 1e6)
        } else {
            write!(f, "{:.2} s", ns as f64 / 1e9)
        }
    }
}

/// Text in an SGR colour (`Some(code)`), or plain.
struct Paint<T>(Option<&'static str>, T);

impl<T: fmt::Display> fmt::Display for Paint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, "\x1b[{code}m{}\x1b[0m", self.1),
            None => write!(f, "{}", self.1),
        }
    }
}

/// `404 Not Found`, or the code alone without a reason.
struct Status<'a>(u16, Option<&'a str>);

impl fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(r) if !r.is_empty() => write!(f, "{} {r}", self.0),
            _ => write!(f, "{}", self.0),
        }
    }
}

/// `comm[pid]`.
struct Proc<'a>(&'a Comm, u32);

impl fmt::Display for Proc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// The process at the other end, `comm[pid] `, if known.
struct PeerPrefix<'a>(Option<&'a Peer>);

impl fmt::Display for PeerPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{}[{}] ", p.comm, p.pid),
            None => Ok(()),
        }
    }
}

/// An address, or `?`.
struct Addr(Option<SocketAddr>);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            // The usual case, in one piece (std's formatting writes each
            // octet and the port through the formatting machinery).
            Some(SocketAddr::V4(a)) => f.write_str(v4(a).as_str()),
            Some(a) => write!(f, "{a}"),
            None => f.write_str("?"),
        }
    }
}

/// An address as std writes it (IPv4 without the formatting machinery).
fn addr_text(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => v4(a).as_str().to_owned(),
        a => a.to_string(),
    }
}

/// `a.b.c.d:port`, as std writes it.
fn v4(a: SocketAddrV4) -> Ascii<21> {
    let mut s = Ascii::new();
    for (i, o) in a.ip().octets().into_iter().enumerate() {
        if i > 0 {
            s.push(b".");
        }
        s.number(o.into());
    }
    s.push(b":");
    s.number(a.port().into());
    s
}

/// `[gap, incomplete]`.
struct FlagList(Flags);

impl fmt::Display for FlagList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, name) in self.0.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        f.write_str("]")
    }
}

/// Whether flags mean data was lost for this exchange.
pub fn lossy(flags: Flags) -> bool {
    flags.contains(Flags::GAP) || flags.contains(Flags::TRUNCATED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::record::{GrpcKind, Message};

    fn meta() -> ConnMeta {
        ConnMeta {
            key: ConnKey {
                tgid: 4242,
                fd: 5,
                generation: 1,
            },
            comm: "curl".into(),
            local: Some("127.0.0.1:52390".parse().unwrap()),
            remote: Some("127.0.0.1:8000".parse().unwrap()),
            peer: Some(Peer {
                pid: 4240,
                comm: "python3".into(),
            }),
            role: Some("client"),
            tcp_state: None,
        }
    }

    fn sample() -> Box<Exchange> {
        let mut e = Exchange::new(Proto::Http1, Side::Client);
        e.method = "GET".into();
        e.path = "/index.html".into();
        e.authority = Some("127.0.0.1:8000".into());
        e.status = Some(200);
        e.reason = Some("OK".into());
        e.request.headers.push(b"Host", b"127.0.0.1:8000");
        e.request
            .headers
            .push(b"Authorization", b"Bearer s3cr3t-token");
        e.request.headers.push(b"Cookie", b"session=abc");
        e.request.first_ns = 1_000_000_000;
        let mut resp = Message {
            first_ns: 1_000_500_000,
            last_ns: 1_001_200_000,
            body_len: 3804,
            ..Message::default()
        };
        resp.headers.push(b"Set-Cookie", b"id=1");
        e.response = Some(resp);
        e.flags = Flags::GAP;
        e
    }

    fn renderer(json: bool, secrets: bool) -> Renderer {
        Renderer {
            json,
            color: false,
            headers: true,
            bodies: true,
            redact: Redactor::new(!secrets, &["x-api-key".into()]),
            clock_offset_ns: 1_700_000_000_000_000_000,
            last_second: Default::default(),
        }
    }

    #[test]
    fn json_has_the_documented_fields_and_redacts() {
        let mut out = Vec::new();
        renderer(true, false)
            .exchange(&mut out, &sample(), &meta(), None)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for key in [
            "proto",
            "pid",
            "comm",
            "fd",
            "side",
            "local",
            "remote",
            "stream_id",
            "method",
            "path",
            "authority",
            "status",
            "grpc_status",
            "req_headers",
            "resp_headers",
            "req_body_len",
            "resp_body_len",
            "start_ns",
            "latency_ns",
            "flags",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["schema"], SCHEMA_VERSION);
        assert_eq!(v["latency_ns"], 1_200_000);
        assert_eq!(v["start_ns"], 1_700_000_001_000_000_000u64);
        assert_eq!(v["peer"]["comm"], "python3");
        assert_eq!(v["flags"][0], "gap");
        let text = v.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains("abc") && !text.contains("id=1"));
        assert_eq!(v["req_headers"][1][1], "Bearer <redacted 12 bytes>");
        // --show-secrets
        let mut out = Vec::new();
        renderer(true, true)
            .exchange(&mut out, &sample(), &meta(), None)
            .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("s3cr3t-token"));
    }

    #[test]
    fn human_block_names_both_ends() {
        let mut out = Vec::new();
        renderer(false, false)
            .exchange(&mut out, &sample(), &meta(), None)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("GET /index.html HTTP/1.1 → 200 OK"),
            "{text}"
        );
        assert!(lines[0].ends_with("1.2 ms"), "{text}");
        assert!(
            lines[1].contains("curl[4242] 127.0.0.1:52390 → python3[4240] 127.0.0.1:8000"),
            "{text}"
        );
        assert!(lines[1].contains("[gap]"), "{text}");
        assert!(
            text.contains("Authorization: Bearer <redacted 12 bytes>"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"));
    }

    #[test]
    fn grpc_block() {
        let mut e = sample();
        e.proto = Proto::Http2;
        e.stream_id = Some(1);
        e.flags = Flags::NONE;
        e.grpc = Some(Grpc {
            service: "helloworld.Greeter".into(),
            method: "SayHello".into(),
            req_messages: 1,
            resp_messages: 1,
            kind: GrpcKind::Unary,
            status: Some(5),
            message: Some("no such user".into()),
            ..Grpc::default()
        });
        let mut out = Vec::new();
        let mut r = renderer(false, false);
        r.headers = false;
        r.exchange(&mut out, &e, &meta(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("gRPC helloworld.Greeter/SayHello → NOT_FOUND (5)"),
            "{text}"
        );
        assert!(
            text.contains("h2 stream 1") && text.contains("unary 1→1 msgs"),
            "{text}"
        );
        assert!(text.contains("\"no such user\""), "{text}");
    }

    /// What the text says when the request was not seen, 1xx answers
    /// came first, or a message had trailers.
    #[test]
    fn unseen_requests_interim_answers_and_trailers() {
        let mut e = sample();
        e.proto = Proto::Http2;
        e.version = "HTTP/2";
        e.method.clear();
        e.path.clear();
        e.interim = vec![100, 103];
        e.response
            .as_mut()
            .unwrap()
            .trailers
            .push(b"x-checksum", b"abc");
        let mut out = Vec::new();
        let r = renderer(false, false);
        r.exchange(&mut out, &e, &meta(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.contains("(request not seen) HTTP/2 → 200 OK (after 100, 103)"),
            "{text}"
        );
        assert!(text.contains("    < trailer x-checksum: abc"), "{text}");
        e.grpc = Some(Grpc {
            status: Some(0),
            ..Grpc::default()
        });
        let mut out = Vec::new();
        r.exchange(&mut out, &e, &meta(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("gRPC (request not seen) → OK (0)"), "{text}");
    }

    #[test]
    fn latency_forms() {
        assert_eq!(latency_human(850_000), "850 µs");
        assert_eq!(latency_human(12_340_000), "12.3 ms");
        assert_eq!(latency_human(1_520_000_000), "1.52 s");
        assert_eq!(latency_human(0), "0 µs");
        assert_eq!(latency_human(999_999), "999 µs");
    }

    #[test]
    fn ipv4_addresses_read_as_std_writes_them() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "255.255.255.255:65535",
            "10.20.3.100:443",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(Addr(Some(a)).to_string(), a.to_string());
        }
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(Addr(Some(v6)).to_string(), "[::1]:80");
        assert_eq!(Addr(None).to_string(), "?");
    }

    #[test]
    fn time_of_day_is_local_time_with_micros_and_follows_the_clock() {
        let clock = LastSecond::default();
        // Against localtime_r itself, across second, minute and day edges.
        for ns in [
            1_700_000_000_000_001_000u64,
            1_700_000_000_999_999_000,
            1_700_000_001_000_000_000,
            1_700_000_059_500_000_000,
            1_700_000_060_000_042_000,
            1_700_086_400_123_456_789,
            1_700_000_000_000_001_000,
        ] {
            let secs = (ns / 1_000_000_000) as libc::time_t;
            // SAFETY: as in LastSecond::time_of_day.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            unsafe { libc::localtime_r(&secs, &mut tm) };
            let want = format!(
                "{:02}:{:02}:{:02}.{:06}",
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec,
                ns % 1_000_000_000 / 1000
            );
            assert_eq!(clock.time_of_day(ns).as_str(), want);
        }
    }
}
