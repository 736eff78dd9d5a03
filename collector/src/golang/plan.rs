//! What a uprobe loader needs for one Go executable: the path to attach to
//! and, per probe, the function, its entry and return file offsets, the
//! struct offsets and registers it reads; or why the probe is unavailable.
//!
//! [`plan_bytes`] is pure (bytes in, plan out); [`plan_path`] and
//! [`plan_pid`] read the file. Offsets are file offsets relative to the
//! start of the ELF file, as `aya::programs::UProbe::attach` takes them
//! (`UProbeAttachLocation::AbsoluteOffset`), with the plan's
//! `Target::attach_path` as its `target`.

use std::{
    fmt,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::{
    abi::{self, AbiError, CallConv, GOROUTINE_REG, Located, Reg},
    buildinfo::{self, BuildInfo, BuildInfoError, GoVersion, VersionSource},
    disasm::{self, DisasmError, TailCall},
    elf::{BuildIds, ElfError, ElfImage},
    functions::{self, FuncSource, Function, Functions, Lookup},
    modversion::{self, ModuleVersion},
    offsets::{self, GRPC_MODULE, Layout, OffsetsError, Resolver, VersionKey, XNET_MODULE},
    pclntab::PclntabError,
    probes::{PROBES, ProbeId, ProbeSpec},
};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: not a Go executable")]
    NotGo { path: PathBuf },
    #[error("{path}: not an ELF executable")]
    NotElf { path: PathBuf },
    #[error(
        "reading {path}: {source} (another user's process needs root, or CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Elf {
        path: PathBuf,
        #[source]
        source: ElfError,
    },
    #[error("{path}: {source}")]
    BuildInfo {
        path: PathBuf,
        #[source]
        source: BuildInfoError,
    },
    #[error("{path}: {source}")]
    Functions {
        path: PathBuf,
        #[source]
        source: PclntabError,
    },
    #[error("{path}: {source}")]
    Offsets {
        path: PathBuf,
        #[source]
        source: OffsetsError,
    },
}

impl PlanError {
    pub fn is_not_go(&self) -> bool {
        matches!(self, PlanError::NotGo { .. } | PlanError::NotElf { .. })
    }
}

/// Which file, for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// What to pass to the uprobe attach as its target path.
    pub attach_path: PathBuf,
    /// The process this was planned for, if any.
    pub pid: Option<u32>,
    /// The executable's path as its process sees it (for messages).
    pub exe: PathBuf,
}

/// Facts about the binary as a whole.
#[derive(Clone, Debug)]
pub struct GoFacts {
    pub raw_version: String,
    pub version: Option<GoVersion>,
    pub version_source: VersionSource,
    /// The main package (`path` line of build info).
    pub main_path: Option<String>,
    pub build_ids: BuildIds,
    /// Where function addresses come from: `.symtab`, or `.gopclntab` when
    /// stripped.
    pub functions: FuncSource,
    pub has_dwarf: bool,
    pub pie: bool,
    pub call_conv: Result<CallConv, AbiError>,
    /// grpc-go and golang.org/x/net versions, where known.
    pub modules: Vec<(&'static str, Option<ModuleVersion>)>,
}

/// An instruction to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Virtual address (as in the ELF file, before any load base).
    pub addr: u64,
    /// File offset: what the uprobe is attached at.
    pub file_offset: u64,
}

impl Site {
    /// This site as an aya attach point, for
    /// `UProbe::attach([points], &plan.target.attach_path, scope)` (aya
    /// 0.16). `cookie` is what `bpf_get_attach_cookie()` returns in the
    /// program (e.g. the probe id, or entry vs return).
    pub fn aya_point(
        &self,
        cookie: Option<u64>,
    ) -> aya::programs::uprobe::UProbeAttachPoint<'static> {
        aya::programs::uprobe::UProbeAttachPoint {
            location: aya::programs::uprobe::UProbeAttachLocation::AbsoluteOffset(self.file_offset),
            cookie,
        }
    }
}

/// A probe ready to attach.
#[derive(Debug)]
pub struct Attach {
    /// The function actually probed.
    pub function: &'static str,
    /// Said when the probed function is not the one named by the spec.
    pub note: Option<String>,
    pub entry: Site,
    /// Each `RET` of the function (empty when the probe wants no returns).
    pub returns: Vec<Site>,
    /// Layouts of the structs the probe reads.
    pub layouts: Vec<Layout>,
    /// Registers of the receiver and arguments at entry.
    pub params: Vec<Located>,
    /// Registers of the results at each return site.
    pub results: Vec<Located>,
    /// Register holding the current goroutine (`*runtime.g`).
    pub goroutine: Reg,
}

impl Attach {
    pub fn layout(&self, strukt: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.name == strukt)
    }

    pub fn param(&self, name: &str) -> Option<&Located> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The return sites' file offsets (one uprobe-multi attach covers them).
    pub fn return_offsets(&self) -> Vec<u64> {
        self.returns.iter().map(|s| s.file_offset).collect()
    }
}

/// Why a probe is not attached.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("{function} is not in this binary (the program does not use it)")]
    NotLinked { function: &'static str },
    #[error(
        "{function} is not in this binary although {module} is: renamed or inlined in this version of {module}?"
    )]
    FunctionMissing {
        function: &'static str,
        module: &'static str,
    },
    #[error("{function} is inlined into its callers (no code of its own to probe)")]
    Inlined { function: &'static str },
    #[error("{0}")]
    Abi(#[from] AbiError),
    #[error(
        "{function} leaves through {count} tail call(s) (first at {:#x} to {:#x}): its returns cannot all be seen; not probed",
        .first.at, .first.target
    )]
    TailCalls {
        function: &'static str,
        first: TailCall,
        count: usize,
    },
    #[error("{function} has no RET instruction (it never returns normally)")]
    NoReturns { function: &'static str },
    #[error("decoding {function}: {source}")]
    Disasm {
        function: &'static str,
        #[source]
        source: DisasmError,
    },
    #[error("{function}: {source}")]
    Address {
        function: &'static str,
        #[source]
        source: ElfError,
    },
    #[error("{function} at {addr:#x} is not in an executable segment")]
    NotExecutable { function: &'static str, addr: u64 },
    #[error("{0}")]
    Offsets(String),
}

/// One probe's outcome.
#[derive(Debug)]
pub struct ProbePlan {
    pub spec: &'static ProbeSpec,
    pub outcome: Result<Attach, Unavailable>,
}

impl ProbePlan {
    pub fn id(&self) -> ProbeId {
        self.spec.id
    }
}

/// Everything the loader needs for one executable.
#[derive(Debug)]
pub struct Plan {
    pub target: Target,
    pub go: GoFacts,
    pub probes: Vec<ProbePlan>,
}

impl Plan {
    pub fn probe(&self, id: ProbeId) -> Option<&ProbePlan> {
        self.probes.iter().find(|p| p.spec.id == id)
    }

    /// Probes that can be attached.
    pub fn ready(&self) -> impl Iterator<Item = (&'static ProbeSpec, &Attach)> {
        self.probes
            .iter()
            .filter_map(|p| p.outcome.as_ref().ok().map(|a| (p.spec, a)))
    }
}

impl fmt::Display for Plan {
    /// A human summary: one line for the binary, one per probe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.go;
        writeln!(
            f,
            "{}: Go {} ({}{}{})",
            self.target.exe.display(),
            g.raw_version,
            match g.functions {
                FuncSource::Symtab => "symbols",
                FuncSource::Pclntab => "stripped: function table",
            },
            if g.has_dwarf { ", DWARF" } else { ", no DWARF" },
            if g.pie { ", PIE" } else { "" },
        )?;
        for p in &self.probes {
            match &p.outcome {
                Ok(a) => {
                    write!(
                        f,
                        "  {}: {} entry +{:#x}, {} return(s)",
                        p.spec.id.name(),
                        a.function,
                        a.entry.file_offset,
                        a.returns.len()
                    )?;
                    if let Some(n) = &a.note {
                        write!(f, " ({n})")?;
                    }
                    writeln!(f)?;
                }
                Err(e) => writeln!(f, "  {}: unavailable: {e}", p.spec.id.name())?,
            }
        }
        Ok(())
    }
}

/// Plan for the executable whose bytes are `data`.
pub fn plan_bytes(data: &[u8], target: Target) -> Result<Plan, PlanError> {
    let path = target.exe.clone();
    let elf = match ElfImage::parse(data) {
        Ok(e) => e,
        Err(ElfError::NotElf) => return Err(PlanError::NotElf { path }),
        Err(source) => return Err(PlanError::Elf { path, source }),
    };
    let info = match buildinfo::read(&elf).map_err(|source| PlanError::BuildInfo {
        path: path.clone(),
        source,
    })? {
        Some(info) => info,
        // Without build info, a Go function table still says "Go".
        None if functions::find_pclntab(&elf).is_ok() => BuildInfo::unknown(),
        None => return Err(PlanError::NotGo { path }),
    };
    let functions = Functions::new(&elf).map_err(|source| PlanError::Functions {
        path: path.clone(),
        source,
    })?;
    let modules: Vec<(&'static str, Option<ModuleVersion>)> = [GRPC_MODULE, XNET_MODULE]
        .into_iter()
        .map(|m| (m, modversion::module_version(&elf, &info, m)))
        .collect();
    let key = VersionKey {
        go: Some(info.raw_version.clone()),
        modules: modules
            .iter()
            .filter_map(|(m, v)| v.as_ref().map(|v| (*m, v.version.clone())))
            .collect(),
    };
    let call_conv = abi::call_conv(info.version.as_ref(), &info.raw_version, elf.arch());
    let resolver =
        Resolver::new(&elf, info.version.clone(), key).map_err(|source| PlanError::Offsets {
            path: path.clone(),
            source,
        })?;
    let go = GoFacts {
        raw_version: info.raw_version.clone(),
        version: info.version.clone(),
        version_source: info.source,
        main_path: info.path.clone(),
        build_ids: elf.build_ids(),
        functions: functions.source(),
        has_dwarf: resolver.has_dwarf(),
        pie: elf.is_pie(),
        call_conv: call_conv.clone(),
        modules,
    };
    let probes = PROBES
        .iter()
        .map(|spec| ProbePlan {
            spec,
            outcome: plan_probe(spec, &elf, &functions, &resolver, &call_conv),
        })
        .collect();
    Ok(Plan { target, go, probes })
}

pub(super) fn plan_probe(
    spec: &'static ProbeSpec,
    elf: &ElfImage<'_>,
    functions: &Functions<'_>,
    resolver: &Resolver,
    call_conv: &Result<CallConv, AbiError>,
) -> Result<Attach, Unavailable> {
    let (function, func, note) = locate(spec, functions)?;
    if let Err(e) = call_conv {
        return Err(Unavailable::Abi(e.clone()));
    }
    let entry = site(elf, function, func.entry)?;
    let returns = if spec.returns {
        return_sites(elf, function, &func)?
    } else {
        Vec::new()
    };
    let mut layouts = Vec::new();
    for name in spec.structs {
        let Some(s) = offsets::spec(name) else {
            return Err(Unavailable::Offsets(format!("no struct spec for {name}")));
        };
        let layout = resolver
            .layout(s)
            .map_err(|e| Unavailable::Offsets(e.to_string()))?;
        layouts.push(layout);
    }
    Ok(Attach {
        function,
        note,
        entry,
        returns,
        layouts,
        params: spec.signature.params_at_entry(),
        results: spec.signature.results_at_return(),
        goroutine: GOROUTINE_REG,
    })
}

/// Find the function to probe (the spec's, or its stand-in if inlined).
fn locate(
    spec: &'static ProbeSpec,
    functions: &Functions<'_>,
) -> Result<(&'static str, Function, Option<String>), Unavailable> {
    let missing = |function: &'static str| match spec.module {
        Some(module) if functions.has_prefix(module) => {
            Unavailable::FunctionMissing { function, module }
        }
        _ => Unavailable::NotLinked { function },
    };
    match functions.lookup(spec.function) {
        Lookup::Found(f) => Ok((spec.function, f, None)),
        Lookup::Missing => Err(missing(spec.function)),
        Lookup::Inlined => {
            let Some(alt) = spec.if_inlined else {
                return Err(Unavailable::Inlined {
                    function: spec.function,
                });
            };
            match functions.lookup(alt) {
                Lookup::Found(f) => Ok((
                    alt,
                    f,
                    Some(format!(
                        "{} is inlined into its callers in this binary; probing {alt}, which it calls with the same arguments",
                        spec.function
                    )),
                )),
                Lookup::Inlined => Err(Unavailable::Inlined { function: alt }),
                Lookup::Missing => Err(missing(alt)),
            }
        }
    }
}

fn site(elf: &ElfImage<'_>, function: &'static str, addr: u64) -> Result<Site, Unavailable> {
    let seg = elf.segment_of(addr).ok_or(Unavailable::Address {
        function,
        source: ElfError::AddressNotMapped { addr },
    })?;
    if !seg.executable() {
        return Err(Unavailable::NotExecutable { function, addr });
    }
    let file_offset = elf
        .file_offset(addr)
        .map_err(|source| Unavailable::Address { function, source })?;
    Ok(Site { addr, file_offset })
}

fn return_sites(
    elf: &ElfImage<'_>,
    function: &'static str,
    func: &Function,
) -> Result<Vec<Site>, Unavailable> {
    let code = elf
        .bytes_at(func.entry, func.end.saturating_sub(func.entry))
        .map_err(|source| Unavailable::Address { function, source })?;
    let exits = disasm::exits(code, func.entry)
        .map_err(|source| Unavailable::Disasm { function, source })?;
    if let Some(&first) = exits.tail_calls.first() {
        return Err(Unavailable::TailCalls {
            function,
            first,
            count: exits.tail_calls.len(),
        });
    }
    if exits.rets.is_empty() {
        return Err(Unavailable::NoReturns { function });
    }
    exits
        .rets
        .iter()
        .map(|&addr| site(elf, function, addr))
        .collect()
}

/// Section names only Go's linker writes: an ELF file with none of them is
/// not Go (`.go.buildinfo` since Go 1.13, `.note.go.buildid` and, except
/// in PIE builds of Go 1.16+, `.gopclntab` since long before).
const GO_SECTIONS: [&[u8]; 3] = [b".go.buildinfo", b".note.go.buildid", b".gopclntab"];

/// Whether the file at `path` has a section only Go writes, reading only its
/// ELF header and section headers (a few KiB, not the whole file: every new
/// executable seen is checked, node's is 90 MB). `None` when that can't be
/// told cheaply (not a 64-bit little-endian ELF, extended section numbering,
/// a read error): the full analysis decides.
pub(crate) fn has_go_sections(path: &Path) -> Option<bool> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::open(path).ok()?;
    let mut eh = [0u8; 64];
    file.read_exact_at(&mut eh, 0).ok()?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&eh, 0x28),
        u16_at(&eh, 0x3a),
        u16_at(&eh, 0x3c),
        u16_at(&eh, 0x3e),
    );
    if shnum == 0 || shstrndx >= shnum || shentsize < 64 || shnum * shentsize > 1 << 20 {
        return None;
    }
    let mut table = vec![0u8; (shnum * shentsize) as usize];
    file.read_exact_at(&mut table, shoff).ok()?;
    let header = |i: u64| &table[(i * shentsize) as usize..][..64];
    let strtab = header(shstrndx);
    let (str_off, str_size) = (u64_at(strtab, 0x18), u64_at(strtab, 0x20));
    if str_size > 1 << 20 {
        return None;
    }
    let mut names = vec![0u8; str_size as usize];
    file.read_exact_at(&mut names, str_off).ok()?;
    let go = (0..shnum).any(|i| {
        let at = u32_at(header(i), 0) as usize;
        let name = names.get(at..).unwrap_or_default();
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        GO_SECTIONS.contains(&name)
    });
    Some(go)
}

/// Plan for an executable file (for processes started from it later: a
/// uprobe on a file applies to every process running it).
pub fn plan_path(path: &Path) -> Result<Plan, PlanError> {
    if has_go_sections(path) == Some(false) {
        return Err(PlanError::NotGo {
            path: path.to_path_buf(),
        });
    }
    let data = std::fs::read(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let attach_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    plan_bytes(
        &data,
        Target {
            attach_path,
            pid: None,
            exe: path.to_path_buf(),
        },
    )
}

/// Plan for a running process: its executable is read through
/// `/proc/PID/exe`, which reaches the file the process runs even in another
/// mount namespace or after it was replaced on disk.
///
/// The attach path is `/proc/PID/root/<exe>` when that is still the very
/// file the process runs (same device and inode): it stays valid after the
/// process exits and also covers later processes of that file. Otherwise
/// (deleted or replaced since) it is `/proc/PID/exe` itself.
pub fn plan_pid(pid: u32) -> Result<Plan, PlanError> {
    let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let read_err = |source| PlanError::Read {
        path: proc_exe.clone(),
        source,
    };
    let exe = std::fs::read_link(&proc_exe).map_err(read_err)?;
    if has_go_sections(&proc_exe) == Some(false) {
        return Err(PlanError::NotGo { path: exe });
    }
    let data = std::fs::read(&proc_exe).map_err(read_err)?;
    let running = std::fs::metadata(&proc_exe).map_err(read_err)?;
    let in_root =
        Path::new(&format!("/proc/{pid}/root")).join(exe.strip_prefix("/").unwrap_or(&exe));
    let attach_path = match std::fs::metadata(&in_root) {
        Ok(m) if m.dev() == running.dev() && m.ino() == running.ino() => in_root,
        _ => proc_exe.clone(),
    };
    plan_bytes(
        &data,
        Target {
            attach_path,
            pid: Some(pid),
            exe,
        },
    )
}
