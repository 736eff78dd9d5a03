//! Is this a Go executable, which Go built it, and with which modules.
//!
//! The Go linker writes a build-info blob into every executable (the
//! `.go.buildinfo` section on ELF, else near the start of the writable data
//! segment), 16-byte aligned:
//!
//! ```text
//!  0..14  magic "\xff Go buildinf:"
//! 14      pointer size (4 or 8)
//! 15      flags: bit 0 big-endian; bit 1 "strings inline" (Go 1.18+)
//! 16..32  Go < 1.18: two pointers to Go string headers {ptr, len}:
//!         runtime.buildVersion, runtime.modinfo (32-bit: 8 bytes unused)
//!         Go 1.18+: zero
//! 32..    Go 1.18+: uvarint length + bytes of the version, then of modinfo
//! ```
//!
//! `modinfo` is framed by 16-byte sentinels and holds tab-separated lines:
//! `path`, `mod`, `dep`, `=>` (a replacement of the line before) and, since
//! Go 1.18, `build key=value`. Source: Go's `debug/buildinfo` and
//! `runtime/debug/mod.go` (read for the format; this is our own reading).
//!
//! Builds in GOPATH mode (as with Debian's packaged Go libraries) have no
//! `mod`/`dep` lines: module versions are then unknown here, and
//! [`crate::golang::modversion`] looks for other evidence.
//!
//! When no blob exists (Go < 1.13, or damaged), `runtime.buildVersion` is
//! read through `.symtab` as a fallback.

use std::fmt;

use super::elf::{ElfError, ElfImage, read_uint};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const ALIGN: usize = 16;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE_STRINGS: u8 = 2;
/// Like `debug/buildinfo`, only this much of the data segment is searched
/// when there is no `.go.buildinfo` section.
const SEARCH_LIMIT: u64 = 64 * 1024;
/// Longest version / modinfo string we accept; real ones are < 100 KiB.
const MAX_STRING: u64 = 16 << 20;
/// Sentinels framing modinfo (cmd/go/internal/modload `infoStart`,
/// `infoEnd`): 16 bytes each, the end one preceded by a newline.
const MODINFO_FRAME: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    #[error("Go build info: {0}")]
    Elf(#[from] ElfError),
    #[error("Go build info blob is cut short")]
    Truncated,
    #[error("Go build info has an unsupported pointer size {0}")]
    PointerSize(u8),
    #[error("Go build info string at {addr:#x} is not readable")]
    BadString { addr: u64 },
}

/// A Go release, e.g. `go1.19.8` → 1.19.8. Pre-releases (`go1.21rc2`)
/// have patch 0 and `pre` set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub pre: Option<String>,
}

impl GoVersion {
    /// Parse `go1.19.8`, `go1.20`, `go1.21rc2`, `go1.22.0 X:boringcrypto`.
    /// Development builds (`devel ...`) give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().strip_prefix("go")?;
        let s = s.split(|c: char| c.is_whitespace()).next()?;
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (nums, pre) = s.split_at(num_end);
        let mut parts = nums.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        let pre = (!pre.is_empty()).then(|| pre.to_string());
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pre {
            Some(pre) => write!(f, "go{}.{}{pre}", self.major, self.minor),
            None => write!(f, "go{}.{}.{}", self.major, self.minor, self.patch),
        }
    }
}

/// Where the version string was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// Go 1.18+ build info (strings inline).
    BuildInfoInline,
    /// Go 1.13-1.17 build info (pointers to string headers).
    BuildInfoPointers,
    /// `runtime.buildVersion` through `.symtab`.
    RuntimeBuildVersion,
    /// None found, but the binary has a Go function table: Go, of an
    /// unknown version (e.g. a stripped Go < 1.18 position-independent
    /// binary, whose build info pointers are only filled in at load time).
    Unknown,
}

/// A module, as build info records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub version: String,
    pub sum: Option<String>,
    /// `=>` line: the module actually built in its place.
    pub replace: Option<Box<Module>>,
}

impl Module {
    /// The version of the code actually built (the replacement's, if any).
    pub fn effective_version(&self) -> &str {
        match &self.replace {
            Some(r) => &r.version,
            None => &self.version,
        }
    }
}

/// What the build info says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The version string as written (`go1.19.8`).
    pub raw_version: String,
    /// Parsed; `None` for development builds.
    pub version: Option<GoVersion>,
    pub source: VersionSource,
    /// `path` line: the main package's import path.
    pub path: Option<String>,
    /// `mod` line: the main module (module mode only).
    pub main: Option<Module>,
    /// `dep` lines.
    pub deps: Vec<Module>,
    /// `build` lines (Go 1.18+), e.g. `("GOARCH", "amd64")`.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// A Go binary whose build info could not be found.
    pub fn unknown() -> Self {
        Self {
            raw_version: "unknown Go version (no build info)".to_string(),
            version: None,
            source: VersionSource::Unknown,
            path: None,
            main: None,
            deps: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// A dependency by module path.
    pub fn dep(&self, path: &str) -> Option<&Module> {
        self.deps.iter().find(|m| m.path == path)
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Find and decode the build info. `Ok(None)`: this is not a Go executable
/// (no blob and no `runtime.buildVersion`).
pub fn read(elf: &ElfImage<'_>) -> Result<Option<BuildInfo>, BuildInfoError> {
    if let Some(blob) = find_blob(elf)?
        && let Some(info) = decode_blob(elf, blob)?
    {
        return Ok(Some(info));
    }
    // Fallback: the runtime's own copy of the version string.
    let Some((addr, _)) = elf.data_symbol("runtime.buildVersion") else {
        return Ok(None);
    };
    let ptr_size = if elf.is_64() { 8 } else { 4 };
    let version = String::from_utf8_lossy(&read_go_string(elf, addr, ptr_size)?).into_owned();
    if version.is_empty() {
        return Ok(None);
    }
    Ok(Some(BuildInfo {
        version: GoVersion::parse(&version),
        raw_version: version,
        source: VersionSource::RuntimeBuildVersion,
        path: None,
        main: None,
        deps: Vec::new(),
        settings: Vec::new(),
    }))
}

/// The 16-byte-aligned blob, from `.go.buildinfo` or the start of the first
/// writable, non-executable segment.
fn find_blob<'d>(elf: &ElfImage<'d>) -> Result<Option<&'d [u8]>, BuildInfoError> {
    let start = match elf.section_address(".go.buildinfo") {
        Some(addr) => Some(addr),
        None => elf
            .load_segments()
            .iter()
            .find(|s| s.writable() && !s.executable())
            .map(|s| s.vaddr),
    };
    let Some(start) = start else {
        return Ok(None);
    };
    let data = match elf.bytes_at(start, SEARCH_LIMIT) {
        Ok(d) => d,
        Err(ElfError::AddressNotMapped { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut at = 0;
    while at + HEADER_LEN <= data.len() {
        if data[at..].starts_with(MAGIC) {
            return Ok(Some(&data[at..]));
        }
        at += ALIGN;
    }
    Ok(None)
}

fn decode_blob(elf: &ElfImage<'_>, blob: &[u8]) -> Result<Option<BuildInfo>, BuildInfoError> {
    let header = blob.get(..HEADER_LEN).ok_or(BuildInfoError::Truncated)?;
    let ptr_size = header[14];
    let flags = header[15];
    let (version, modinfo, source) = if flags & FLAG_INLINE_STRINGS != 0 {
        let rest = &blob[HEADER_LEN..];
        let (version, rest) = uvarint_string(rest).ok_or(BuildInfoError::Truncated)?;
        let (modinfo, _) = uvarint_string(rest).ok_or(BuildInfoError::Truncated)?;
        (
            String::from_utf8_lossy(version).into_owned(),
            modinfo.to_vec(),
            VersionSource::BuildInfoInline,
        )
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(BuildInfoError::PointerSize(ptr_size));
        }
        let size = usize::from(ptr_size);
        let little = flags & FLAG_BIG_ENDIAN == 0;
        let ptr = |off: usize| read_uint(&header[off..], size, little);
        let (Some(vp), Some(mp)) = (ptr(16), ptr(16 + size)) else {
            return Err(BuildInfoError::Truncated);
        };
        // In a position-independent executable these pointers are filled in
        // by dynamic relocations and read as 0 in the file: fall back.
        if vp == 0 {
            return Ok(None);
        }
        let version = String::from_utf8_lossy(&read_go_string(elf, vp, size)?).into_owned();
        let modinfo = if mp == 0 {
            Vec::new()
        } else {
            read_go_string(elf, mp, size)?
        };
        (version, modinfo, VersionSource::BuildInfoPointers)
    };
    if version.is_empty() {
        return Ok(None);
    }
    let mut info = BuildInfo {
        version: GoVersion::parse(&version),
        raw_version: version,
        source,
        path: None,
        main: None,
        deps: Vec::new(),
        settings: Vec::new(),
    };
    parse_modinfo(&String::from_utf8_lossy(strip_frame(&modinfo)), &mut info);
    Ok(Some(info))
}

/// A Go string header `{ptr, len}` at `addr`, and the bytes it points to.
fn read_go_string(
    elf: &ElfImage<'_>,
    addr: u64,
    ptr_size: usize,
) -> Result<Vec<u8>, BuildInfoError> {
    let ptr = elf.read_word(addr, ptr_size)?;
    let len = elf.read_word(addr + ptr_size as u64, ptr_size)?;
    if len > MAX_STRING {
        return Err(BuildInfoError::BadString { addr });
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let bytes = elf.bytes_at(ptr, len)?;
    if bytes.len() as u64 != len {
        return Err(BuildInfoError::BadString { addr: ptr });
    }
    Ok(bytes.to_vec())
}

/// A Go `binary.Uvarint`-prefixed byte string.
fn uvarint_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let byte = *b.get(i)?;
        i += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    if len > MAX_STRING {
        return None;
    }
    let end = i.checked_add(usize::try_from(len).ok()?)?;
    Some((b.get(i..end)?, &b[end..]))
}

/// Remove the 16-byte sentinels around modinfo (binary, not UTF-8);
/// anything not framed that way is not modinfo (as `debug/buildinfo`
/// decides).
fn strip_frame(b: &[u8]) -> &[u8] {
    if b.len() > 2 * MODINFO_FRAME && b[b.len() - MODINFO_FRAME - 1] == b'\n' {
        &b[MODINFO_FRAME..b.len() - MODINFO_FRAME]
    } else {
        &[]
    }
}

/// Parse modinfo lines into `info`. Unknown lines are skipped.
pub fn parse_modinfo(text: &str, info: &mut BuildInfo) {
    // Which module a `=>` line replaces: the main module or the last dep.
    enum Last {
        None,
        Main,
        Dep,
    }
    let mut last = Last::None;
    for line in text.lines() {
        let mut fields = line.split('\t');
        let Some(kind) = fields.next() else { continue };
        let rest: Vec<&str> = fields.collect();
        let module = || {
            Some(Module {
                path: rest.first()?.to_string(),
                version: rest.get(1).map(|s| s.to_string()).unwrap_or_default(),
                sum: rest.get(2).filter(|s| !s.is_empty()).map(|s| s.to_string()),
                replace: None,
            })
        };
        match kind {
            "path" => {
                info.path = rest.first().map(|s| s.to_string());
                last = Last::None;
            }
            "mod" => {
                info.main = module();
                last = Last::Main;
            }
            "dep" => {
                if let Some(m) = module() {
                    info.deps.push(m);
                    last = Last::Dep;
                }
            }
            "=>" => {
                let target = match last {
                    Last::Main => info.main.as_mut(),
                    Last::Dep => info.deps.last_mut(),
                    Last::None => None,
                };
                if let (Some(t), Some(r)) = (target, module()) {
                    t.replace = Some(Box::new(r));
                }
                last = Last::None;
            }
            "build" => {
                if let Some((k, v)) = rest.join("\t").split_once('=') {
                    info.settings.push((k.to_string(), unquote(v)));
                }
                last = Last::None;
            }
            _ => last = Last::None,
        }
    }
}

/// Build setting values with spaces are Go-quoted (`"-s -w"`); only the
/// simple escapes occur in practice.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        type Parsed = (u32, u32, u32, Option<&'static str>);
        let cases: &[(&str, Option<Parsed>)] = &[
            ("go1.19.8", Some((1, 19, 8, None))),
            ("go1.20", Some((1, 20, 0, None))),
            ("go1.21rc2", Some((1, 21, 0, Some("rc2")))),
            ("go1.22.1 X:boringcrypto", Some((1, 22, 1, None))),
            ("devel go1.23-abc123 Mon", None),
            ("go1", None),
            ("", None),
        ];
        for (s, want) in cases {
            let got = GoVersion::parse(s).map(|v| (v.major, v.minor, v.patch, v.pre));
            let want = want.map(|(a, b, c, p)| (a, b, c, p.map(str::to_string)));
            assert_eq!(got, want, "{s}");
        }
        let v = GoVersion::parse("go1.19.8").unwrap();
        assert!(v.at_least(1, 17) && v.at_least(1, 19) && !v.at_least(1, 20));
        assert_eq!(v.to_string(), "go1.19.8");
    }

    #[test]
    fn modinfo_lines() {
        let text = "path\texample.com/app\n\
                    mod\texample.com/app\t(devel)\t\n\
                    dep\tgoogle.golang.org/grpc\tv1.33.3\th1:abc=\n\
                    dep\tgolang.org/x/net\tv0.7.0\th1:def=\n\
                    =>\t../net\t(devel)\t\n\
                    build\t-ldflags=\"-s -w\"\n\
                    build\tGOARCH=amd64\n";
        let mut info = BuildInfo {
            raw_version: "go1.19.8".into(),
            version: None,
            source: VersionSource::BuildInfoInline,
            path: None,
            main: None,
            deps: Vec::new(),
            settings: Vec::new(),
        };
        parse_modinfo(text, &mut info);
        assert_eq!(info.path.as_deref(), Some("example.com/app"));
        assert_eq!(info.main.as_ref().unwrap().version, "(devel)");
        let grpc = info.dep("google.golang.org/grpc").unwrap();
        assert_eq!(
            (grpc.version.as_str(), grpc.sum.as_deref()),
            ("v1.33.3", Some("h1:abc="))
        );
        let net = info.dep("golang.org/x/net").unwrap();
        assert_eq!(net.effective_version(), "(devel)");
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.setting("GOARCH"), Some("amd64"));
    }

    #[test]
    fn framing_and_varints() {
        let mut framed = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6".to_vec();
        framed.extend_from_slice(b"path\tx\n");
        framed.extend_from_slice(b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2");
        assert_eq!(strip_frame(&framed), b"path\tx\n");
        assert_eq!(strip_frame(b"short"), b"");
        assert_eq!(
            uvarint_string(b"\x03abcrest"),
            Some((&b"abc"[..], &b"rest"[..]))
        );
        assert_eq!(uvarint_string(b"\x05ab"), None);
        assert_eq!(uvarint_string(&[0xff; 12]), None);
        let mut long = vec![0x81, 0x01];
        long.extend(std::iter::repeat_n(b'x', 129));
        assert_eq!(uvarint_string(&long).map(|(s, _)| s.len()), Some(129));
    }
}
