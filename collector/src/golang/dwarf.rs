//! Struct layouts from the binary's DWARF (`go build` keeps it unless
//! `-ldflags=-w`): byte size of a struct, and each member's offset and type
//! name.
//!
//! Go names types in DWARF by their full import path (`net/http.Request`,
//! `google.golang.org/grpc/internal/transport.Stream`) and names an
//! embedded field after its type (`HeadersFrame` in
//! `golang.org/x/net/http2.MetaHeadersFrame`). Go's linker compresses the
//! debug sections; `elf` inflates them.

use std::{borrow::Cow, collections::HashMap};

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};

use super::elf::{ElfError, ElfImage};

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("reading DWARF sections: {0}")]
    Elf(#[from] ElfError),
    #[error("malformed DWARF: {0}")]
    Gimli(#[from] gimli::Error),
}

/// One member of a struct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    /// The member type's DWARF name (`string`, `*net/url.URL`, `int`), if
    /// it has one.
    pub type_name: Option<String>,
}

/// A struct type's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructLayout {
    pub name: String,
    pub size: u64,
    pub members: Vec<Member>,
}

impl StructLayout {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// Whether the binary has DWARF type information at all.
pub fn present(elf: &ElfImage<'_>) -> bool {
    elf.has_section(".debug_info") || elf.has_section(".zdebug_info")
}

/// The layouts of the named struct types that the binary's DWARF describes.
/// Names not found are absent from the map. `Ok(empty)` without DWARF.
pub fn struct_layouts(
    elf: &ElfImage<'_>,
    wanted: &[&str],
) -> Result<HashMap<String, StructLayout>, DwarfError> {
    let mut out = HashMap::new();
    if !present(elf) {
        return Ok(out);
    }
    let endian = if elf.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    // Only the sections type lookup needs: the line and location tables are
    // large and would be inflated for nothing.
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, ElfError> {
        match id {
            gimli::SectionId::DebugInfo
            | gimli::SectionId::DebugAbbrev
            | gimli::SectionId::DebugStr
            | gimli::SectionId::DebugLineStr
            | gimli::SectionId::DebugStrOffsets => {
                Ok(elf.section_data(id.name())?.unwrap_or(Cow::Borrowed(&[])))
            }
            _ => Ok(Cow::Borrowed(&[])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        // Not `dwarf.unit()`: that would also parse the line table, which
        // is not loaded.
        let abbrevs = dwarf.abbreviations(&header)?;
        collect_unit(&dwarf, &header, &abbrevs, wanted, &mut out)?;
        if out.len() == wanted.len() {
            break;
        }
    }
    Ok(out)
}

fn collect_unit(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::UnitHeader<Reader<'_>>,
    abbrevs: &gimli::Abbreviations,
    wanted: &[&str],
    out: &mut HashMap<String, StructLayout>,
) -> Result<(), gimli::Error> {
    let mut entries = unit.entries(abbrevs);
    // The struct being collected, and its depth.
    let mut current: Option<(StructLayout, isize)> = None;
    while let Some(entry) = entries.next_dfs()? {
        let depth = entry.depth();
        if let Some((_, d)) = &current
            && depth <= *d
            && let Some((layout, _)) = current.take()
        {
            out.entry(layout.name.clone()).or_insert(layout);
        }
        match (entry.tag(), &mut current) {
            (gimli::DW_TAG_structure_type, None) => {
                let Some(name) = attr_string(dwarf, entry.attr_value(gimli::DW_AT_name)) else {
                    continue;
                };
                if !wanted.contains(&name.as_str()) || out.contains_key(&name) {
                    continue;
                }
                let size = match entry.attr_value(gimli::DW_AT_byte_size) {
                    Some(v) => v.udata_value().unwrap_or(0),
                    None => 0,
                };
                current = Some((
                    StructLayout {
                        name,
                        size,
                        members: Vec::new(),
                    },
                    depth,
                ));
            }
            (gimli::DW_TAG_member, Some((layout, d))) if depth == *d + 1 => {
                let Some(name) = attr_string(dwarf, entry.attr_value(gimli::DW_AT_name)) else {
                    continue;
                };
                let offset = match entry.attr_value(gimli::DW_AT_data_member_location) {
                    Some(v) => v.udata_value(),
                    None => Some(0),
                };
                let Some(offset) = offset else { continue };
                let type_name = match entry.attr_value(gimli::DW_AT_type) {
                    Some(AttributeValue::UnitRef(r)) => {
                        let ty = unit.entry(abbrevs, r)?;
                        attr_string(dwarf, ty.attr_value(gimli::DW_AT_name))
                    }
                    // Go's types live in their own unit: references across
                    // units (DW_FORM_ref_addr).
                    Some(AttributeValue::DebugInfoRef(r)) => type_name_at(dwarf, r)?,
                    _ => None,
                };
                layout.members.push(Member {
                    name,
                    offset,
                    type_name,
                });
            }
            _ => {}
        }
    }
    if let Some((layout, _)) = current.take() {
        out.entry(layout.name.clone()).or_insert(layout);
    }
    Ok(())
}

/// The name of the DIE at a `.debug_info` offset, in whichever unit holds
/// it.
fn type_name_at(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    at: gimli::DebugInfoOffset,
) -> Result<Option<String>, gimli::Error> {
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let Some(offset) = at.to_unit_offset(&header) else {
            continue;
        };
        let abbrevs = dwarf.abbreviations(&header)?;
        let die = header.entry(&abbrevs, offset)?;
        return Ok(attr_string(dwarf, die.attr_value(gimli::DW_AT_name)));
    }
    Ok(None)
}

/// A string attribute: inline (`DW_FORM_string`, what Go emits) or in
/// `.debug_str`.
fn attr_string(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    value: Option<AttributeValue<Reader<'_>>>,
) -> Option<String> {
    let s = match value? {
        AttributeValue::String(s) => s,
        AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
        _ => return None,
    };
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}
