//! gRPC over HTTP/2 (gRPC's PROTOCOL-HTTP2.md): call names from `:path`,
//! length-prefixed messages in DATA, status from trailers.
//!
//! ```text
//! Length-Prefixed-Message = Compressed-Flag(1 octet) Message-Length(4 octets, BE) Message
//! ```

use crate::record::{Grpc, GrpcKind, Headers};

/// Counts length-prefixed messages in one direction's body as it streams by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounter {
    prefix: [u8; 5],
    prefix_len: u8,
    /// Message octets still to skip.
    remaining: u64,
    pub messages: u32,
    pub compressed: bool,
    /// Body octets were lost where a prefix was: counting stopped.
    pub lost_sync: bool,
}

impl MessageCounter {
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.lost_sync {
            return;
        }
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let need = 5 - self.prefix_len as usize;
            let n = need.min(data.len());
            self.prefix[self.prefix_len as usize..self.prefix_len as usize + n]
                .copy_from_slice(&data[..n]);
            self.prefix_len += n as u8;
            data = &data[n..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                self.messages = self.messages.saturating_add(1);
                self.compressed |= self.prefix[0] & 1 != 0;
                let p = self.prefix;
                self.remaining = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as u64;
            }
        }
    }

    /// `n` body octets were lost: still in step only if they fell inside a
    /// message whose length we know.
    pub fn lost(&mut self, n: u64) {
        if self.prefix_len == 0 && n <= self.remaining {
            self.remaining -= n;
        } else {
            self.lost_sync = true;
        }
    }
}

/// True if the content-type names gRPC (`application/grpc`, `+proto`, ...).
pub fn is_grpc(headers: &Headers) -> bool {
    headers
        .get(b"content-type")
        .is_some_and(is_grpc_content_type)
}

/// True if a content-type value names gRPC.
pub fn is_grpc_content_type(v: &[u8]) -> bool {
    v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc")
}

/// `/package.Service/Method` into (service, method).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.rsplit_once('/')?;
    if service.is_empty() || method.is_empty() {
        return None;
    }
    Some((service, method))
}

/// gRPC's `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md).
pub fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && i + 2 < v.len()
            && let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Inputs to [`build`] from one stream.
pub struct CallParts<'a> {
    pub path: &'a str,
    pub req: &'a MessageCounter,
    pub resp: &'a MessageCounter,
    /// `grpc-status` and `grpc-message` from the trailers, or from the
    /// headers of a trailers-only response.
    pub status: Option<&'a [u8]>,
    pub message: Option<&'a [u8]>,
}

/// Assemble the gRPC view of an exchange.
pub fn build(p: CallParts<'_>) -> Grpc {
    let (service, method) = split_path(p.path).unwrap_or(("", ""));
    // The wire does not say; the counts do, up to a point. Unary and
    // server-streaming calls send exactly one request message, so any other
    // count means the client streamed. A streaming call that happened to
    // send one message each way looks unary.
    let kind = match (p.req.messages == 1, p.resp.messages > 1) {
        (true, false) => GrpcKind::Unary,
        (true, true) => GrpcKind::ServerStreaming,
        (false, false) => GrpcKind::ClientStreaming,
        (false, true) => GrpcKind::BidiStreaming,
    };
    let status = p
        .status
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok());
    // grpc-go sends an empty `grpc-message` with every OK status: no message.
    let message = p.message.filter(|m| !m.is_empty()).map(percent_decode);
    Grpc {
        service: service.to_string(),
        method: method.to_string(),
        req_messages: p.req.messages,
        resp_messages: p.resp.messages,
        compressed: p.req.compressed || p.resp.compressed,
        kind,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_message_counts() {
        let counter = |messages| MessageCounter {
            messages,
            ..MessageCounter::default()
        };
        for (req, resp, kind) in [
            (1, 1, GrpcKind::Unary),
            // An error answer carries no message.
            (1, 0, GrpcKind::Unary),
            (1, 3, GrpcKind::ServerStreaming),
            // No request message: never unary, the client streamed none.
            (0, 1, GrpcKind::ClientStreaming),
            (4, 1, GrpcKind::ClientStreaming),
            (0, 2, GrpcKind::BidiStreaming),
            (3, 3, GrpcKind::BidiStreaming),
        ] {
            let (req, resp) = (counter(req), counter(resp));
            let g = build(CallParts {
                path: "/pkg.Svc/M",
                req: &req,
                resp: &resp,
                status: Some(b"0"),
                message: None,
            });
            assert_eq!(g.kind, kind, "{} → {}", req.messages, resp.messages);
        }
    }

    #[test]
    fn counts_messages_split_anywhere() {
        let mut body = Vec::new();
        for (flag, len) in [(0u8, 3u32), (1, 0), (0, 70000)] {
            body.push(flag);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for cut in [0, 1, 3, 5, 6, 8, 9, 12, body.len()] {
            let mut c = MessageCounter::default();
            c.feed(&body[..cut]);
            c.feed(&body[cut..]);
            assert_eq!((c.messages, c.compressed), (3, true), "cut {cut}");
        }
        let mut c = MessageCounter::default();
        c.feed(&body[..20]);
        c.lost(1000);
        c.feed(&body[1020..]);
        assert_eq!(c.messages, 3);
        assert!(!c.lost_sync);
    }

    #[test]
    fn paths_and_messages() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_path("/x"), None);
        assert_eq!(percent_decode(b"bad%20thing%2"), "bad thing%2");
        assert_eq!(percent_decode(b"%E2%9C%93"), "\u{2713}");
    }
}
