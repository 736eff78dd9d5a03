//! Just enough of a BTF reader to find struct field offsets in the running
//! kernel (`/sys/kernel/btf/vmlinux`), so the eBPF programs can walk
//! `task_struct -> files -> fdtable -> file -> socket -> sock` on any kernel
//! without compiling against its headers.
//!
//! Format: `include/uapi/linux/btf.h` and Documentation/bpf/btf.rst. A header
//! gives the type and string sections; types are numbered from 1 in order;
//! each is a 12-byte `btf_type` followed by kind-specific data.

use std::collections::HashMap;

use probe_common::KernelOffsets;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("BTF data is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Copy, Debug)]
struct Member {
    name: u32,
    ty: u32,
    /// Offset in bits from the start of the enclosing struct/union.
    bit_offset: u32,
}

#[derive(Clone, Debug)]
enum Type {
    /// Struct or union with its members.
    Composite {
        name: u32,
        members: Vec<Member>,
    },
    /// typedef / const / volatile / restrict / type tag: look through.
    Alias(u32),
    Other,
}

/// Parsed kernel BTF: composite types and the names needed to find fields.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

impl Btf {
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_string(),
            source,
        })?;
        Btf::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let u16_at = |o: usize| -> Result<u16, BtfError> {
            data.get(o..o + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or(BtfError::Malformed("truncated header"))
        };
        let u32_at = |o: usize| -> Result<u32, BtfError> {
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(BtfError::Malformed("truncated"))
        };
        if u16_at(0)? != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(4)? as usize;
        let type_off = u32_at(8)? as usize;
        let type_len = u32_at(12)? as usize;
        let str_off = u32_at(16)? as usize;
        let str_len = u32_at(20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strs_start = hdr_len + str_off;
        let strings = data
            .get(strs_start..strs_start + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();
        if types_end > data.len() {
            return Err(BtfError::Malformed("type section out of bounds"));
        }

        // Type id 0 is "void".
        let mut types = vec![Type::Other];
        let mut o = types_start;
        while o < types_end {
            let name = u32_at(o)?;
            let info = u32_at(o + 4)?;
            let size_or_type = u32_at(o + 8)?;
            o += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                KIND_INT => {
                    o += 4;
                    Type::Other
                }
                KIND_PTR | KIND_FWD | KIND_FUNC | KIND_FLOAT => Type::Other,
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias(size_or_type)
                }
                KIND_ARRAY => {
                    o += 12;
                    Type::Other
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = o + i * 12;
                        let offset = u32_at(m + 8)?;
                        members.push(Member {
                            name: u32_at(m)?,
                            ty: u32_at(m + 4)?,
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    o += vlen * 12;
                    Type::Composite { name, members }
                }
                KIND_ENUM => {
                    o += vlen * 8;
                    Type::Other
                }
                KIND_FUNC_PROTO => {
                    o += vlen * 8;
                    Type::Other
                }
                KIND_VAR => {
                    o += 4;
                    Type::Other
                }
                KIND_DATASEC => {
                    o += vlen * 12;
                    Type::Other
                }
                KIND_DECL_TAG => {
                    o += 4;
                    Type::Other
                }
                KIND_ENUM64 => {
                    o += vlen * 12;
                    Type::Other
                }
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            types.push(ty);
        }

        let mut btf = Btf {
            types,
            strings,
            structs_by_name: HashMap::new(),
        };
        let mut by_name = HashMap::new();
        for (id, ty) in btf.types.iter().enumerate() {
            if let Type::Composite { name, members } = ty
                && *name != 0
            {
                let n = btf.str_at(*name).to_string();
                // Keep the first definition with members (forward
                // declarations and empty duplicates lose).
                let keep = match by_name.get(&n) {
                    None => true,
                    Some(&old) => matches!(&btf.types[old as usize],
                        Type::Composite { members: m, .. } if m.is_empty() && !members.is_empty()),
                };
                if keep {
                    by_name.insert(n, id as u32);
                }
            }
        }
        btf.structs_by_name = by_name;
        Ok(btf)
    }

    fn str_at(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(Type::Alias(next)) => id = *next,
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `field` in struct `strukt`, looking into anonymous
    /// struct/union members as C does.
    pub fn field_offset(&self, strukt: &str, field: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        self.find(id, field, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| BtfError::NoField {
                strukt: strukt.to_string(),
                field: field.to_string(),
            })
    }

    fn find(&self, id: u32, field: &str, base_bits: u32) -> Option<u32> {
        let Some(Type::Composite { members, .. }) = self.types.get(self.resolve(id) as usize)
        else {
            return None;
        };
        for m in members {
            if m.name != 0 && self.str_at(m.name) == field {
                return Some(base_bits + m.bit_offset);
            }
        }
        for m in members.iter().filter(|m| m.name == 0) {
            if let Some(bits) = self.find(m.ty, field, base_bits + m.bit_offset) {
                return Some(bits);
            }
        }
        None
    }

    /// The offsets the eBPF programs need.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let sk = |f: &str| self.field_offset("sock_common", f);
        let common = self.field_offset("sock", "__sk_common")?;
        Ok(KernelOffsets {
            task_pid: self.field_offset("task_struct", "pid")?,
            task_tgid: self.field_offset("task_struct", "tgid")?,
            task_comm: self.field_offset("task_struct", "comm")?,
            task_group_leader: self.field_offset("task_struct", "group_leader")?,
            task_files: self.field_offset("task_struct", "files")?,
            files_fdt: self.field_offset("files_struct", "fdt")?,
            fdt_max_fds: self.field_offset("fdtable", "max_fds")?,
            fdt_fd: self.field_offset("fdtable", "fd")?,
            file_inode: self.field_offset("file", "f_inode")?,
            file_private_data: self.field_offset("file", "private_data")?,
            inode_mode: self.field_offset("inode", "i_mode")?,
            socket_type: self.field_offset("socket", "type")?,
            socket_sk: self.field_offset("socket", "sk")?,
            sk_family: common + sk("skc_family")?,
            sk_state: common + sk("skc_state")?,
            sk_daddr: common + sk("skc_daddr")?,
            sk_rcv_saddr: common + sk("skc_rcv_saddr")?,
            sk_dport: common + sk("skc_dport")?,
            sk_num: common + sk("skc_num")?,
            sk_v6_daddr: common + sk("skc_v6_daddr")?,
            sk_v6_rcv_saddr: common + sk("skc_v6_rcv_saddr")?,
            valid: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: `struct outer { int a; union { int b; struct
    /// { int c; int d; }; }; }` with d at byte 8.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0d\0".to_vec();
        let s = |name: &str| -> u32 {
            let pat = format!("\0{name}\0");
            strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .map(|p| p as u32 + 1)
                .unwrap()
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[s("int"), KIND_INT << 24, 4, 32]);
        // 2: anonymous struct { int c @0; int d @32 }
        push(&[0, KIND_STRUCT << 24 | 2, 8, s("c"), 1, 0, s("d"), 1, 32]);
        // 3: anonymous union { int b; struct 2 }
        push(&[0, KIND_UNION << 24 | 2, 8, s("b"), 1, 0, 0, 2, 0]);
        // 4: struct outer { int a @0; union 3 @32 }
        push(&[
            s("outer"),
            KIND_STRUCT << 24 | 2,
            12,
            s("a"),
            1,
            0,
            0,
            3,
            32,
        ]);
        let mut data = Vec::new();
        data.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn finds_fields_through_anonymous_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.field_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.field_offset("outer", "b").unwrap(), 4);
        assert_eq!(btf.field_offset("outer", "c").unwrap(), 4);
        assert_eq!(btf.field_offset("outer", "d").unwrap(), 8);
        assert!(matches!(
            btf.field_offset("outer", "zz"),
            Err(BtfError::NoField { .. })
        ));
        assert!(matches!(
            btf.field_offset("nope", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut bad = sample();
        bad.truncate(40);
        assert!(Btf::parse(&bad).is_err());
    }

    /// On this machine's kernel: the offsets exist and are sane.
    #[test]
    fn running_kernel_offsets() {
        let Ok(btf) = Btf::from_sys_fs() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI machines have kernel BTF"
            );
            return;
        };
        let o = btf.kernel_offsets().unwrap();
        assert_eq!(o.fdt_max_fds, 0, "fdtable starts with max_fds");
        assert_eq!(o.sk_daddr, 0, "sock_common starts with the address pair");
        assert_eq!(o.sk_rcv_saddr, 4);
        assert_eq!(o.sk_dport, 12);
        assert_eq!(o.sk_num, 14);
        assert!(o.sk_v6_daddr > o.sk_family);
        assert_eq!(o.task_tgid, o.task_pid + 4, "pid_t pid; pid_t tgid;");
    }
}
