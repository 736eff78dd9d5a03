//! Function addresses by name: from `.symtab` when the binary has one, else
//! from the Go function table (`.gopclntab`), which stripped binaries keep.
//!
//! Both give the same entry addresses for the same build (tested on real
//! binaries and their `-s -w` copies). A function's extent is the symbol's
//! size, or, from the function table, up to the next function's entry
//! (which adds the linker's INT3 padding: harmless to disassemble).

use std::collections::HashMap;

use super::{
    elf::ElfImage,
    pclntab::{Pclntab, PclntabError},
};

const ABI0_SUFFIX: &str = ".abi0";

/// Where a function's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncSource {
    Symtab,
    Pclntab,
}

/// A function with code of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub entry: u64,
    /// One past the last byte of the function (see the module doc).
    pub end: u64,
    pub source: FuncSource,
}

/// The answer to "where is function X".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Function),
    /// No code of its own, but the inlining tables name it: the compiler
    /// inlined it into every caller.
    Inlined,
    /// Not in this binary (not linked in, or dead-code eliminated).
    Missing,
}

/// All functions of one binary.
#[derive(Debug)]
pub struct Functions<'a> {
    by_name: HashMap<&'a str, Function>,
    pclntab: Option<Pclntab<'a>>,
    source: FuncSource,
}

impl<'a> Functions<'a> {
    /// Index the binary's functions. A Go binary always has a function table;
    /// if it cannot be read, `.symtab` alone still answers (without
    /// inlining information).
    pub fn new(elf: &ElfImage<'a>) -> Result<Self, PclntabError> {
        let pclntab = find_pclntab(elf);
        let mut by_name = HashMap::new();
        let source = if elf.has_symtab() {
            // Assembly and cgo functions have size 0 in `.symtab`; the
            // function table knows their extent.
            let table_ends: HashMap<u64, u64> = match &pclntab {
                Ok(t) => t
                    .funcs()
                    .filter_map(Result::ok)
                    .map(|f| (f.entry, f.end))
                    .collect(),
                Err(_) => HashMap::new(),
            };
            for sym in elf.func_symbols() {
                let end = match (sym.size, table_ends.get(&sym.addr)) {
                    (0, Some(&end)) => end,
                    (0, None) => continue,
                    (size, _) => sym.addr + size,
                };
                // Go's linker suffixes assembly (ABI0) functions with
                // `.abi0` in `.symtab` only; the function table and
                // everything else use the bare name.
                let name = sym.name.strip_suffix(ABI0_SUFFIX).unwrap_or(sym.name);
                by_name.entry(name).or_insert(Function {
                    entry: sym.addr,
                    end,
                    source: FuncSource::Symtab,
                });
            }
            FuncSource::Symtab
        } else {
            let table = pclntab.as_ref().map_err(Clone::clone)?;
            for f in table.funcs() {
                let f = f?;
                by_name.entry(f.name).or_insert(Function {
                    entry: f.entry,
                    end: f.end,
                    source: FuncSource::Pclntab,
                });
            }
            FuncSource::Pclntab
        };
        Ok(Self {
            by_name,
            pclntab: pclntab.ok(),
            source,
        })
    }

    /// Where addresses come from for this binary.
    pub fn source(&self) -> FuncSource {
        self.source
    }

    pub fn pclntab(&self) -> Option<&Pclntab<'a>> {
        self.pclntab.as_ref()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn lookup(&self, name: &str) -> Lookup {
        if let Some(f) = self.by_name.get(name) {
            return Lookup::Found(*f);
        }
        match &self.pclntab {
            Some(t) if t.names_inlined_function(name) => Lookup::Inlined,
            _ => Lookup::Missing,
        }
    }

    /// Whether any function belongs to the package or module `prefix`
    /// (`google.golang.org/grpc` matches `google.golang.org/grpc.invoke`
    /// and `google.golang.org/grpc/internal/transport.(*http2Client).NewStream`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.by_name.keys().any(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('.'))
        })
    }

    /// The function whose code contains `addr`.
    pub fn containing(&self, addr: u64) -> Option<(&'a str, Function)> {
        self.by_name
            .iter()
            .find(|(_, f)| (f.entry..f.end).contains(&addr))
            .map(|(n, f)| (*n, *f))
    }
}

/// Section names of the function table: position-independent builds put it
/// in the RELRO segment.
const PCLNTAB_SECTIONS: [&str; 2] = [".gopclntab", ".data.rel.ro.gopclntab"];

/// The function table by section name, else (section headers gone) by
/// searching the non-executable segments for a header that parses and whose
/// first and last function records are consistent.
pub fn find_pclntab<'a>(elf: &ElfImage<'a>) -> Result<Pclntab<'a>, PclntabError> {
    let text = elf.section_address(".text");
    for name in PCLNTAB_SECTIONS {
        if let Some(data) = elf.section_file_bytes(name) {
            return Pclntab::parse(data, text);
        }
    }
    for seg in elf.load_segments() {
        if seg.executable() {
            continue;
        }
        let Ok(bytes) = elf.bytes_at(seg.vaddr, seg.file_size) else {
            continue;
        };
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let Some(pos) = memchr::memmem::find(&bytes[at..], &[0xf0, 0xff, 0xff, 0xff])
                .into_iter()
                .chain(memchr::memmem::find(
                    &bytes[at..],
                    &[0xf1, 0xff, 0xff, 0xff],
                ))
                .chain(memchr::memmem::find(
                    &bytes[at..],
                    &[0xfa, 0xff, 0xff, 0xff],
                ))
                .min()
            else {
                break;
            };
            let start = at + pos;
            if start % 4 == 0
                && let Ok(t) = Pclntab::parse(&bytes[start..], text)
                && t.len() > 0
                && t.func(0).is_ok()
                && t.func(t.len() - 1).is_ok()
            {
                return Ok(t);
            }
            at = start + 1;
        }
    }
    Err(PclntabError::Missing)
}
