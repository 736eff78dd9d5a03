//! HPACK header block decoding (RFC 7541 §6), fed frame fragments as they come.
//!
//! A header block may be split across HEADERS/PUSH_PROMISE and CONTINUATION
//! frames at any octet, and those frames across reads. The decoder decodes
//! every complete representation in what it is given and keeps only an
//! incomplete tail (at most one representation) for the next fragment.
//! Each representation is read whole, then committed: the table and the
//! output never see half of one.

use std::io::Write as _;

use super::huffman;
use super::table::{DynamicTable, Lookup};
use crate::record::{FIELD_NEVER_INDEXED, FIELD_TRUNCATED, FIELD_UNKNOWN, Headers};

/// Longest name or value we decode. A longer string cannot be decoded, and
/// the table loses track (as after lost bytes). Go's net/http caps a whole
/// header list at 1 MiB by default; one field of that size is already absurd.
pub const MAX_STRING_LEN: u64 = 1 << 20;

/// RFC 7541 §5.1 leaves integers unbounded; every value HTTP/2 can use
/// (indices, lengths, table sizes) fits in 32 bits: at most 5 continuation
/// octets after the prefix.
const MAX_INT_CONTINUATION: usize = 5;

/// Default cap on the octets of one decoded header list that we store (names
/// plus values). Decoding goes on past it to keep the table in step; fields
/// past it are dropped and the list is flagged. RFC 9113
/// SETTINGS_MAX_HEADER_LIST_SIZE is unlimited by default, so we pick what a
/// reader of the output can use.
pub const DEFAULT_MAX_LIST_BYTES: usize = 64 * 1024;
/// Default cap on the fields of one stored header list, for the same reason.
pub const DEFAULT_MAX_FIELDS: usize = 512;

/// Name stored for an indexed field whose entry is unknown.
pub const UNKNOWN_NAME: &[u8] = b"<unknown>";

/// Why a header block could not be decoded. After any of these the decoder's
/// table is no longer trusted: it forgets every entry, and later references to
/// them are reported as unknown (never guessed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("HPACK integer does not fit in 32 bits")]
    IntegerOverflow,
    #[error("HPACK index {0} refers to no table entry")]
    InvalidIndex(u64),
    #[error("malformed HPACK Huffman string")]
    Huffman,
    #[error("dynamic table size update after a header field (RFC 7541 §4.2)")]
    MisplacedSizeUpdate,
    #[error("dynamic table size update to {0} exceeds SETTINGS_HEADER_TABLE_SIZE")]
    SizeUpdateTooLarge(u64),
    #[error("HPACK string of {0} octets exceeds the cap of {MAX_STRING_LEN}")]
    StringTooLong(u64),
    #[error("header block ended inside a field representation")]
    Truncated,
}

/// Counters of one decoder, for the connection's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HpackCounters {
    pub blocks: u64,
    pub fields: u64,
    /// References to entries we could not know (inserted before we joined).
    pub unknown_refs: u64,
    pub inserts: u64,
    pub size_updates: u64,
    pub errors: u64,
    /// Times the table was forgotten (errors, lost bytes, late join).
    pub forgets: u64,
}

/// What one decoded header block held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Fields decoded (stored or not).
    pub fields: u32,
    /// Fields that carry [`FIELD_UNKNOWN`].
    pub unknown: u32,
    /// Some field was cut or dropped by the list caps.
    pub truncated: bool,
    /// The block could not be decoded to its end.
    pub error: Option<HpackError>,
}

#[derive(Debug, Default)]
struct Block {
    info: BlockInfo,
    /// Only at the start of a block (RFC 7541 §4.2).
    size_update_allowed: bool,
    active: bool,
}

/// Decoder state for one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Table size assumed after losing track (see [`super::table`]).
    assumed_limit: u64,
    max_list_bytes: usize,
    max_fields: usize,
    block: Block,
    /// Incomplete representation carried to the next fragment.
    pending: Vec<u8>,
    name: Vec<u8>,
    value: Vec<u8>,
    counters: HpackCounters,
}

/// Where a representation's name comes from.
enum NameRef<'a> {
    Index(u64),
    Literal(bool, &'a [u8]),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Incremental,
    WithoutIndexing,
    NeverIndexed,
}

impl Decoder {
    /// A decoder that saw the connection from its start (table of 4096).
    /// `table_cap` bounds the octets of table we track.
    pub fn new(table_cap: u64) -> Self {
        Decoder {
            table: DynamicTable::new(table_cap),
            assumed_limit: 65536,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            max_fields: DEFAULT_MAX_FIELDS,
            block: Block::default(),
            pending: Vec::new(),
            name: Vec::new(),
            value: Vec::new(),
            counters: HpackCounters::default(),
        }
    }

    /// A decoder that joins mid-way: earlier entries are unknown, and the
    /// table is assumed no larger than `assumed_limit` until told otherwise.
    pub fn new_late(table_cap: u64, assumed_limit: u64) -> Self {
        let mut d = Decoder::new(table_cap);
        d.assumed_limit = assumed_limit;
        d.table = DynamicTable::new_late(table_cap, assumed_limit);
        d
    }

    /// Caps on each stored header list.
    pub fn set_list_caps(&mut self, max_bytes: usize, max_fields: usize) {
        self.max_list_bytes = max_bytes;
        self.max_fields = max_fields;
    }

    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    pub fn counters(&self) -> HpackCounters {
        self.counters
    }

    /// The decoding side advertised SETTINGS_HEADER_TABLE_SIZE.
    pub fn settings_table_size(&mut self, value: u64) {
        self.table.settings(value);
    }

    /// SETTINGS of the decoding side may have been lost (see
    /// [`DynamicTable::settings_lost`]).
    pub fn settings_lost(&mut self) {
        self.table.settings_lost(self.assumed_limit);
    }

    /// Lose track of the table: bytes of this direction were lost, so header
    /// blocks (and their insertions) may have been missed. A block in
    /// progress is abandoned.
    pub fn forget(&mut self) {
        self.table.forget(self.assumed_limit);
        self.pending.clear();
        self.counters.forgets += 1;
        if self.block.active && self.block.info.error.is_none() {
            self.block.info.error = Some(HpackError::Truncated);
        }
    }

    /// Start a header block (a HEADERS or PUSH_PROMISE frame).
    pub fn begin_block(&mut self) {
        self.pending.clear();
        self.block = Block {
            info: BlockInfo::default(),
            size_update_allowed: true,
            active: true,
        };
    }

    /// Decode a fragment of the current block, appending fields to `out`.
    /// Errors are recorded in the block's [`BlockInfo`]; the rest of a failed
    /// block is ignored.
    pub fn feed(&mut self, mut frag: &[u8], out: &mut Headers) {
        if !self.block.active || self.block.info.error.is_some() {
            return;
        }
        while !frag.is_empty() {
            let res = if self.pending.is_empty() {
                self.run(frag, out).map(|n| {
                    self.pending.extend_from_slice(&frag[n..]);
                    frag = &[];
                })
            } else {
                // Grow the carried tail geometrically, so a long
                // representation costs O(its length) in copies.
                let take = frag.len().min(self.pending.len().max(64));
                self.pending.extend_from_slice(&frag[..take]);
                frag = &frag[take..];
                let pending = std::mem::take(&mut self.pending);
                let res = self.run(&pending, out);
                self.pending = pending;
                res.map(|n| {
                    self.pending.drain(..n);
                })
            };
            if let Err(e) = res {
                self.fail(e);
                return;
            }
        }
    }

    /// End the current block (END_HEADERS seen).
    pub fn end_block(&mut self) -> BlockInfo {
        if self.block.active && self.block.info.error.is_none() && !self.pending.is_empty() {
            self.fail(HpackError::Truncated);
        }
        self.block.active = false;
        self.pending.clear();
        self.counters.blocks += 1;
        self.block.info
    }

    /// Decode one complete header block.
    pub fn decode_block(
        &mut self,
        block: &[u8],
        out: &mut Headers,
    ) -> Result<BlockInfo, HpackError> {
        self.begin_block();
        self.feed(block, out);
        let info = self.end_block();
        match info.error {
            Some(e) => Err(e),
            None => Ok(info),
        }
    }

    fn fail(&mut self, e: HpackError) {
        self.counters.errors += 1;
        self.block.info.error = Some(e);
        // Insertions later in the block are lost: no index can be trusted.
        self.table.forget(self.assumed_limit);
        self.counters.forgets += 1;
        self.pending.clear();
    }

    /// Decode complete representations from `buf`; return octets consumed.
    fn run(&mut self, buf: &[u8], out: &mut Headers) -> Result<usize, HpackError> {
        let mut pos = 0;
        while pos < buf.len() {
            match self.one(&buf[pos..], out)? {
                Some(n) => pos += n,
                None => break,
            }
        }
        Ok(pos)
    }

    /// Decode one representation (RFC 7541 §6) if `buf` holds all of it.
    fn one(&mut self, buf: &[u8], out: &mut Headers) -> Result<Option<usize>, HpackError> {
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        // §6.1 Indexed Header Field
        //   0   1   2   3   4   5   6   7
        // +---+---+---+---+---+---+---+---+
        // | 1 |        Index (7+)         |
        // +---+---------------------------+
        if b & 0x80 != 0 {
            let Some((index, n)) = integer(buf, 7)? else {
                return Ok(None);
            };
            self.indexed(index, out)?;
            return Ok(Some(n));
        }
        // §6.3 Dynamic Table Size Update
        // +---+---+---+---+---+---+---+---+
        // | 0 | 0 | 1 |   Max size (5+)   |
        // +---+---------------------------+
        if b & 0xe0 == 0x20 {
            let Some((max, n)) = integer(buf, 5)? else {
                return Ok(None);
            };
            if !self.block.size_update_allowed {
                return Err(HpackError::MisplacedSizeUpdate);
            }
            if !self.table.size_update(max) {
                return Err(HpackError::SizeUpdateTooLarge(max));
            }
            self.counters.size_updates += 1;
            return Ok(Some(n));
        }
        // §6.2 Literal Header Field
        // +---+---+---+---+---+---+---+---+
        // | 0 | 1 |      Index (6+)       |   with incremental indexing
        // | 0 | 0 | 0 | 0 |  Index (4+)   |   without indexing
        // | 0 | 0 | 0 | 1 |  Index (4+)   |   never indexed
        // +---+---+-----------------------+
        // | H |     Value Length (7+)     |
        // +---+---------------------------+
        // | Value String (Length octets)  |
        // +-------------------------------+
        // Index 0: a literal name (H, Name Length (7+), Name String) comes first.
        let (prefix, kind) = if b & 0xc0 == 0x40 {
            (6, Kind::Incremental)
        } else if b & 0xf0 == 0x10 {
            (4, Kind::NeverIndexed)
        } else {
            (4, Kind::WithoutIndexing)
        };
        let Some((index, mut pos)) = integer(buf, prefix)? else {
            return Ok(None);
        };
        let name_ref = if index == 0 {
            let Some((h, s, n)) = string(&buf[pos..])? else {
                return Ok(None);
            };
            pos += n;
            NameRef::Literal(h, s)
        } else {
            NameRef::Index(index)
        };
        let Some((vh, vs, n)) = string(&buf[pos..])? else {
            return Ok(None);
        };
        pos += n;

        // The whole representation is here: resolve and decode, then commit.
        let mut flags = if kind == Kind::NeverIndexed {
            FIELD_NEVER_INDEXED
        } else {
            0
        };
        self.name.clear();
        match name_ref {
            NameRef::Literal(h, s) => decode_string(h, s, &mut self.name)?,
            NameRef::Index(i) => match self.table.get(i) {
                Lookup::Static(n, _) => self.name.extend_from_slice(n),
                Lookup::Dynamic(e) => {
                    if e.name_unknown() {
                        flags |= FIELD_UNKNOWN;
                    }
                    self.name.extend_from_slice(e.name());
                }
                Lookup::Unknown => {
                    flags |= FIELD_UNKNOWN;
                    self.counters.unknown_refs += 1;
                    placeholder(i, &mut self.name);
                }
                Lookup::Invalid => return Err(HpackError::InvalidIndex(i)),
            },
        }
        self.value.clear();
        decode_string(vh, vs, &mut self.value)?;

        self.block.size_update_allowed = false;
        self.counters.fields += 1;
        emit(
            &mut self.block.info,
            self.max_list_bytes,
            self.max_fields,
            out,
            &self.name,
            &self.value,
            flags,
        );
        if kind == Kind::Incremental {
            self.counters.inserts += 1;
            self.table
                .insert(&self.name, &self.value, flags & FIELD_UNKNOWN != 0);
        }
        Ok(Some(pos))
    }

    fn indexed(&mut self, index: u64, out: &mut Headers) -> Result<(), HpackError> {
        self.block.size_update_allowed = false;
        self.counters.fields += 1;
        let info = &mut self.block.info;
        match self.table.get(index) {
            Lookup::Static(n, v) => emit(info, self.max_list_bytes, self.max_fields, out, n, v, 0),
            Lookup::Dynamic(e) => {
                let flags = if e.name_unknown() { FIELD_UNKNOWN } else { 0 };
                emit(
                    info,
                    self.max_list_bytes,
                    self.max_fields,
                    out,
                    e.name(),
                    e.value(),
                    flags,
                )
            }
            Lookup::Unknown => {
                self.counters.unknown_refs += 1;
                self.value.clear();
                placeholder(index, &mut self.value);
                emit(
                    info,
                    self.max_list_bytes,
                    self.max_fields,
                    out,
                    UNKNOWN_NAME,
                    &self.value,
                    FIELD_UNKNOWN,
                )
            }
            Lookup::Invalid => return Err(HpackError::InvalidIndex(index)),
        }
        Ok(())
    }
}

/// `<unknown: dynamic index N>`: what an unresolvable reference is shown as.
fn placeholder(index: u64, dst: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = write!(dst, "<unknown: dynamic index {index}>");
}

/// Store a field in `out`, within the list caps.
fn emit(
    info: &mut BlockInfo,
    max_bytes: usize,
    max_fields: usize,
    out: &mut Headers,
    name: &[u8],
    value: &[u8],
    flags: u8,
) {
    info.fields += 1;
    if flags & FIELD_UNKNOWN != 0 {
        info.unknown += 1;
    }
    if info.truncated {
        return;
    }
    let room = max_bytes.saturating_sub(out.byte_len());
    if out.len() >= max_fields || name.len() >= room {
        info.truncated = true;
        return;
    }
    if name.len() + value.len() > room {
        info.truncated = true;
        out.push_flagged(name, &value[..room - name.len()], flags | FIELD_TRUNCATED);
        return;
    }
    out.push_flagged(name, value, flags);
}

fn decode_string(huffman: bool, src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    if huffman {
        huffman::decode(src, dst).map_err(|_| HpackError::Huffman)
    } else {
        dst.extend_from_slice(src);
        Ok(())
    }
}

/// RFC 7541 §5.1 integer with an N-bit prefix: `Ok(None)` if `buf` ends first.
///
/// ```text
///   0   1   2   3   4   5   6   7
/// +---+---+---+---+---+---+---+---+
/// | ? | ? | ? | 1   1   1   1   1 |
/// +---+---+---+-------------------+
/// | 1 |    Value-(2^N-1) LSB      |
/// +---+---------------------------+
///                ...
/// +---+---------------------------+
/// | 0 |    Value-(2^N-1) MSB      |
/// +---+---------------------------+
/// ```
pub fn integer(buf: &[u8], prefix: u8) -> Result<Option<(u64, usize)>, HpackError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mask = (1u16 << prefix) as u64 - 1;
    let mut value = first as u64 & mask;
    if value < mask {
        return Ok(Some((value, 1)));
    }
    for (i, &b) in buf[1..].iter().enumerate() {
        if i >= MAX_INT_CONTINUATION {
            return Err(HpackError::IntegerOverflow);
        }
        value += ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            if value > u32::MAX as u64 {
                return Err(HpackError::IntegerOverflow);
            }
            return Ok(Some((value, i + 2)));
        }
    }
    if buf.len() > MAX_INT_CONTINUATION + 1 {
        return Err(HpackError::IntegerOverflow);
    }
    Ok(None)
}

/// (Huffman-coded?, raw octets, octets consumed).
type StringLit<'a> = (bool, &'a [u8], usize);

/// RFC 7541 §5.2 string literal: (Huffman?, raw octets, octets consumed).
///
/// ```text
/// +---+---+---+---+---+---+---+---+
/// | H |    String Length (7+)     |
/// +---+---------------------------+
/// |  String Data (Length octets)  |
/// +-------------------------------+
/// ```
fn string(buf: &[u8]) -> Result<Option<StringLit<'_>>, HpackError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, n)) = integer(buf, 7)? else {
        return Ok(None);
    };
    if len > MAX_STRING_LEN {
        return Err(HpackError::StringTooLong(len));
    }
    let end = n + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((first & 0x80 != 0, &buf[n..end], end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_rfc_c1() {
        assert_eq!(integer(&[0x0a], 5), Ok(Some((10, 1))));
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Ok(Some((1337, 3))));
        assert_eq!(integer(&[0x2a], 8), Ok(Some((42, 1))));
        assert_eq!(integer(&[0x1f, 0x9a], 5), Ok(None));
        assert_eq!(
            integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 5),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(HpackError::IntegerOverflow)
        );
    }

    #[test]
    fn split_at_every_octet_gives_same_result() {
        // RFC 7541 C.4.3 after C.4.1 and C.4.2.
        let blocks: [&[u8]; 3] = [
            &[
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
                0x90, 0xf4, 0xff,
            ],
            &[
                0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
            ],
            &[
                0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
                0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
            ],
        ];
        let mut whole = Decoder::new(1 << 16);
        let mut expect = Vec::new();
        for b in blocks {
            let mut h = Headers::new();
            whole.decode_block(b, &mut h).unwrap();
            expect.push(h);
        }
        for cut in 0..=blocks[2].len() {
            let mut d = Decoder::new(1 << 16);
            let mut h = Headers::new();
            d.decode_block(blocks[0], &mut h).unwrap();
            d.decode_block(blocks[1], &mut Headers::new()).unwrap();
            let mut h = Headers::new();
            d.begin_block();
            d.feed(&blocks[2][..cut], &mut h);
            d.feed(&blocks[2][cut..], &mut h);
            assert_eq!(d.end_block().error, None);
            assert_eq!(h, expect[2], "cut at {cut}");
        }
    }

    #[test]
    fn size_update_only_at_block_start() {
        let mut d = Decoder::new(1 << 16);
        assert!(
            d.decode_block(&[0x3f, 0xe1, 0x1f, 0x82], &mut Headers::new())
                .is_ok()
        );
        assert_eq!(
            d.decode_block(&[0x82, 0x20], &mut Headers::new()),
            Err(HpackError::MisplacedSizeUpdate)
        );
        let mut d = Decoder::new(1 << 16);
        assert_eq!(
            d.decode_block(&[0x3f, 0xe2, 0x1f], &mut Headers::new()),
            Err(HpackError::SizeUpdateTooLarge(4097))
        );
    }

    #[test]
    fn unknown_references_are_placeholders() {
        let mut d = Decoder::new_late(1 << 16, 4096);
        let mut h = Headers::new();
        // Indexed 70; literal with name from index 63, value "v".
        let info = d
            .decode_block(&[0xc6, 0x40 | 0x3f, 0x00, 0x01, b'v'], &mut h)
            .unwrap();
        assert_eq!(info.unknown, 2);
        let f: Vec<_> = h.iter().collect();
        assert_eq!(
            f[0],
            (
                UNKNOWN_NAME,
                &b"<unknown: dynamic index 70>"[..],
                FIELD_UNKNOWN
            )
        );
        assert_eq!(
            f[1],
            (
                &b"<unknown: dynamic index 63>"[..],
                &b"v"[..],
                FIELD_UNKNOWN
            )
        );
        // The inserted entry (unknown name) is now index 62; 63 is still unknown.
        let mut h = Headers::new();
        d.decode_block(&[0xbe, 0xbf], &mut h).unwrap();
        let f: Vec<_> = h.iter().collect();
        assert_eq!(
            f[0],
            (
                &b"<unknown: dynamic index 63>"[..],
                &b"v"[..],
                FIELD_UNKNOWN
            )
        );
        assert_eq!(f[1].2, FIELD_UNKNOWN);
    }

    #[test]
    fn list_caps_truncate_but_keep_table_in_step() {
        let mut d = Decoder::new(1 << 16);
        d.set_list_caps(20, 3);
        let mut h = Headers::new();
        // literal incremental, new name "aaaa", value 30 x 'b'; then index 62.
        let mut block = vec![0x40, 4, b'a', b'a', b'a', b'a', 30];
        block.extend_from_slice(&[b'b'; 30]);
        block.push(0xbe);
        let info = d.decode_block(&block, &mut h).unwrap();
        assert!(info.truncated);
        assert_eq!(info.fields, 2);
        assert_eq!(h.len(), 1);
        assert_eq!(h.iter().next().unwrap().2, FIELD_TRUNCATED);
        assert_eq!(d.table().len(), 1);
    }
}
