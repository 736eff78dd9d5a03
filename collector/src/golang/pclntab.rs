//! The Go runtime's function table (`.gopclntab`), present in every Go
//! executable, including those stripped with `-ldflags='-s -w'`: the runtime
//! needs it for stack traces and garbage collection.
//!
//! Header (all versions): magic u32, two zero bytes, PC quantum (1 on
//! x86-64), pointer size. Then, in pointer-sized words:
//!
//! ```text
//! magic        Go      words after the 8-byte prefix
//! 0xfffffffb   1.2-1.15  nfunc; functab follows at 8+ptrsize
//! 0xfffffffa   1.16-1.17 nfunc, nfiles, funcnameOff, cuOff, filetabOff,
//!                        pctabOff, pclnOff
//! 0xfffffff0   1.18-1.19 nfunc, nfiles, textStart, funcnameOff, cuOff,
//! 0xfffffff1   1.20+     filetabOff, pctabOff, pclnOff
//! ```
//!
//! The function table at `pclnOff` holds `nfunc` pairs `(entry, funcOff)`
//! and one final end PC; from Go 1.18 each is a u32 and entries are relative
//! to `textStart`, before that each is a pointer-sized absolute address.
//! `funcOff` locates the function's `_func` record (relative to `pclnOff`;
//! to the table start for 1.2), whose first fields are the entry (u32 offset
//! from 1.18, else a pointer) and `nameOff` (i32, into `funcnametab`; into
//! the table for 1.2). Names are NUL-terminated.
//!
//! Sources: Go's `runtime/symtab.go` (`pcHeader`, `_func`) and
//! `debug/gosym/pclntab.go`; read to learn the format, not copied.
//!
//! Inlined functions have no function table entry, but the inlining trees
//! name them in `funcnametab` (1.16+): [`Pclntab::names_inlined_function`].

use memchr::memmem;

use super::elf::read_uint;

const MAGIC_12: u32 = 0xffff_fffb;
const MAGIC_116: u32 = 0xffff_fffa;
const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
/// More functions than any real binary has (a large Kubernetes binary has
/// ~100k): beyond this the header is garbage.
const MAX_FUNCS: u64 = 10_000_000;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclntabError {
    #[error("no Go function table (.gopclntab)")]
    Missing,
    #[error("Go function table has an unknown header (magic {magic:#x})")]
    UnknownMagic { magic: u32 },
    #[error("Go function table header is invalid: {what}")]
    BadHeader { what: &'static str },
    #[error("Go function table is cut short ({what})")]
    Truncated { what: &'static str },
    #[error("Go function table: function #{index} is malformed ({what})")]
    BadFunc { index: usize, what: &'static str },
    #[error(
        "Go 1.18+ function table with no text start (position-independent binary without a .text section)"
    )]
    NoTextStart,
}

/// Which header layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PclnVersion {
    /// Go 1.2-1.15.
    Go12,
    /// Go 1.16-1.17.
    Go116,
    /// Go 1.18-1.19.
    Go118,
    /// Go 1.20 and later.
    Go120,
}

/// A function of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PclnFunc<'a> {
    pub name: &'a str,
    pub entry: u64,
    /// The next function's entry (or the table's end PC): includes the
    /// linker's padding after the function.
    pub end: u64,
}

/// A parsed `.gopclntab`.
#[derive(Debug)]
pub struct Pclntab<'a> {
    data: &'a [u8],
    version: PclnVersion,
    little: bool,
    ptr_size: usize,
    nfunc: usize,
    text_start: u64,
    funcnametab: &'a [u8],
    /// The start of `_func` records' base (`pclnOff`), and the function
    /// table there.
    funcdata: &'a [u8],
    functab: &'a [u8],
}

impl<'a> Pclntab<'a> {
    /// Parse the table. `text_section` is the address of `.text` (the
    /// runtime's `runtime.text`), used when the header's `textStart` reads
    /// as 0, as it does in position-independent executables where a dynamic
    /// relocation fills it in.
    pub fn parse(data: &'a [u8], text_section: Option<u64>) -> Result<Self, PclntabError> {
        let head = data
            .get(..8)
            .ok_or(PclntabError::Truncated { what: "header" })?;
        let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let magic_be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (magic, little) = match (magic_le, magic_be) {
            (m, _) if is_magic(m) => (m, true),
            (_, m) if is_magic(m) => (m, false),
            _ => return Err(PclntabError::UnknownMagic { magic: magic_le }),
        };
        if head[4] != 0 || head[5] != 0 {
            return Err(PclntabError::BadHeader { what: "padding" });
        }
        if !matches!(head[6], 1 | 2 | 4) {
            return Err(PclntabError::BadHeader { what: "PC quantum" });
        }
        let ptr_size = usize::from(head[7]);
        if ptr_size != 4 && ptr_size != 8 {
            return Err(PclntabError::BadHeader {
                what: "pointer size",
            });
        }
        let version = match magic {
            MAGIC_12 => PclnVersion::Go12,
            MAGIC_116 => PclnVersion::Go116,
            MAGIC_118 => PclnVersion::Go118,
            _ => PclnVersion::Go120,
        };
        let word = |i: usize| -> Result<u64, PclntabError> {
            data.get(8 + i * ptr_size..)
                .and_then(|b| read_uint(b, ptr_size, little))
                .ok_or(PclntabError::Truncated { what: "header" })
        };
        let slice_from = |off: u64, what: &'static str| -> Result<&'a [u8], PclntabError> {
            usize::try_from(off)
                .ok()
                .and_then(|o| data.get(o..))
                .ok_or(PclntabError::Truncated { what })
        };
        let nfunc = word(0)?;
        if nfunc > MAX_FUNCS {
            return Err(PclntabError::BadHeader {
                what: "function count",
            });
        }
        let nfunc = nfunc as usize;
        let (text_start, funcnametab, funcdata, field) = match version {
            PclnVersion::Go118 | PclnVersion::Go120 => {
                let header_text = word(2)?;
                let text_start = match (header_text, text_section) {
                    (0, Some(t)) => t,
                    (0, None) => return Err(PclntabError::NoTextStart),
                    (t, _) => t,
                };
                (
                    text_start,
                    slice_from(word(3)?, "function names")?,
                    slice_from(word(7)?, "function table")?,
                    4,
                )
            }
            PclnVersion::Go116 => (
                0,
                slice_from(word(2)?, "function names")?,
                slice_from(word(6)?, "function table")?,
                ptr_size,
            ),
            PclnVersion::Go12 => (0, data, data, ptr_size),
        };
        let functab_start = match version {
            PclnVersion::Go12 => 8 + ptr_size,
            _ => 0,
        };
        let functab_len = (nfunc * 2 + 1)
            .checked_mul(field)
            .ok_or(PclntabError::BadHeader {
                what: "function count",
            })?;
        let functab = funcdata
            .get(functab_start..)
            .and_then(|b| b.get(..functab_len))
            .ok_or(PclntabError::Truncated {
                what: "function table",
            })?;
        Ok(Self {
            data,
            version,
            little,
            ptr_size,
            nfunc,
            text_start,
            funcnametab,
            funcdata,
            functab,
        })
    }

    pub fn version(&self) -> PclnVersion {
        self.version
    }

    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// The table's raw bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    fn field_size(&self) -> usize {
        match self.version {
            PclnVersion::Go118 | PclnVersion::Go120 => 4,
            _ => self.ptr_size,
        }
    }

    /// Field `i` of the function table, as an absolute PC for even indices
    /// and the last one, or a `funcOff` for odd ones.
    fn functab_field(&self, i: usize) -> Option<u64> {
        let size = self.field_size();
        read_uint(self.functab.get(i * size..)?, size, self.little)
    }

    fn pc(&self, i: usize) -> Option<u64> {
        let v = self.functab_field(i)?;
        Some(match self.version {
            PclnVersion::Go118 | PclnVersion::Go120 => self.text_start.checked_add(v)?,
            _ => v,
        })
    }

    /// The function at table index `index`.
    pub fn func(&self, index: usize) -> Result<PclnFunc<'a>, PclntabError> {
        let bad = |what| PclntabError::BadFunc { index, what };
        if index >= self.nfunc {
            return Err(bad("index out of range"));
        }
        let entry = self.pc(2 * index).ok_or(bad("entry"))?;
        let end = self.pc(2 * index + 2).ok_or(bad("end"))?;
        let func_off = self
            .functab_field(2 * index + 1)
            .ok_or(bad("record offset"))?;
        let record = usize::try_from(func_off)
            .ok()
            .and_then(|o| self.funcdata.get(o..))
            .ok_or(bad("record offset"))?;
        // _func: entry (u32 offset from 1.18, else a pointer), then nameOff.
        let (rec_entry, name_at) = match self.version {
            PclnVersion::Go118 | PclnVersion::Go120 => (
                read_uint(record, 4, self.little).and_then(|e| self.text_start.checked_add(e)),
                4,
            ),
            _ => (read_uint(record, self.ptr_size, self.little), self.ptr_size),
        };
        if rec_entry != Some(entry) {
            return Err(bad("record entry differs from table entry"));
        }
        let name_off = record
            .get(name_at..)
            .and_then(|b| read_uint(b, 4, self.little))
            .ok_or(bad("name offset"))?;
        let name = c_str(self.funcnametab, name_off as usize).ok_or(bad("name"))?;
        if end < entry {
            return Err(bad("end before entry"));
        }
        Ok(PclnFunc { name, entry, end })
    }

    /// Every function, in address order.
    pub fn funcs(&self) -> impl Iterator<Item = Result<PclnFunc<'a>, PclntabError>> + '_ {
        (0..self.nfunc).map(|i| self.func(i))
    }

    /// Whether a NUL-terminated `name` occurs in `funcnametab`. For a name
    /// with no function of its own this means an inlining tree refers to it:
    /// the function was inlined into its callers. (Go 1.16+ only: older
    /// tables mix names with other data.)
    pub fn names_inlined_function(&self, name: &str) -> bool {
        if self.version == PclnVersion::Go12 || name.is_empty() {
            return false;
        }
        let mut needle = Vec::with_capacity(name.len() + 2);
        needle.push(0);
        needle.extend_from_slice(name.as_bytes());
        needle.push(0);
        memmem::find(self.funcnametab, &needle).is_some()
            || self
                .funcnametab
                .strip_prefix(name.as_bytes())
                .is_some_and(|rest| rest.first() == Some(&0))
    }
}

fn is_magic(m: u32) -> bool {
    matches!(m, MAGIC_12 | MAGIC_116 | MAGIC_118 | MAGIC_120)
}

fn c_str(b: &[u8], at: usize) -> Option<&str> {
    let s = b.get(at..)?;
    let end = memchr::memchr(0, s)?;
    std::str::from_utf8(&s[..end]).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Go 1.18-layout table with the given (name, entry offset) functions
    /// and end offset, little-endian, 64-bit.
    pub(crate) fn synth_118(funcs: &[(&str, u32)], end: u32, text_start: u64) -> Vec<u8> {
        let mut names = Vec::new();
        let mut name_offs = Vec::new();
        for (n, _) in funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let header_len = 8 + 8 * 8;
        let funcname_off = header_len;
        let pcln_off = funcname_off + names.len();
        let functab_len = (funcs.len() * 2 + 1) * 4;
        let mut functab = Vec::new();
        let mut records = Vec::new();
        for (i, (_, entry)) in funcs.iter().enumerate() {
            functab.extend_from_slice(&entry.to_le_bytes());
            functab.extend_from_slice(&((functab_len + records.len()) as u32).to_le_bytes());
            records.extend_from_slice(&entry.to_le_bytes());
            records.extend_from_slice(&name_offs[i].to_le_bytes());
        }
        functab.extend_from_slice(&end.to_le_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC_118.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            funcs.len() as u64,
            0,
            text_start,
            funcname_off as u64,
            0,
            0,
            0,
            pcln_off as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(&functab);
        out.extend_from_slice(&records);
        out
    }

    /// A Go 1.16-layout table (pointer-sized absolute entries, no
    /// textStart), little-endian, 64-bit.
    fn synth_116(funcs: &[(&str, u64)], end: u64) -> Vec<u8> {
        let mut names = Vec::new();
        let mut name_offs = Vec::new();
        for (n, _) in funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let header_len = 8 + 7 * 8;
        let pcln_off = header_len + names.len();
        let functab_len = (funcs.len() * 2 + 1) * 8;
        let mut functab = Vec::new();
        let mut records = Vec::new();
        for (i, (_, entry)) in funcs.iter().enumerate() {
            functab.extend_from_slice(&entry.to_le_bytes());
            functab.extend_from_slice(&((functab_len + records.len()) as u64).to_le_bytes());
            records.extend_from_slice(&entry.to_le_bytes());
            records.extend_from_slice(&name_offs[i].to_le_bytes());
        }
        functab.extend_from_slice(&end.to_le_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC_116.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            funcs.len() as u64,
            0,
            header_len as u64,
            0,
            0,
            0,
            pcln_off as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(&functab);
        out.extend_from_slice(&records);
        out
    }

    #[test]
    fn synthetic_116_table() {
        let t = synth_116(&[("main.main", 0x401000), ("main.f", 0x401100)], 0x401180);
        let p = Pclntab::parse(&t, Some(0x999)).unwrap();
        assert_eq!(p.version(), PclnVersion::Go116);
        let funcs: Vec<_> = p.funcs().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            funcs,
            vec![
                PclnFunc {
                    name: "main.main",
                    entry: 0x401000,
                    end: 0x401100
                },
                PclnFunc {
                    name: "main.f",
                    entry: 0x401100,
                    end: 0x401180
                },
            ]
        );
        // A record whose entry disagrees with the table is refused.
        let mut bad = t.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        assert!(matches!(
            Pclntab::parse(&bad, None).unwrap().func(1),
            Err(PclntabError::BadFunc { index: 1, .. })
        ));
    }

    #[test]
    fn synthetic_118_table() {
        let t = synth_118(&[("main.a", 0), ("main.b", 0x40)], 0x80, 0x401000);
        let p = Pclntab::parse(&t, None).unwrap();
        assert_eq!(p.version(), PclnVersion::Go118);
        let funcs: Vec<_> = p.funcs().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            funcs,
            vec![
                PclnFunc {
                    name: "main.a",
                    entry: 0x401000,
                    end: 0x401040
                },
                PclnFunc {
                    name: "main.b",
                    entry: 0x401040,
                    end: 0x401080
                },
            ]
        );
        assert!(p.names_inlined_function("main.a"));
        assert!(p.names_inlined_function("main.b"));
        assert!(!p.names_inlined_function("main."));
    }

    #[test]
    fn pie_text_start_from_section() {
        let t = synth_118(&[("main.a", 0x10)], 0x20, 0);
        assert_eq!(
            Pclntab::parse(&t, None).unwrap_err(),
            PclntabError::NoTextStart
        );
        let p = Pclntab::parse(&t, Some(0x1000)).unwrap();
        assert_eq!(p.func(0).unwrap().entry, 0x1010);
    }

    #[test]
    fn every_prefix_and_corruption_is_an_error_not_a_panic() {
        let t = synth_118(&[("main.a", 0), ("main.b", 0x40)], 0x80, 0x401000);
        for n in 0..t.len() {
            if let Ok(p) = Pclntab::parse(&t[..n], None) {
                for f in p.funcs() {
                    let _ = f;
                }
            }
        }
        for i in 0..t.len() {
            for v in [0u8, 0xff, 0x7f] {
                let mut c = t.clone();
                c[i] = v;
                if let Ok(p) = Pclntab::parse(&c, None) {
                    let _ = p.funcs().count();
                    let _ = p.names_inlined_function("main.a");
                }
            }
        }
        assert!(matches!(
            Pclntab::parse(b"\0\0\0\0\0\0\x01\x08", None),
            Err(PclntabError::UnknownMagic { .. })
        ));
    }
}
