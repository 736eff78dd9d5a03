//! A small HPACK encoder (RFC 7541 §6) for tests, benchmarks and fuzz seeds.
//! The sniffer itself never encodes; this exists so tests can build header
//! blocks with exact dynamic-table behaviour (insertions, evictions, size
//! updates, never-indexed fields) and check the decoder against them.

use std::collections::VecDeque;

use super::huffman;
use super::table::{ENTRY_OVERHEAD, STATIC_TABLE};

#[derive(Debug)]
pub struct Encoder {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: u64,
    max: u64,
    /// A size update to send at the start of the next block.
    pending_update: Option<u64>,
    /// Huffman-code strings when that is shorter.
    pub huffman: bool,
    /// Insert literals into the table (incremental indexing).
    pub index: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            entries: VecDeque::new(),
            size: 0,
            max: 4096,
            pending_update: None,
            huffman: true,
            index: true,
        }
    }

    /// Change the table size; signalled at the start of the next block.
    pub fn set_max_size(&mut self, max: u64) {
        self.max = max;
        self.evict(0);
        self.pending_update = Some(max);
    }

    /// Number of dynamic entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encode one header list; fields whose flag is true are never indexed.
    pub fn encode(&mut self, fields: &[(&[u8], &[u8], bool)], dst: &mut Vec<u8>) {
        if let Some(max) = self.pending_update.take() {
            integer(0x20, 5, max, dst);
        }
        for &(name, value, sensitive) in fields {
            let mut name_index = 0u64;
            let mut full = None;
            for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
                if *n == name {
                    if *v == value && full.is_none() {
                        full = Some(i as u64 + 1);
                    }
                    if name_index == 0 {
                        name_index = i as u64 + 1;
                    }
                }
            }
            for (i, (n, v)) in self.entries.iter().enumerate() {
                let index = STATIC_TABLE.len() as u64 + 1 + i as u64;
                if n.as_slice() == name {
                    if v.as_slice() == value && full.is_none() && !sensitive {
                        full = Some(index);
                    }
                    if name_index == 0 {
                        name_index = index;
                    }
                }
            }
            if let Some(i) = full.filter(|_| !sensitive) {
                integer(0x80, 7, i, dst);
                continue;
            }
            let (first, prefix) = if sensitive {
                (0x10, 4)
            } else if self.index {
                (0x40, 6)
            } else {
                (0x00, 4)
            };
            integer(first, prefix, name_index, dst);
            if name_index == 0 {
                self.string(name, dst);
            }
            self.string(value, dst);
            if !sensitive && self.index {
                self.insert(name, value);
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = (name.len() + value.len()) as u64 + ENTRY_OVERHEAD;
        if size > self.max {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.entries.push_front((name.to_vec(), value.to_vec()));
        self.size += size;
    }

    fn evict(&mut self, room: u64) {
        while self.size + room > self.max {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= (n.len() + v.len()) as u64 + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }

    fn string(&self, s: &[u8], dst: &mut Vec<u8>) {
        let hlen = huffman::encoded_len(s);
        if self.huffman && hlen < s.len() {
            integer(0x80, 7, hlen as u64, dst);
            huffman::encode(s, dst);
        } else {
            integer(0x00, 7, s.len() as u64, dst);
            dst.extend_from_slice(s);
        }
    }
}

/// RFC 7541 §5.1: `first` holds the bits above the prefix.
pub fn integer(first: u8, prefix: u8, value: u64, dst: &mut Vec<u8>) {
    let mask = (1u64 << prefix) - 1;
    if value < mask {
        dst.push(first | value as u8);
        return;
    }
    dst.push(first | mask as u8);
    let mut rest = value - mask;
    while rest >= 128 {
        dst.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    dst.push(rest as u8);
}
