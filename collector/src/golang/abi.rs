//! Where a Go function's arguments and results are, for a probe at its entry
//! or at one of its `RET`s.
//!
//! ## Go's register ABI on amd64 (ABIInternal, Go 1.17+)
//!
//! From the Go internal ABI specification (`src/cmd/compile/abi-internal.md`
//! in the Go tree), the parts that concern us:
//! - Integer-class values (pointers, ints, bools, the words of strings,
//!   slices, interfaces and of structs made of such) are assigned, in
//!   order, to the integer registers RAX, RBX, RCX, RDI, RSI, R8, R9, R10,
//!   R11. A method's receiver comes first. A value that needs more
//!   registers than remain goes to the stack whole (none of ours do).
//! - Multi-word values take consecutive registers: a string is
//!   (pointer, length), a slice (pointer, length, capacity), an interface
//!   (type/itab word, data pointer); a struct is flattened field by field.
//!   Arrays of more than one element go to the stack (none of ours).
//! - Results are assigned the same way, starting again from RAX, and are in
//!   those registers when the function executes `RET`.
//! - R14 holds the current goroutine (`*runtime.g`) throughout Go code
//!   (`getg()`); R15 is the GOT pointer in dynamically linked code; X15 is
//!   zero. Nothing is callee-saved.
//! - Floating-point values use X0-X14 (none of ours).
//!
//! Go before 1.17 passed everything on the stack (`ABI0`): arguments at
//! 8(SP), 16(SP), ... at entry, results after them, written only just before
//! the return. The goroutine was in thread-local storage (`FS:-8`). Probes
//! for such binaries are not planned: [`call_conv`] reports them as
//! unsupported and syscall-level capture still sees their traffic.
//!
//! The layouts below follow from each function's signature in the Go and
//! grpc-go sources the table cites; the tests check the entry registers
//! against the DWARF location lists the compiler emits for the parameters.

use std::fmt;

use super::{buildinfo::GoVersion, elf::Arch};

/// An x86-64 general-purpose register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Reg {
    /// The field of the kernel's x86-64 `struct pt_regs` (what a uprobe's
    /// eBPF program reads) holding this register.
    pub fn pt_regs_field(self) -> &'static str {
        match self {
            Reg::Rax => "ax",
            Reg::Rbx => "bx",
            Reg::Rcx => "cx",
            Reg::Rdx => "dx",
            Reg::Rsi => "si",
            Reg::Rdi => "di",
            Reg::Rbp => "bp",
            Reg::Rsp => "sp",
            Reg::R8 => "r8",
            Reg::R9 => "r9",
            Reg::R10 => "r10",
            Reg::R11 => "r11",
            Reg::R12 => "r12",
            Reg::R13 => "r13",
            Reg::R14 => "r14",
            Reg::R15 => "r15",
        }
    }

    /// Byte offset of that field in x86-64 `struct pt_regs`
    /// (arch/x86/include/asm/ptrace.h: r15, r14, r13, r12, bp, bx, r11,
    /// r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss).
    pub fn pt_regs_offset(self) -> usize {
        8 * match self {
            Reg::R15 => 0,
            Reg::R14 => 1,
            Reg::R13 => 2,
            Reg::R12 => 3,
            Reg::Rbp => 4,
            Reg::Rbx => 5,
            Reg::R11 => 6,
            Reg::R10 => 7,
            Reg::R9 => 8,
            Reg::R8 => 9,
            Reg::Rax => 10,
            Reg::Rcx => 11,
            Reg::Rdx => 12,
            Reg::Rsi => 13,
            Reg::Rdi => 14,
            Reg::Rsp => 19,
        }
    }

    /// DWARF register number (System V x86-64 psABI).
    pub fn dwarf_number(self) -> u16 {
        match self {
            Reg::Rax => 0,
            Reg::Rdx => 1,
            Reg::Rcx => 2,
            Reg::Rbx => 3,
            Reg::Rsi => 4,
            Reg::Rdi => 5,
            Reg::Rbp => 6,
            Reg::Rsp => 7,
            Reg::R8 => 8,
            Reg::R9 => 9,
            Reg::R10 => 10,
            Reg::R11 => 11,
            Reg::R12 => 12,
            Reg::R13 => 13,
            Reg::R14 => 14,
            Reg::R15 => 15,
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "R{}",
            self.pt_regs_field().to_uppercase().trim_start_matches('R')
        )
    }
}

/// Integer argument/result registers, in assignment order.
pub const INT_REGS: [Reg; 9] = [
    Reg::Rax,
    Reg::Rbx,
    Reg::Rcx,
    Reg::Rdi,
    Reg::Rsi,
    Reg::R8,
    Reg::R9,
    Reg::R10,
    Reg::R11,
];

/// The current goroutine (`*runtime.g`) under the register ABI.
pub const GOROUTINE_REG: Reg = Reg::R14;

/// How a Go binary passes arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallConv {
    /// ABIInternal, Go 1.17+ on amd64.
    Register,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AbiError {
    #[error(
        "{version} passes arguments on the stack (register ABI starts with Go 1.17): Go uprobes \
         are not supported for it; its traffic is still captured at the syscall level"
    )]
    StackAbi { version: String },
    #[error("Go version unknown ({raw}): cannot tell the calling convention")]
    UnknownVersion { raw: String },
    #[error("Go uprobes support x86-64 only (this binary is for {arch:?})")]
    Arch { arch: Arch },
}

/// The calling convention of a binary built by `go` for `arch`.
pub fn call_conv(go: Option<&GoVersion>, raw: &str, arch: Arch) -> Result<CallConv, AbiError> {
    if arch != Arch::X86_64 {
        return Err(AbiError::Arch { arch });
    }
    let v = go.ok_or_else(|| AbiError::UnknownVersion {
        raw: raw.to_string(),
    })?;
    if v.at_least(1, 17) {
        Ok(CallConv::Register)
    } else {
        Err(AbiError::StackAbi {
            version: v.to_string(),
        })
    }
}

/// A Go value's shape, as far as register assignment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One integer-class word: pointer, int, uint32, bool, func value,
    /// channel, map, or a struct of one such field.
    Word,
    /// A string: pointer, length.
    String,
    /// A slice: pointer, length, capacity.
    Slice,
    /// An interface (including `error`): type/itab word, data pointer.
    Interface,
}

impl Shape {
    pub fn words(self) -> usize {
        match self {
            Shape::Word => 1,
            Shape::String | Shape::Interface => 2,
            Shape::Slice => 3,
        }
    }
}

/// A parameter or result as declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    pub name: &'static str,
    pub go_type: &'static str,
    pub shape: Shape,
}

/// A parameter or result and the registers holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub name: &'static str,
    pub go_type: &'static str,
    pub regs: Vec<Reg>,
}

/// A function's signature for register assignment: receiver (if a method)
/// and parameters in order, then results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub params: &'static [Value],
    pub results: &'static [Value],
}

impl Signature {
    /// Registers of each parameter at the function's entry.
    pub fn params_at_entry(&self) -> Vec<Located> {
        assign(self.params)
    }

    /// Registers of each result at a `RET`.
    pub fn results_at_return(&self) -> Vec<Located> {
        assign(self.results)
    }
}

/// Assign integer registers in order (all our values are integer-class and
/// fit; see the module doc).
fn assign(values: &[Value]) -> Vec<Located> {
    let mut next = 0;
    values
        .iter()
        .map(|v| {
            let n = v.shape.words();
            let regs = INT_REGS
                .get(next..next + n)
                .map(<[Reg]>::to_vec)
                .unwrap_or_default();
            next += n;
            Located {
                name: v.name,
                go_type: v.go_type,
                regs,
            }
        })
        .collect()
}

pub(crate) const fn v(name: &'static str, go_type: &'static str, shape: Shape) -> Value {
    Value {
        name,
        go_type,
        shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_follows_the_spec_order() {
        const SIG: Signature = Signature {
            params: &[
                v("l", "*loopyWriter", Shape::Word),
                v("streamID", "uint32", Shape::Word),
                v("endStream", "bool", Shape::Word),
                v("hf", "[]hpack.HeaderField", Shape::Slice),
                v("onWrite", "func()", Shape::Word),
            ],
            results: &[v("~r0", "error", Shape::Interface)],
        };
        let p = SIG.params_at_entry();
        assert_eq!(p[0].regs, [Reg::Rax]);
        assert_eq!(p[3].regs, [Reg::Rdi, Reg::Rsi, Reg::R8]);
        assert_eq!(p[4].regs, [Reg::R9]);
        assert_eq!(SIG.results_at_return()[0].regs, [Reg::Rax, Reg::Rbx]);
    }

    #[test]
    fn pt_regs() {
        assert_eq!(Reg::Rax.pt_regs_offset(), 80);
        assert_eq!(Reg::R14.pt_regs_offset(), 8);
        assert_eq!(Reg::Rdi.pt_regs_offset(), 112);
        assert_eq!(Reg::Rsp.pt_regs_offset(), 152);
        assert_eq!(Reg::R14.to_string(), "R14");
        assert_eq!(Reg::Rax.to_string(), "RAX");
    }

    #[test]
    fn conventions() {
        let v119 = GoVersion::parse("go1.19.8");
        let v116 = GoVersion::parse("go1.16.15");
        assert_eq!(
            call_conv(v119.as_ref(), "go1.19.8", Arch::X86_64),
            Ok(CallConv::Register)
        );
        assert!(matches!(
            call_conv(v116.as_ref(), "go1.16.15", Arch::X86_64),
            Err(AbiError::StackAbi { .. })
        ));
        assert!(matches!(
            call_conv(None, "devel", Arch::X86_64),
            Err(AbiError::UnknownVersion { .. })
        ));
        assert!(matches!(
            call_conv(v119.as_ref(), "go1.19.8", Arch::Aarch64),
            Err(AbiError::Arch { .. })
        ));
    }
}
