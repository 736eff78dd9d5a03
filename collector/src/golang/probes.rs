//! The Go functions the uprobes attach to, what each one reads, and where.
//!
//! | probe | function (Go 1.19 symbol) | at | reads |
//! |---|---|---|---|
//! | `http_server` | `net/http.serverHandler.ServeHTTP` | entry, returns | `*Request` (RDI): method, URL, host, headers; `ResponseWriter` data word (RCX: `*http.response` for HTTP/1) → status; goroutine (R14) |
//! | `http_client_do` | `net/http.(*Client).Do`, inlined in Go 1.19 → `net/http.(*Client).do` | entry, returns | `*Request` (RBX); `*Response` (RAX) at return |
//! | `http_client_round_trip` | `net/http.(*Transport).roundTrip` | entry, returns | `*Request` (RBX); `*Response` (RAX) and error (RBX, RCX) at return |
//! | `goroutine_new` | `runtime.newproc1` | entry, returns | creator `*g` (RBX) at entry; new `*g` (RAX) at return → parent/child goids |
//! | `grpc_server_headers` | `google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders` | entry | `*MetaHeadersFrame` (RBX): stream id, header fields |
//! | `grpc_client_headers` | `.../transport.(*http2Client).operateHeaders` | entry | `*MetaHeadersFrame` (RBX): response headers and trailers |
//! | `grpc_write_header` | `.../transport.(*loopyWriter).writeHeader` | entry | writer side (client/server, RAX), stream id (RBX), header fields slice (RDI, RSI) |
//! | `grpc_client_stream` | `.../transport.(*http2Client).NewStream` | entry, returns | `*CallHdr` (RDI): host, method; `*Stream` (RAX) at return: stream id |
//!
//! `(*Client).Do` is a one-line wrapper the compiler inlines into every
//! caller (Go 1.19 emits no code for it); the plan then probes the function
//! it calls, `(*Client).do`, which takes the same arguments, and says so.

use super::{
    abi::{Shape, Signature, v},
    offsets::{self, GRPC_MODULE, Owner},
};

/// A probe's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeId {
    HttpServer,
    HttpClientDo,
    HttpClientRoundTrip,
    GoroutineNew,
    GrpcServerHeaders,
    GrpcClientHeaders,
    GrpcWriteHeader,
    GrpcClientStream,
}

impl ProbeId {
    pub fn name(self) -> &'static str {
        match self {
            ProbeId::HttpServer => "http_server",
            ProbeId::HttpClientDo => "http_client_do",
            ProbeId::HttpClientRoundTrip => "http_client_round_trip",
            ProbeId::GoroutineNew => "goroutine_new",
            ProbeId::GrpcServerHeaders => "grpc_server_headers",
            ProbeId::GrpcClientHeaders => "grpc_client_headers",
            ProbeId::GrpcWriteHeader => "grpc_write_header",
            ProbeId::GrpcClientStream => "grpc_client_stream",
        }
    }
}

/// What a probe needs.
#[derive(Debug)]
pub struct ProbeSpec {
    pub id: ProbeId,
    /// The function, as Go names it in symbols and the function table.
    pub function: &'static str,
    /// If `function` was inlined everywhere: a function it calls with the
    /// same arguments and results, probed instead.
    pub if_inlined: Option<&'static str>,
    /// Also probe its return sites.
    pub returns: bool,
    /// The module it comes from (`None`: the standard library). Probes of a
    /// module the binary does not use are "not applicable", not failures.
    pub module: Option<&'static str>,
    /// Structs whose field offsets the probe reads through.
    pub structs: &'static [&'static str],
    pub signature: Signature,
}

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        id: ProbeId::HttpServer,
        function: "net/http.serverHandler.ServeHTTP",
        if_inlined: None,
        returns: true,
        module: None,
        structs: &[
            offsets::HTTP_REQUEST,
            offsets::URL,
            offsets::HTTP_SERVER_RESPONSE,
            offsets::RUNTIME_G,
        ],
        // func (sh serverHandler) ServeHTTP(rw ResponseWriter, req *Request)
        // serverHandler is struct{ srv *Server }: one word.
        signature: Signature {
            params: &[
                v("sh", "net/http.serverHandler", Shape::Word),
                v("rw", "net/http.ResponseWriter", Shape::Interface),
                v("req", "*net/http.Request", Shape::Word),
            ],
            results: &[],
        },
    },
    ProbeSpec {
        id: ProbeId::HttpClientDo,
        function: "net/http.(*Client).Do",
        if_inlined: Some("net/http.(*Client).do"),
        returns: true,
        module: None,
        structs: &[
            offsets::HTTP_REQUEST,
            offsets::URL,
            offsets::HTTP_RESPONSE,
            offsets::RUNTIME_G,
        ],
        // func (c *Client) Do(req *Request) (*Response, error)
        // func (c *Client) do(req *Request) (retres *Response, reterr error)
        signature: Signature {
            params: &[
                v("c", "*net/http.Client", Shape::Word),
                v("req", "*net/http.Request", Shape::Word),
            ],
            results: &[
                v("retres", "*net/http.Response", Shape::Word),
                v("reterr", "error", Shape::Interface),
            ],
        },
    },
    ProbeSpec {
        id: ProbeId::HttpClientRoundTrip,
        function: "net/http.(*Transport).roundTrip",
        if_inlined: None,
        returns: true,
        module: None,
        structs: &[
            offsets::HTTP_REQUEST,
            offsets::URL,
            offsets::HTTP_RESPONSE,
            offsets::RUNTIME_G,
        ],
        // func (t *Transport) roundTrip(req *Request) (*Response, error)
        signature: Signature {
            params: &[
                v("t", "*net/http.Transport", Shape::Word),
                v("req", "*net/http.Request", Shape::Word),
            ],
            results: &[
                v("~r0", "*net/http.Response", Shape::Word),
                v("~r1", "error", Shape::Interface),
            ],
        },
    },
    ProbeSpec {
        id: ProbeId::GoroutineNew,
        function: "runtime.newproc1",
        if_inlined: None,
        returns: true,
        module: None,
        structs: &[offsets::RUNTIME_G],
        // func newproc1(fn *funcval, callergp *g, callerpc uintptr) *g
        signature: Signature {
            params: &[
                v("fn", "*runtime.funcval", Shape::Word),
                v("callergp", "*runtime.g", Shape::Word),
                v("callerpc", "uintptr", Shape::Word),
            ],
            results: &[v("~r0", "*runtime.g", Shape::Word)],
        },
    },
    ProbeSpec {
        id: ProbeId::GrpcServerHeaders,
        function: "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders",
        if_inlined: None,
        returns: false,
        module: Some(GRPC_MODULE),
        structs: &[
            offsets::XNET_META_HEADERS_FRAME,
            offsets::XNET_HEADERS_FRAME,
            offsets::XNET_FRAME_HEADER,
            offsets::XNET_HEADER_FIELD,
            offsets::RUNTIME_G,
        ],
        // func (t *http2Server) operateHeaders(frame *http2.MetaHeadersFrame,
        //     handle func(*Stream), traceCtx func(context.Context, string) context.Context) (fatal bool)
        signature: Signature {
            params: &[
                v(
                    "t",
                    "*google.golang.org/grpc/internal/transport.http2Server",
                    Shape::Word,
                ),
                v(
                    "frame",
                    "*golang.org/x/net/http2.MetaHeadersFrame",
                    Shape::Word,
                ),
                v(
                    "handle",
                    "func(*google.golang.org/grpc/internal/transport.Stream)",
                    Shape::Word,
                ),
                v(
                    "traceCtx",
                    "func(context.Context, string) context.Context",
                    Shape::Word,
                ),
            ],
            results: &[v("fatal", "bool", Shape::Word)],
        },
    },
    ProbeSpec {
        id: ProbeId::GrpcClientHeaders,
        function: "google.golang.org/grpc/internal/transport.(*http2Client).operateHeaders",
        if_inlined: None,
        returns: false,
        module: Some(GRPC_MODULE),
        structs: &[
            offsets::XNET_META_HEADERS_FRAME,
            offsets::XNET_HEADERS_FRAME,
            offsets::XNET_FRAME_HEADER,
            offsets::XNET_HEADER_FIELD,
            offsets::RUNTIME_G,
        ],
        // func (t *http2Client) operateHeaders(frame *http2.MetaHeadersFrame)
        signature: Signature {
            params: &[
                v(
                    "t",
                    "*google.golang.org/grpc/internal/transport.http2Client",
                    Shape::Word,
                ),
                v(
                    "frame",
                    "*golang.org/x/net/http2.MetaHeadersFrame",
                    Shape::Word,
                ),
            ],
            results: &[],
        },
    },
    ProbeSpec {
        id: ProbeId::GrpcWriteHeader,
        function: "google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader",
        if_inlined: None,
        returns: false,
        module: Some(GRPC_MODULE),
        structs: &[
            offsets::GRPC_LOOPY_WRITER,
            offsets::XNET_HEADER_FIELD,
            offsets::RUNTIME_G,
        ],
        // func (l *loopyWriter) writeHeader(streamID uint32, endStream bool,
        //     hf []hpack.HeaderField, onWrite func()) error
        signature: Signature {
            params: &[
                v(
                    "l",
                    "*google.golang.org/grpc/internal/transport.loopyWriter",
                    Shape::Word,
                ),
                v("streamID", "uint32", Shape::Word),
                v("endStream", "bool", Shape::Word),
                v(
                    "hf",
                    "[]golang.org/x/net/http2/hpack.HeaderField",
                    Shape::Slice,
                ),
                v("onWrite", "func()", Shape::Word),
            ],
            results: &[v("~r0", "error", Shape::Interface)],
        },
    },
    ProbeSpec {
        id: ProbeId::GrpcClientStream,
        function: "google.golang.org/grpc/internal/transport.(*http2Client).NewStream",
        if_inlined: None,
        returns: true,
        module: Some(GRPC_MODULE),
        structs: &[
            offsets::GRPC_CALL_HDR,
            offsets::GRPC_STREAM,
            offsets::RUNTIME_G,
        ],
        // func (t *http2Client) NewStream(ctx context.Context, callHdr *CallHdr) (_ *Stream, err error)
        signature: Signature {
            params: &[
                v(
                    "t",
                    "*google.golang.org/grpc/internal/transport.http2Client",
                    Shape::Word,
                ),
                v("ctx", "context.Context", Shape::Interface),
                v(
                    "callHdr",
                    "*google.golang.org/grpc/internal/transport.CallHdr",
                    Shape::Word,
                ),
            ],
            results: &[
                v(
                    "~r0",
                    "*google.golang.org/grpc/internal/transport.Stream",
                    Shape::Word,
                ),
                v("err", "error", Shape::Interface),
            ],
        },
    },
];

pub fn spec(id: ProbeId) -> &'static ProbeSpec {
    // PROBES has one entry per ProbeId (tested).
    PROBES.iter().find(|p| p.id == id).unwrap_or(&PROBES[0])
}

/// Whether a struct is defined by the standard library or a module.
pub fn owner_of(strukt: &str) -> Option<Owner> {
    offsets::spec(strukt).map(|s| s.owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_is_listed_once_and_its_structs_are_known() {
        for id in [
            ProbeId::HttpServer,
            ProbeId::HttpClientDo,
            ProbeId::HttpClientRoundTrip,
            ProbeId::GoroutineNew,
            ProbeId::GrpcServerHeaders,
            ProbeId::GrpcClientHeaders,
            ProbeId::GrpcWriteHeader,
            ProbeId::GrpcClientStream,
        ] {
            assert_eq!(PROBES.iter().filter(|p| p.id == id).count(), 1, "{id:?}");
            assert_eq!(spec(id).id, id);
        }
        for p in PROBES {
            for s in p.structs {
                assert!(offsets::spec(s).is_some(), "{}: {s}", p.function);
            }
        }
    }
}
