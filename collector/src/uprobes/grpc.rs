//! grpc-go calls from its decoded header lists: the request headers a
//! client sends or a server receives, then the response headers and
//! trailers (with `grpc-status`) coming back, per process, side and HTTP/2
//! stream id.
//!
//! Stream ids are per connection and the probes do not see which
//! connection a list belongs to: two connections of one process with the
//! same stream id open at the same moment would be confused. The newer
//! request then replaces the older (counted in [`GrpcTracker::replaced`]).

use std::collections::HashMap;

use protocols::record::Side;

use crate::events::{GoHeaders, GrpcList};

/// A finished gRPC call seen by the grpc-go probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCall {
    pub tgid: u32,
    pub side: Side,
    pub goid: u64,
    pub stream_id: u32,
    /// `:path`: `/package.Service/Method`.
    pub path: String,
    pub authority: String,
    /// HTTP `:status`.
    pub status: Option<u16>,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    pub request: Vec<(String, String)>,
    /// Response headers then trailers.
    pub response: Vec<(String, String)>,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Default)]
pub struct GrpcTracker {
    open: HashMap<(u32, Side, u32), GrpcCall>,
    /// Requests that replaced an unfinished one with the same stream id.
    pub replaced: u64,
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

impl GrpcTracker {
    pub fn new() -> GrpcTracker {
        GrpcTracker::default()
    }

    /// One header list; gives the call when its trailers (with
    /// `grpc-status`) arrive.
    pub fn on_headers(&mut self, h: &GoHeaders) -> Option<GrpcCall> {
        let tgid = h.common.key.tgid;
        let fields: Vec<(String, String)> = h
            .fields
            .iter()
            .map(|(n, v)| (n.lossy(), v.lossy()))
            .collect();
        let (side, request) = match h.list {
            GrpcList::ClientSent => (Side::Client, true),
            GrpcList::ServerReceived => (Side::Server, true),
            GrpcList::ServerSent => (Side::Server, false),
            GrpcList::ClientReceived => (Side::Client, false),
        };
        let key = (tgid, side, h.stream_id);
        if request {
            let call = GrpcCall {
                tgid,
                side,
                goid: h.goid,
                stream_id: h.stream_id,
                path: get(&fields, ":path").unwrap_or_default().to_string(),
                authority: get(&fields, ":authority").unwrap_or_default().to_string(),
                status: None,
                grpc_status: None,
                grpc_message: None,
                request: fields,
                response: Vec::new(),
                start_ns: h.common.ts_ns,
                end_ns: 0,
            };
            if self.open.insert(key, call).is_some() {
                self.replaced += 1;
            }
            return None;
        }
        let call = self.open.get_mut(&key)?;
        if let Some(s) = get(&fields, ":status").and_then(|s| s.parse().ok()) {
            call.status = Some(s);
        }
        let grpc_status = get(&fields, "grpc-status").and_then(|s| s.parse().ok());
        if let Some(m) = get(&fields, "grpc-message") {
            call.grpc_message = Some(m.to_string());
        }
        call.response.extend(fields);
        // Trailers (or a trailers-only response) end the call.
        let grpc_status = grpc_status?;
        let mut call = self.open.remove(&key)?;
        call.grpc_status = Some(grpc_status);
        call.end_ns = h.common.ts_ns;
        Some(call)
    }

    /// A call whose request was seen and whose trailers were not yet.
    pub fn open_call(&self, tgid: u32, side: Side, stream_id: u32) -> Option<&GrpcCall> {
        self.open.get(&(tgid, side, stream_id))
    }

    pub fn forget(&mut self, tgid: u32) {
        self.open.retain(|k, _| k.0 != tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Comm, Common, ConnKey, GoStr};

    fn s(v: &str) -> GoStr {
        GoStr {
            bytes: v.as_bytes().to_vec(),
            len: v.len() as u32,
        }
    }

    fn list(l: GrpcList, stream: u32, ts: u64, fields: &[(&str, &str)]) -> GoHeaders {
        GoHeaders {
            common: Common {
                key: ConnKey {
                    tgid: 9,
                    fd: -1,
                    generation: 0,
                },
                tid: 9,
                ts_ns: ts,
                comm: Comm::from("grpc"),
            },
            goid: 4,
            target: 1,
            stream_id: stream,
            list: l,
            end_stream: false,
            total: fields.len() as u32,
            read_failed: false,
            fields: fields.iter().map(|(n, v)| (s(n), s(v))).collect(),
        }
    }

    #[test]
    fn request_headers_then_trailers_make_a_call_per_side() {
        let mut t = GrpcTracker::new();
        let req = [(":path", "/a.B/C"), (":authority", "h:1"), ("x-id", "7")];
        assert_eq!(t.on_headers(&list(GrpcList::ClientSent, 1, 10, &req)), None);
        assert_eq!(
            t.on_headers(&list(GrpcList::ServerReceived, 1, 11, &req)),
            None
        );
        let head = [(":status", "200"), ("content-type", "application/grpc")];
        assert_eq!(
            t.on_headers(&list(GrpcList::ServerSent, 1, 12, &head)),
            None
        );
        let trailers = [("grpc-status", "5"), ("grpc-message", "nope")];
        let server = t
            .on_headers(&list(GrpcList::ServerSent, 1, 13, &trailers))
            .unwrap();
        assert_eq!(server.side, Side::Server);
        assert_eq!(
            (server.path.as_str(), server.authority.as_str()),
            ("/a.B/C", "h:1")
        );
        assert_eq!((server.status, server.grpc_status), (Some(200), Some(5)));
        assert_eq!(server.grpc_message.as_deref(), Some("nope"));
        assert_eq!(server.request.len(), 3);
        assert_eq!(server.response.len(), 4);
        assert_eq!((server.start_ns, server.end_ns), (11, 13));
        // A trailers-only response to the client.
        let only = [(":status", "200"), ("grpc-status", "0")];
        let client = t
            .on_headers(&list(GrpcList::ClientReceived, 1, 14, &only))
            .unwrap();
        assert_eq!((client.side, client.grpc_status), (Side::Client, Some(0)));
        // A response for a stream never seen starting is dropped.
        assert_eq!(
            t.on_headers(&list(GrpcList::ClientReceived, 3, 15, &only)),
            None
        );
    }
}
