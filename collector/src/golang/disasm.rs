//! Where a function returns, found by decoding its x86-64 code instruction by
//! instruction (never by looking for 0xC3 bytes, which occur inside other
//! instructions).
//!
//! Why: a uretprobe rewrites the return address on the stack, and Go's
//! runtime walks and copies goroutine stacks, finds a return address it does
//! not know, and kills the process ("unexpected return pc"). A uprobe on
//! each `RET` of the function sees the same thing a uretprobe would: under
//! the register ABI the results are in registers at that point, and the
//! goroutine is still in R14.
//!
//! The sweep is linear over the function's whole extent: the Go compiler
//! emits no data among a function's instructions (switch jump tables live in
//! `.rodata`), so every byte from the entry to the end is an instruction or
//! the linker's INT3 padding. Hand-written assembly may embed data (Go
//! 1.19's `crypto/internal/boring/sig` functions are a JMP over marker
//! bytes): there the sweep fails with [`DisasmError::Invalid`] or finds
//! nonsense, so it is for compiled Go functions only, which all the probed
//! functions are. A recursive descent would not do better for Go: a `RET`
//! reached only through a jump table would be missed.
//! Besides `RET`s it reports:
//! - tail calls: a direct `JMP` to outside the function. The function's
//!   frame is gone and the target returns straight to our caller, so no
//!   `RET` of ours runs on that path. They are listed; the plan treats a
//!   function with tail calls as having incomplete return coverage and says
//!   so. (Go's compiler does not emit tail calls in ordinary functions; the
//!   functions we probe have none in Go 1.19.)
//! - indirect jumps (`JMP reg/mem`): jump tables for `switch` (Go 1.19+) or,
//!   in hand-written assembly, tail calls. Their targets are unknown here;
//!   they are counted.

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DisasmError {
    #[error("function at {entry:#x} has no code bytes")]
    Empty { entry: u64 },
    #[error("undecodable instruction at {addr:#x} (function at {entry:#x})")]
    Invalid { entry: u64, addr: u64 },
}

/// A direct jump out of the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailCall {
    pub at: u64,
    pub target: u64,
}

/// What decoding a function found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exits {
    /// Address of each `RET` (near return, with or without an immediate).
    pub rets: Vec<u64>,
    pub tail_calls: Vec<TailCall>,
    /// Addresses of indirect `JMP`s.
    pub indirect_jumps: Vec<u64>,
    /// Instructions decoded (including padding).
    pub instructions: usize,
}

/// Decode `code`, the bytes of a function that starts at virtual address
/// `entry`, and find its exits.
pub fn exits(code: &[u8], entry: u64) -> Result<Exits, DisasmError> {
    if code.is_empty() {
        return Err(DisasmError::Empty { entry });
    }
    let end = entry + code.len() as u64;
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut out = Exits::default();
    let mut insn = iced_x86::Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            // A cut-off instruction at the very end can only be padding
            // cut by the symbol size: real code ends with RET/JMP/INT3.
            return Err(DisasmError::Invalid {
                entry,
                addr: insn.ip(),
            });
        }
        out.instructions += 1;
        match insn.mnemonic() {
            Mnemonic::Ret => out.rets.push(insn.ip()),
            Mnemonic::Jmp => match insn.op0_kind() {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                    let target = insn.near_branch_target();
                    if !(entry..end).contains(&target) {
                        out.tail_calls.push(TailCall {
                            at: insn.ip(),
                            target,
                        });
                    }
                }
                _ => out.indirect_jumps.push(insn.ip()),
            },
            _ => {}
        }
    }
    Ok(out)
}

/// Whether exactly one instruction starting at `addr` (with `code` starting
/// at `base`) decodes as a near `RET`: a check that a return site is real.
pub fn is_ret_at(code: &[u8], base: u64, addr: u64) -> bool {
    let Some(off) = addr.checked_sub(base).and_then(|o| usize::try_from(o).ok()) else {
        return false;
    };
    let Some(bytes) = code.get(off..) else {
        return false;
    };
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    decoder.can_decode() && decoder.decode().mnemonic() == Mnemonic::Ret
}

/// Whether `addr` is the start of an instruction when `code` (at `base`) is
/// decoded from its first byte.
pub fn is_instruction_boundary(code: &[u8], base: u64, addr: u64) -> bool {
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut insn = iced_x86::Instruction::default();
    while decoder.can_decode() {
        if decoder.ip() == addr {
            return true;
        }
        if decoder.ip() > addr {
            return false;
        }
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (name, code, expected rets, tail calls, indirect jumps)
        type Case = (
            &'static str,
            &'static [u8],
            &'static [u64],
            &'static [(u64, u64)],
            &'static [u64],
        );
        let base = 0x1000;
        let cases: &[Case] = &[
            ("single ret", &[0xc3], &[0x1000], &[], &[]),
            // mov eax, 0xc3c3c3c3; ret  — 0xC3 bytes inside an immediate.
            (
                "c3 inside immediate",
                &[0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3],
                &[0x1005],
                &[],
                &[],
            ),
            // pop rbp; ret; int3; int3
            (
                "epilogue and padding",
                &[0x5d, 0xc3, 0xcc, 0xcc],
                &[0x1001],
                &[],
                &[],
            ),
            // ret 8; ret
            (
                "ret imm16 and ret",
                &[0xc2, 0x08, 0x00, 0xc3],
                &[0x1000, 0x1003],
                &[],
                &[],
            ),
            // jmp rel32 to 0x2000 (tail call); jmp short back to start.
            (
                "tail call and local jump",
                &[0xe9, 0xfb, 0x0f, 0x00, 0x00, 0xeb, 0xf9],
                &[],
                &[(0x1000, 0x2000)],
                &[],
            ),
            // jmp rax; ret
            (
                "indirect jump",
                &[0xff, 0xe0, 0xc3],
                &[0x1002],
                &[],
                &[0x1000],
            ),
        ];
        for (name, code, rets, tails, indirect) in cases {
            let e = exits(code, base).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(e.rets, *rets, "{name}");
            let t: Vec<_> = e.tail_calls.iter().map(|t| (t.at, t.target)).collect();
            assert_eq!(t, *tails, "{name}");
            assert_eq!(e.indirect_jumps, *indirect, "{name}");
            for r in &e.rets {
                assert!(is_ret_at(code, base, *r), "{name}");
            }
        }
        // Decoding from inside the immediate does give a RET: why return
        // sites come from a sweep from the entry, and are checked to be
        // instruction boundaries.
        assert!(is_ret_at(
            &[0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3],
            base,
            0x1001
        ));
        assert!(!is_instruction_boundary(
            &[0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3],
            base,
            0x1001
        ));
        assert!(is_instruction_boundary(
            &[0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3],
            base,
            0x1005
        ));
        assert_eq!(exits(&[], base), Err(DisasmError::Empty { entry: base }));
        // A cut-off instruction.
        assert!(matches!(
            exits(&[0xb8, 0xc3], base),
            Err(DisasmError::Invalid { .. })
        ));
    }
}
