//! Struct field offsets the probes read through: from the binary's DWARF
//! when it has some, else from a fallback table keyed by exact versions.
//!
//! ## The fallback table
//!
//! Every number in [`TABLE`] was read from the DWARF of a binary built here:
//! the test programs in `src/golang/testdata/` built with Debian 12's
//! golang-1.19 1.19.8-2 in GOPATH mode, against Debian's
//! golang-google-grpc-dev 1.33.3-2 and golang-golang-x-net-dev
//! 1:0.7.0+dfsg-1. Reproduce it (it prints the table as Rust) with
//!
//! ```text
//! cargo xtask go-offsets
//! ```
//!
//! and the test `golang::offsets::tests::table_matches_dwarf` checks on
//! every run that the table still equals the DWARF of freshly built
//! binaries.
//!
//! An entry applies only to the exact versions it names: struct layouts can
//! change in any release (even a patch release may add a field), and a wrong
//! offset reads garbage. A binary of any other version, stripped of DWARF,
//! gets [`OffsetsError::UnknownVersion`] and the probes that need those
//! offsets are not attached, with that message. Adding a version is one
//! run of the command above on a binary of that version.

use std::collections::HashMap;

use super::{
    buildinfo::GoVersion,
    dwarf::{self, DwarfError, StructLayout},
    elf::ElfImage,
};

/// The grpc-go module.
pub const GRPC_MODULE: &str = "google.golang.org/grpc";
/// golang.org/x/net (grpc-go's HTTP/2 framer and HPACK types).
pub const XNET_MODULE: &str = "golang.org/x/net";

/// Who defines a struct, and so which version its layout depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The standard library: the Go version.
    Std,
    /// A module: the Go version and the module's version.
    Module(&'static str),
}

/// A field a probe reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    /// The DWARF type name it must have, or alternatives separated by `|`
    /// (a shape check against a renamed or retyped field).
    pub type_name: &'static str,
    /// Go version (major, minor) that introduced the field, if recent: before
    /// it, its absence is expected and not an error.
    pub since_go: Option<(u32, u32)>,
}

/// A struct a probe reads, and which of its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructSpec {
    pub name: &'static str,
    pub owner: Owner,
    pub fields: &'static [FieldSpec],
}

const fn f(name: &'static str, type_name: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        type_name,
        since_go: None,
    }
}

pub const HTTP_REQUEST: &str = "net/http.Request";
pub const URL: &str = "net/url.URL";
pub const HTTP_RESPONSE: &str = "net/http.Response";
pub const HTTP_SERVER_RESPONSE: &str = "net/http.response";
pub const RUNTIME_G: &str = "runtime.g";
pub const GRPC_LOOPY_WRITER: &str = "google.golang.org/grpc/internal/transport.loopyWriter";
pub const GRPC_CALL_HDR: &str = "google.golang.org/grpc/internal/transport.CallHdr";
pub const GRPC_STREAM: &str = "google.golang.org/grpc/internal/transport.Stream";
pub const XNET_META_HEADERS_FRAME: &str = "golang.org/x/net/http2.MetaHeadersFrame";
pub const XNET_HEADERS_FRAME: &str = "golang.org/x/net/http2.HeadersFrame";
pub const XNET_FRAME_HEADER: &str = "golang.org/x/net/http2.FrameHeader";
pub const XNET_HEADER_FIELD: &str = "golang.org/x/net/http2/hpack.HeaderField";

/// Every struct and field any probe reads.
pub const STRUCTS: &[StructSpec] = &[
    StructSpec {
        name: HTTP_REQUEST,
        owner: Owner::Std,
        fields: &[
            f("Method", "string"),
            f("URL", "*net/url.URL"),
            f("Header", "net/http.Header"),
            f("ContentLength", "int64"),
            f("Host", "string"),
            f("ctx", "context.Context"),
        ],
    },
    StructSpec {
        name: URL,
        owner: Owner::Std,
        fields: &[
            f("Scheme", "string"),
            f("Host", "string"),
            f("Path", "string"),
            f("RawQuery", "string"),
        ],
    },
    StructSpec {
        name: HTTP_RESPONSE,
        owner: Owner::Std,
        fields: &[f("StatusCode", "int"), f("Request", "*net/http.Request")],
    },
    StructSpec {
        // The server side's http.ResponseWriter for HTTP/1.
        name: HTTP_SERVER_RESPONSE,
        owner: Owner::Std,
        fields: &[
            f("req", "*net/http.Request"),
            f("wroteHeader", "bool"),
            f("status", "int"),
        ],
    },
    StructSpec {
        name: RUNTIME_G,
        owner: Owner::Std,
        fields: &[
            // int64 until Go 1.20, uint64 since.
            f("goid", "int64|uint64"),
            // Go 1.21 added the creator's goroutine id; before that the
            // parent comes from probing runtime.newproc1.
            FieldSpec {
                name: "parentGoid",
                type_name: "uint64",
                since_go: Some((1, 21)),
            },
        ],
    },
    StructSpec {
        name: GRPC_LOOPY_WRITER,
        owner: Owner::Module(GRPC_MODULE),
        fields: &[f("side", "google.golang.org/grpc/internal/transport.side")],
    },
    StructSpec {
        name: GRPC_CALL_HDR,
        owner: Owner::Module(GRPC_MODULE),
        fields: &[f("Host", "string"), f("Method", "string")],
    },
    StructSpec {
        name: GRPC_STREAM,
        owner: Owner::Module(GRPC_MODULE),
        fields: &[f("id", "uint32"), f("method", "string")],
    },
    StructSpec {
        name: XNET_META_HEADERS_FRAME,
        owner: Owner::Module(XNET_MODULE),
        fields: &[
            f("HeadersFrame", "*golang.org/x/net/http2.HeadersFrame"),
            f("Fields", "[]golang.org/x/net/http2/hpack.HeaderField"),
        ],
    },
    StructSpec {
        name: XNET_HEADERS_FRAME,
        owner: Owner::Module(XNET_MODULE),
        fields: &[f("FrameHeader", "golang.org/x/net/http2.FrameHeader")],
    },
    StructSpec {
        name: XNET_FRAME_HEADER,
        owner: Owner::Module(XNET_MODULE),
        fields: &[f("StreamID", "uint32")],
    },
    StructSpec {
        name: XNET_HEADER_FIELD,
        owner: Owner::Module(XNET_MODULE),
        fields: &[f("Name", "string"), f("Value", "string")],
    },
];

pub fn spec(name: &str) -> Option<&'static StructSpec> {
    STRUCTS.iter().find(|s| s.name == name)
}

/// (struct, size, [(field, offset)]) in a [`TableEntry`].
pub type TableStruct = (&'static str, u64, &'static [(&'static str, u64)]);

/// One entry of the fallback table: the layouts of one owner's structs for
/// one Go version (and module version).
#[derive(Debug)]
pub struct TableEntry {
    pub owner: Owner,
    /// Exact Go version string, as build info records it.
    pub go: &'static str,
    /// Exact module version (`v1.33.3`), for [`Owner::Module`].
    pub module_version: Option<&'static str>,
    /// Where the numbers come from.
    pub source: &'static str,
    /// (struct, size, [(field, offset)]); a field absent from the struct in
    /// that version (see [`FieldSpec::since_go`]) is left out.
    pub structs: &'static [TableStruct],
}

const SOURCE_GO119: &str = "DWARF of src/golang/testdata/{nethttp,gin,grpc} built with Debian 12 \
golang-1.19 1.19.8-2 (GOPATH mode), Debian golang-google-grpc-dev 1.33.3-2 and \
golang-golang-x-net-dev 1:0.7.0+dfsg-1; reproduce with `cargo xtask go-offsets`";

/// The fallback table (see the module doc).
// Output of `cargo xtask go-offsets`, pasted.
#[rustfmt::skip]
pub const TABLE: &[TableEntry] = &[
    TableEntry {
        owner: Owner::Std,
        go: "go1.19.8",
        module_version: None,
        source: SOURCE_GO119,
        structs: &[
            (HTTP_REQUEST, 248, &[("Method", 0), ("URL", 16), ("Header", 56), ("ContentLength", 88), ("Host", 128), ("ctx", 232)]),
            (URL, 144, &[("Scheme", 0), ("Host", 40), ("Path", 56), ("RawQuery", 96)]),
            (HTTP_RESPONSE, 144, &[("StatusCode", 16), ("Request", 128)]),
            (HTTP_SERVER_RESPONSE, 224, &[("req", 8), ("wroteHeader", 40), ("status", 120)]),
            (RUNTIME_G, 392, &[("goid", 152)]),
        ],
    },
    TableEntry {
        owner: Owner::Module(GRPC_MODULE),
        go: "go1.19.8",
        module_version: Some("v1.33.3"),
        source: SOURCE_GO119,
        structs: &[
            (GRPC_LOOPY_WRITER, 88, &[("side", 0)]),
            (GRPC_CALL_HDR, 88, &[("Host", 0), ("Method", 16)]),
            (GRPC_STREAM, 256, &[("id", 0), ("method", 72)]),
        ],
    },
    TableEntry {
        owner: Owner::Module(XNET_MODULE),
        go: "go1.19.8",
        module_version: Some("v0.7.0"),
        source: SOURCE_GO119,
        structs: &[
            (XNET_META_HEADERS_FRAME, 40, &[("HeadersFrame", 0), ("Fields", 8)]),
            (XNET_HEADERS_FRAME, 48, &[("FrameHeader", 0)]),
            (XNET_FRAME_HEADER, 12, &[("StreamID", 8)]),
            (XNET_HEADER_FIELD, 40, &[("Name", 0), ("Value", 16)]),
        ],
    },
];

/// Where a struct's layout came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutSource {
    Dwarf,
    /// The fallback table entry for this key.
    Table {
        go: &'static str,
        module_version: Option<&'static str>,
        source: &'static str,
    },
}

/// A struct's resolved layout: its size and the offsets of the fields we
/// read (a field absent in this Go version, as expected, maps to `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub name: &'static str,
    pub size: u64,
    pub fields: Vec<(&'static str, Option<u64>)>,
    pub source: LayoutSource,
}

impl Layout {
    /// A field's offset; `None` if absent in this version, as expected.
    pub fn field(&self, name: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, o)| *o)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("reading DWARF: {0}")]
    Dwarf(#[from] DwarfError),
    #[error(
        "no struct offsets for {strukt} ({owner_desc}): the binary has no DWARF (built with -ldflags=-w) \
         and the fallback table has no entry for {key}; build the service without -w, or add the \
         version to the table (cargo xtask go-offsets on a binary of that version)"
    )]
    UnknownVersion {
        strukt: &'static str,
        owner_desc: String,
        key: String,
    },
    #[error("DWARF has no struct {strukt}: is this code linked into the binary?")]
    StructMissing { strukt: &'static str },
    #[error("DWARF struct {strukt} has no field {field} (expected in this Go version)")]
    FieldMissing {
        strukt: &'static str,
        field: &'static str,
    },
    #[error("DWARF field {strukt}.{field} has type {found}, expected {expected}: layout changed")]
    FieldType {
        strukt: &'static str,
        field: &'static str,
        expected: &'static str,
        found: String,
    },
}

/// The versions that select a fallback table entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionKey {
    /// Exact Go version string (`go1.19.8`).
    pub go: Option<String>,
    /// Module path → exact version (`v1.33.3`).
    pub modules: HashMap<&'static str, String>,
}

/// Struct layouts for one binary.
pub struct Resolver {
    dwarf: Option<HashMap<String, StructLayout>>,
    key: VersionKey,
    go: Option<GoVersion>,
}

impl Resolver {
    /// Read the DWARF layouts of every struct in [`STRUCTS`] once (if the
    /// binary has DWARF).
    pub fn new(
        elf: &ElfImage<'_>,
        go: Option<GoVersion>,
        key: VersionKey,
    ) -> Result<Self, OffsetsError> {
        let dwarf = if dwarf::present(elf) {
            let names: Vec<&str> = STRUCTS.iter().map(|s| s.name).collect();
            Some(dwarf::struct_layouts(elf, &names)?)
        } else {
            None
        };
        Ok(Self { dwarf, key, go })
    }

    pub fn has_dwarf(&self) -> bool {
        self.dwarf.is_some()
    }

    /// The layout of one of [`STRUCTS`].
    pub fn layout(&self, spec: &'static StructSpec) -> Result<Layout, OffsetsError> {
        match &self.dwarf {
            Some(d) => from_dwarf(spec, d, self.go.as_ref()),
            None => from_table(spec, &self.key),
        }
    }
}

fn expected_absent(field: &FieldSpec, go: Option<&GoVersion>) -> bool {
    match (field.since_go, go) {
        (Some((maj, min)), Some(v)) => !v.at_least(maj, min),
        _ => false,
    }
}

fn from_dwarf(
    spec: &'static StructSpec,
    dwarf: &HashMap<String, StructLayout>,
    go: Option<&GoVersion>,
) -> Result<Layout, OffsetsError> {
    let s = dwarf
        .get(spec.name)
        .ok_or(OffsetsError::StructMissing { strukt: spec.name })?;
    let mut fields = Vec::new();
    for field in spec.fields {
        match s.member(field.name) {
            Some(m) => {
                let found = m.type_name.as_deref().unwrap_or("");
                if !field.type_name.split('|').any(|t| t == found) {
                    return Err(OffsetsError::FieldType {
                        strukt: spec.name,
                        field: field.name,
                        expected: field.type_name,
                        found: found.to_string(),
                    });
                }
                fields.push((field.name, Some(m.offset)));
            }
            None if expected_absent(field, go) || (field.since_go.is_some() && go.is_none()) => {
                fields.push((field.name, None))
            }
            None => {
                return Err(OffsetsError::FieldMissing {
                    strukt: spec.name,
                    field: field.name,
                });
            }
        }
    }
    Ok(Layout {
        name: spec.name,
        size: s.size,
        fields,
        source: LayoutSource::Dwarf,
    })
}

fn from_table(spec: &'static StructSpec, key: &VersionKey) -> Result<Layout, OffsetsError> {
    let (owner_desc, module_version) = match spec.owner {
        Owner::Std => ("the Go standard library".to_string(), None),
        Owner::Module(m) => (format!("module {m}"), key.modules.get(m)),
    };
    let key_desc = match (&key.go, spec.owner, module_version) {
        (None, _, _) => "an unknown Go version".to_string(),
        (Some(go), Owner::Std, _) => go.clone(),
        (Some(go), Owner::Module(m), None) => format!("{go} with an unknown version of {m}"),
        (Some(go), Owner::Module(m), Some(v)) => format!("{go} with {m} {v}"),
    };
    let unknown = || OffsetsError::UnknownVersion {
        strukt: spec.name,
        owner_desc: owner_desc.clone(),
        key: key_desc.clone(),
    };
    let go = key.go.as_deref().ok_or_else(unknown)?;
    let entry = TABLE
        .iter()
        .find(|e| {
            e.owner == spec.owner
                && e.go == go
                && e.module_version.map(str::to_string).as_ref() == module_version
        })
        .ok_or_else(unknown)?;
    let &(_, size, offsets) = entry
        .structs
        .iter()
        .find(|(n, _, _)| *n == spec.name)
        .ok_or_else(unknown)?;
    let fields = spec
        .fields
        .iter()
        .map(|f| {
            (
                f.name,
                offsets.iter().find(|(n, _)| *n == f.name).map(|&(_, o)| o),
            )
        })
        .collect::<Vec<_>>();
    // A field neither in the entry nor expected to be absent would be a
    // table bug; treat it as unknown rather than guess.
    let go_version = GoVersion::parse(go);
    for (spec_field, (_, off)) in spec.fields.iter().zip(&fields) {
        if off.is_none() && !expected_absent(spec_field, go_version.as_ref()) {
            return Err(unknown());
        }
    }
    Ok(Layout {
        name: spec.name,
        size,
        fields,
        source: LayoutSource::Table {
            go: entry.go,
            module_version: entry.module_version,
            source: entry.source,
        },
    })
}

/// Render DWARF layouts of [`STRUCTS`] as [`TABLE`] entries (Rust source),
/// for `cargo xtask go-offsets`.
pub fn render_table(
    dwarf: &HashMap<String, StructLayout>,
    go: &str,
    module_versions: &HashMap<&'static str, String>,
) -> String {
    let mut out = String::new();
    let owners = [
        Owner::Std,
        Owner::Module(GRPC_MODULE),
        Owner::Module(XNET_MODULE),
    ];
    for owner in owners {
        let structs: Vec<_> = STRUCTS
            .iter()
            .filter(|s| s.owner == owner)
            .filter_map(|s| dwarf.get(s.name).map(|l| (s, l)))
            .collect();
        if structs.is_empty() {
            continue;
        }
        let (owner_src, version) = match owner {
            Owner::Std => ("Owner::Std".to_string(), "None".to_string()),
            Owner::Module(m) => {
                let konst = if m == GRPC_MODULE {
                    "GRPC_MODULE"
                } else {
                    "XNET_MODULE"
                };
                let v = module_versions
                    .get(m)
                    .map(|v| format!("Some({v:?})"))
                    .unwrap_or_else(|| "None /* unknown: fill in */".to_string());
                (format!("Owner::Module({konst})"), v)
            }
        };
        out.push_str(&format!(
            "    TableEntry {{\n        owner: {owner_src},\n        go: {go:?},\n        module_version: {version},\n        source: SOURCE_GO119,\n        structs: &[\n"
        ));
        for (spec, layout) in structs {
            let fields: Vec<String> = spec
                .fields
                .iter()
                .filter_map(|f| {
                    layout
                        .member(f.name)
                        .map(|m| format!("({:?}, {})", f.name, m.offset))
                })
                .collect();
            out.push_str(&format!(
                "            ({}, {}, &[{}]),\n",
                const_name(spec.name),
                layout.size,
                fields.join(", ")
            ));
        }
        out.push_str("        ],\n    },\n");
    }
    out
}

fn const_name(s: &str) -> String {
    let consts = [
        (HTTP_REQUEST, "HTTP_REQUEST"),
        (URL, "URL"),
        (HTTP_RESPONSE, "HTTP_RESPONSE"),
        (HTTP_SERVER_RESPONSE, "HTTP_SERVER_RESPONSE"),
        (RUNTIME_G, "RUNTIME_G"),
        (GRPC_LOOPY_WRITER, "GRPC_LOOPY_WRITER"),
        (GRPC_CALL_HDR, "GRPC_CALL_HDR"),
        (GRPC_STREAM, "GRPC_STREAM"),
        (XNET_META_HEADERS_FRAME, "XNET_META_HEADERS_FRAME"),
        (XNET_HEADERS_FRAME, "XNET_HEADERS_FRAME"),
        (XNET_FRAME_HEADER, "XNET_FRAME_HEADER"),
        (XNET_HEADER_FIELD, "XNET_HEADER_FIELD"),
    ];
    consts
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| c.to_string())
        .unwrap_or_else(|| format!("{s:?}"))
}
