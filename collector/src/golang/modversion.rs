//! Which version of a Go module (grpc-go, golang.org/x/net) a binary was
//! built with.
//!
//! 1. Build info `dep` lines (module-mode builds): exact, and a `=>`
//!    replacement's version wins.
//! 2. For grpc-go, its user agent: grpc-go's client sends
//!    `grpc-go/<Version>`, a constant (`primaryUA` in `clientconn.go`), so
//!    the string is in the binary whenever the client code is linked in.
//!    GOPATH-mode builds (Debian's packaged libraries) have no `dep` lines;
//!    this is then the only evidence. A server-only binary may not have it.
//! 3. Otherwise unknown: never guessed. With DWARF it does not matter
//!    (offsets come from DWARF); without, the probes that need that
//!    module's struct offsets are not attached.

use memchr::memmem;

use super::{buildinfo::BuildInfo, elf::ElfImage, offsets::GRPC_MODULE};

const GRPC_UA_PREFIX: &[u8] = b"grpc-go/";

/// How a module version was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionEvidence {
    BuildInfo,
    /// grpc-go's `grpc-go/X.Y.Z` user agent string.
    GrpcUserAgent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleVersion {
    /// With the leading `v`, as Go modules write it (`v1.33.3`).
    pub version: String,
    pub evidence: VersionEvidence,
}

/// A module's version in this binary, if it can be known.
pub fn module_version(elf: &ElfImage<'_>, info: &BuildInfo, module: &str) -> Option<ModuleVersion> {
    if let Some(m) = info.dep(module) {
        return Some(ModuleVersion {
            version: m.effective_version().to_string(),
            evidence: VersionEvidence::BuildInfo,
        });
    }
    if module == GRPC_MODULE {
        return grpc_user_agent_version(elf).map(|v| ModuleVersion {
            version: format!("v{v}"),
            evidence: VersionEvidence::GrpcUserAgent,
        });
    }
    None
}

/// `X.Y.Z` from `grpc-go/X.Y.Z` in the binary's data; `None` if absent or
/// if different versions appear.
pub fn grpc_user_agent_version(elf: &ElfImage<'_>) -> Option<String> {
    let mut found: Option<String> = None;
    for seg in elf.load_segments() {
        if seg.executable() {
            continue;
        }
        let Ok(bytes) = elf.bytes_at(seg.vaddr, seg.file_size) else {
            continue;
        };
        for at in memmem::find_iter(bytes, GRPC_UA_PREFIX) {
            let rest = &bytes[at + GRPC_UA_PREFIX.len()..];
            let Some(v) = version_prefix(rest) else {
                continue;
            };
            match &found {
                Some(f) if *f != v => return None,
                _ => found = Some(v),
            }
        }
    }
    found
}

/// `1.33.3` (and a `-dev` suffix) at the start of `b`: Go string data is
/// not terminated, so what follows may be another string.
fn version_prefix(b: &[u8]) -> Option<String> {
    let end = b
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'.'))
        .unwrap_or(b.len());
    let mut v = std::str::from_utf8(&b[..end])
        .ok()?
        .trim_end_matches('.')
        .to_string();
    if v.split('.').count() != 3 || v.split('.').any(str::is_empty) {
        return None;
    }
    if b[end..].starts_with(b"-dev") {
        v.push_str("-dev");
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(
            version_prefix(b"1.33.3grpc-trace-bin").as_deref(),
            Some("1.33.3")
        );
        assert_eq!(
            version_prefix(b"1.34.0-devfoo").as_deref(),
            Some("1.34.0-dev")
        );
        assert_eq!(version_prefix(b"1.33").as_deref(), None);
        assert_eq!(version_prefix(b"x").as_deref(), None);
        assert_eq!(version_prefix(b"1..3").as_deref(), None);
    }
}
