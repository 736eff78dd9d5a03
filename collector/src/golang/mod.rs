//! Go binary analysis for Go uprobes, in userspace and without root: is an
//! executable Go, which Go and which module versions built it, where its
//! functions start and return, which struct field offsets and registers the
//! probes read. Bytes of an ELF file in, facts out; only [`plan`] touches
//! the file system.

// The uprobe loader that consumes this comes next; until then only the tests
// call most of it.
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
mod testbins;
#[cfg(test)]
mod tests;
