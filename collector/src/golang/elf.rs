//! The ELF facts Go binary analysis needs: sections (decompressed when the
//! linker compressed them, as Go does with DWARF), `.symtab` function
//! symbols, build ids, and the loadable segments that turn a virtual address
//! into the file offset a uprobe is attached at.
//!
//! Sans-IO: bytes of a file in, facts out. Built on the `object` crate, which
//! is already in the dependency tree through aya (one ELF reader for the whole
//! binary), reads without copying, and inflates both SHF_COMPRESSED sections
//! (Go 1.19 as built by Debian) and GNU `.zdebug_*` ones (older Go linkers).

use std::borrow::Cow;

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

/// `PT_LOAD` segment permission bits (ELF `p_flags`).
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
/// `PT_NOTE`, for finding the Go build id without section headers.
const PT_NOTE: u32 = 4;
/// The Go linker's note: owner "Go", type 4 (`ELF_NOTE_GOBUILDID_TAG` in
/// cmd/link/internal/ld/elf.go), descriptor = the Go build id string.
const GO_NOTE_NAME: &[u8] = b"Go";
const GO_NOTE_BUILDID: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF file: {source}")]
    Malformed {
        #[source]
        source: object::Error,
    },
    #[error("section {section}: cannot read or decompress it: {source}")]
    Section {
        section: String,
        #[source]
        source: object::Error,
    },
    #[error("address {addr:#x} is not in any loadable segment with file contents")]
    AddressNotMapped { addr: u64 },
}

/// CPU architecture, as far as Go analysis cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    Other,
}

/// One `PT_LOAD` program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub offset: u64,
    pub file_size: u64,
    pub flags: u32,
}

impl LoadSegment {
    pub fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }
    pub fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }
    pub fn readable(&self) -> bool {
        self.flags & PF_R != 0
    }
    /// Whether `addr` has bytes in the file (not just zero-filled memory).
    fn maps(&self, addr: u64) -> bool {
        addr >= self.vaddr && addr - self.vaddr < self.file_size
    }
}

/// `(p_offset, p_filesz)` of a `PT_NOTE`.
type NoteRange = (u64, u64);

/// A function symbol from `.symtab`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncSymbol<'data> {
    pub name: &'data str,
    pub addr: u64,
    pub size: u64,
}

/// Build identifiers, either of which may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildIds {
    /// `NT_GNU_BUILD_ID`, hex (present when linked externally or with
    /// `-B`).
    pub gnu: Option<String>,
    /// The Go build id (`.note.go.buildid`), which `go` writes into every
    /// executable it links.
    pub go: Option<String>,
}

/// A parsed ELF file.
pub struct ElfImage<'data> {
    data: &'data [u8],
    file: object::File<'data>,
    loads: Vec<LoadSegment>,
    notes: Vec<NoteRange>,
}

impl std::fmt::Debug for ElfImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfImage")
            .field("len", &self.data.len())
            .field("arch", &self.arch())
            .field("loads", &self.loads)
            .finish()
    }
}

impl<'data> ElfImage<'data> {
    pub fn parse(data: &'data [u8]) -> Result<Self, ElfError> {
        if !data.starts_with(b"\x7fELF") {
            return Err(ElfError::NotElf);
        }
        let file = object::File::parse(data).map_err(|source| ElfError::Malformed { source })?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(ElfError::NotElf);
        }
        let (loads, notes) = program_headers(&file, data)?;
        Ok(Self {
            data,
            file,
            loads,
            notes,
        })
    }

    pub fn data(&self) -> &'data [u8] {
        self.data
    }

    pub fn arch(&self) -> Arch {
        match self.file.architecture() {
            object::Architecture::X86_64 => Arch::X86_64,
            object::Architecture::Aarch64 => Arch::Aarch64,
            _ => Arch::Other,
        }
    }

    pub fn is_little_endian(&self) -> bool {
        self.file.is_little_endian()
    }

    pub fn is_64(&self) -> bool {
        self.file.is_64()
    }

    /// Position-independent (ET_DYN): addresses are relative to a load base
    /// chosen at run time. File offsets are computed the same way.
    pub fn is_pie(&self) -> bool {
        self.file.kind() == object::ObjectKind::Dynamic
    }

    pub fn load_segments(&self) -> &[LoadSegment] {
        &self.loads
    }

    /// A section's bytes as they are in memory: decompressed if the file
    /// stores them compressed. `Ok(None)` if there is no such section (or it
    /// has no file contents, like `.bss`).
    pub fn section_data(&self, name: &str) -> Result<Option<Cow<'data, [u8]>>, ElfError> {
        let Some(section) = self.file.section_by_name(name) else {
            return Ok(None);
        };
        if section.file_range().is_none() {
            return Ok(None);
        }
        section
            .uncompressed_data()
            .map(Some)
            .map_err(|source| ElfError::Section {
                section: name.to_string(),
                source,
            })
    }

    /// A section's bytes straight from the file (no decompression): for
    /// sections that are never compressed, like `.gopclntab`.
    pub fn section_file_bytes(&self, name: &str) -> Option<&'data [u8]> {
        let section = self.file.section_by_name(name)?;
        let (start, size) = section.file_range()?;
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        self.data.get(start..end)
    }

    /// A section's virtual address, if the section exists.
    pub fn section_address(&self, name: &str) -> Option<u64> {
        self.file.section_by_name(name).map(|s| s.address())
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.file.section_by_name(name).is_some()
    }

    /// Whether the file has a `.symtab` with at least one function symbol
    /// (`go build -ldflags=-s` removes it).
    pub fn has_symtab(&self) -> bool {
        self.func_symbols().next().is_some()
    }

    /// Function symbols of `.symtab` (not `.dynsym`: a Go executable's
    /// dynamic symbols are its C imports).
    pub fn func_symbols(&self) -> impl Iterator<Item = FuncSymbol<'data>> + '_ {
        self.file.symbols().filter_map(|sym| {
            if sym.kind() != object::SymbolKind::Text || !sym.is_definition() {
                return None;
            }
            let name = sym.name().ok()?;
            Some(FuncSymbol {
                name,
                addr: sym.address(),
                size: sym.size(),
            })
        })
    }

    /// A data symbol's address and size from `.symtab` (e.g.
    /// `runtime.buildVersion`).
    pub fn data_symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.file
            .symbols()
            .find(|s| s.kind() == object::SymbolKind::Data && s.name() == Ok(name))
            .map(|s| (s.address(), s.size()))
    }

    pub fn build_ids(&self) -> BuildIds {
        let gnu = self
            .file
            .build_id()
            .ok()
            .flatten()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
        let go = self.go_build_id();
        BuildIds { gnu, go }
    }

    fn go_build_id(&self) -> Option<String> {
        if let Ok(Some(data)) = self.section_data(".note.go.buildid")
            && let Some(id) = find_go_note(&data, self.is_little_endian())
        {
            return Some(id);
        }
        self.notes.iter().find_map(|&(offset, size)| {
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            find_go_note(self.data.get(start..end)?, self.is_little_endian())
        })
    }

    /// The `PT_LOAD` segment that has file bytes at `addr`.
    pub fn segment_of(&self, addr: u64) -> Option<&LoadSegment> {
        self.loads.iter().find(|s| s.maps(addr))
    }

    /// The file offset of a virtual address, from the segment that maps it:
    /// `addr - p_vaddr + p_offset`. This is what `aya`'s
    /// `UProbeAttachLocation::AbsoluteOffset` and the kernel's uprobe
    /// `offset` mean (relative to the start of the file, whatever the load
    /// base).
    pub fn file_offset(&self, addr: u64) -> Result<u64, ElfError> {
        let seg = self
            .segment_of(addr)
            .ok_or(ElfError::AddressNotMapped { addr })?;
        Ok(addr - seg.vaddr + seg.offset)
    }

    /// Up to `len` file-backed bytes at a virtual address (fewer if the
    /// segment's file contents end first).
    pub fn bytes_at(&self, addr: u64, len: u64) -> Result<&'data [u8], ElfError> {
        let seg = self
            .segment_of(addr)
            .ok_or(ElfError::AddressNotMapped { addr })?;
        let avail = seg.file_size - (addr - seg.vaddr);
        let len = len.min(avail);
        let start = addr - seg.vaddr + seg.offset;
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + len).ok());
        range
            .and_then(|(s, e)| self.data.get(s..e))
            .ok_or(ElfError::AddressNotMapped { addr })
    }

    /// Read a pointer-sized little/big-endian word at a virtual address.
    pub fn read_word(&self, addr: u64, ptr_size: usize) -> Result<u64, ElfError> {
        let bytes = self.bytes_at(addr, ptr_size as u64)?;
        read_uint(bytes, ptr_size, self.is_little_endian())
            .ok_or(ElfError::AddressNotMapped { addr })
    }
}

/// An unsigned integer of `size` (4 or 8) bytes at the start of `b`.
pub(crate) fn read_uint(b: &[u8], size: usize, little: bool) -> Option<u64> {
    match size {
        4 => {
            let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
            Some(u64::from(if little {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }))
        }
        8 => {
            let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
            Some(if little {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            })
        }
        _ => None,
    }
}

fn program_headers(
    file: &object::File<'_>,
    data: &[u8],
) -> Result<(Vec<LoadSegment>, Vec<NoteRange>), ElfError> {
    let mut loads = Vec::new();
    for seg in file.segments() {
        let object::SegmentFlags::Elf { p_flags, .. } = seg.flags() else {
            continue;
        };
        let (offset, file_size) = seg.file_range();
        // object's segments() lists PT_LOAD only.
        loads.push(LoadSegment {
            vaddr: seg.address(),
            mem_size: seg.size(),
            offset,
            file_size,
            flags: p_flags.0,
        });
    }
    let notes = note_segments(data, file.is_little_endian(), file.is_64());
    Ok((loads, notes))
}

/// `(p_offset, p_filesz)` of each `PT_NOTE`, read straight from the program
/// headers (object exposes only `PT_LOAD` through its generic API).
fn note_segments(data: &[u8], little: bool, is_64: bool) -> Vec<NoteRange> {
    let rd = |off: usize, size: usize| data.get(off..).and_then(|b| read_uint(b, size, little));
    let rd16 = |off: usize| {
        let b: [u8; 2] = data.get(off..off + 2)?.try_into().ok()?;
        Some(u64::from(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (rd(0x20, 8), rd16(0x36), rd16(0x38))
    } else {
        (rd(0x1c, 4), rd16(0x2a), rd16(0x2c))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..phnum {
        let Some(base) = phoff
            .checked_add(i * phentsize)
            .and_then(|b| usize::try_from(b).ok())
        else {
            break;
        };
        if rd(base, 4) != Some(u64::from(PT_NOTE)) {
            continue;
        }
        let (off, size) = if is_64 {
            (rd(base + 8, 8), rd(base + 32, 8))
        } else {
            (rd(base + 4, 4), rd(base + 16, 4))
        };
        if let (Some(off), Some(size)) = (off, size) {
            out.push((off, size));
        }
    }
    out
}

/// Walk ELF notes (4-byte aligned, as both Go and GNU write them) for the Go
/// build id.
fn find_go_note(mut notes: &[u8], little: bool) -> Option<String> {
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let namesz = usize::try_from(read_uint(notes, 4, little)?).ok()?;
        let descsz = usize::try_from(read_uint(&notes[4..], 4, little)?).ok()?;
        let kind = read_uint(&notes[8..], 4, little)?;
        let name_end = 12usize.checked_add(namesz)?;
        let desc_start = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = desc_start.checked_add(descsz)?;
        let name = notes.get(12..name_end)?;
        let desc = notes.get(desc_start..desc_end)?;
        let name_len = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let name = &name[..name_len];
        if name == GO_NOTE_NAME && kind == u64::from(GO_NOTE_BUILDID) {
            return std::str::from_utf8(desc).ok().map(str::to_string);
        }
        notes = notes.get(desc_start.checked_add(align4(descsz)?)?..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_note_is_found_among_others() {
        let mut b = Vec::new();
        // A GNU build-id note first.
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"GNU\0\x01\x02\x03\0");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(b"Go\0\0abcde\0\0\0");
        // (Go writes namesz 4: "Go" and two NULs.)
        assert_eq!(find_go_note(&b, true).as_deref(), Some("abcde"));
        assert_eq!(find_go_note(&b[..30], true), None);
    }

    #[test]
    fn not_elf() {
        assert!(matches!(
            ElfImage::parse(b"MZ\x90\0"),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(ElfImage::parse(b""), Err(ElfError::NotElf)));
        assert!(matches!(
            ElfImage::parse(b"\x7fELF\x02\x01\x01"),
            Err(ElfError::Malformed { .. })
        ));
    }
}
