//! Go binary analysis for Go uprobes, in userspace and without root: is an
//! executable Go, which Go and which module versions built it, where its
//! functions start and return, which struct field offsets and registers the
//! probes read. Bytes of an ELF file in, facts out; only [`plan`] touches
//! the file system.
//!
//! | module | what | error type |
//! |---|---|---|
//! | [`elf`] | sections (decompressed), `.symtab` functions, build ids, address → file offset | `ElfError` |
//! | [`buildinfo`] | `.go.buildinfo` (Go 1.13-1.17 pointers, 1.18+ inline), modinfo, `runtime.buildVersion` fallback | `BuildInfoError` |
//! | [`pclntab`] | `.gopclntab` function table (1.2, 1.16, 1.18, 1.20 headers) | `PclntabError` |
//! | [`functions`] | name → entry/end, from `.symtab` or the function table; inlined or missing | (`PclntabError`) |
//! | [`modversion`] | grpc-go / x/net version: build info, else grpc-go's user agent | - |
//! | [`disasm`] | `RET`s, tail calls, indirect jumps of a function (iced-x86) | `DisasmError` |
//! | [`dwarf`] | struct layouts from DWARF (gimli) | `DwarfError` |
//! | [`offsets`] | the structs/fields the probes read; DWARF or the fallback table | `OffsetsError` |
//! | [`abi`] | register ABI: which register holds which argument/result | `AbiError` |
//! | [`probes`] | the probed functions and what each reads | - |
//! | [`plan`] | pid or path → [`plan::Plan`]: attach path, per probe offsets or the reason it is unavailable | `PlanError`, `Unavailable` |
//! | [`plausible`] | runtime checks of values read through offsets; detach on nonsense | - |
//!
//! `crate::uprobes` consumes the plans: it attaches the programs of
//! `probe-ebpf/src/go.rs` at the planned offsets.
//!
//! ```text
//! let plan = golang::plan::plan_pid(pid)?;          // or plan_path(path), plan_bytes(bytes, target)
//! for (spec, attach) in plan.ready() {
//!     uprobe.attach([attach.entry.aya_point(None)], &plan.target.attach_path, scope)?;
//!     let rets: Vec<_> = attach.returns.iter().map(|s| s.aya_point(None)).collect();
//!     // ... and layouts/params/results tell the eBPF side what to read
//! }
//! for p in &plan.probes { if let Err(why) = &p.outcome { eprintln!("{}: {why}", p.id().name()) } }
//! ```

// Some facts (build ids, module versions, the HttpClientDo and
// GrpcClientStream plans) are computed and tested but not read by the
// uprobe loader (`crate::uprobes`) yet.
#![allow(dead_code)]

pub mod abi;
pub mod buildinfo;
pub mod disasm;
pub mod dwarf;
pub mod elf;
pub mod functions;
pub mod modversion;
pub mod offsets;
pub mod pclntab;
pub mod plan;
pub mod plausible;
pub mod probes;

#[cfg(test)]
pub(crate) mod testbins;
#[cfg(test)]
mod tests;
