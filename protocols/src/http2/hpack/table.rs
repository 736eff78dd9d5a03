//! The HPACK indexing tables (RFC 7541 §2.3): the static table and one
//! dynamic table per decoder, with the bookkeeping needed to join a
//! connection mid-way without ever resolving an index to a wrong entry.
//!
//! ```text
//!   <----------  Index Address Space ---------->
//!   <-- Static  Table -->  <-- Dynamic Table -->
//!   +---+-----------+---+  +---+-----------+---+
//!   | 1 |    ...    | s |  |s+1|    ...    |s+k|
//!   +---+-----------+---+  +---+-----------+---+
//!                          ^                   |
//!                          |                   V
//!                   Insertion Point      Dropping Point
//! ```
//!
//! # Joining mid-way
//!
//! Dynamic indices count from the newest entry, so the entries inserted since
//! we started decoding (the *tracked* entries) have exact indices whatever
//! came before. Older entries (the *residue*) are unknown: a reference past the
//! tracked entries is reported as unknown, never guessed.
//!
//! `residue` is an upper bound, in RFC 7541 §4.1 octets, on the entries older
//! than the oldest tracked one. The rule that makes the table fully known
//! again: if any residue entry is still present, every tracked entry (newer)
//! is present too, so `residue <= limit - tracked_size`, where `limit` is an
//! upper bound on the encoder's maximum table size in force. Every entry
//! takes at least 32 octets, so once that bound is below 32 the residue is
//! provably gone. Evicting a tracked entry (oldest first) also proves it gone.
//!
//! `limit` after a late join is not known: it starts at a configured
//! assumption (default 65536, the largest value common peers advertise),
//! grows with any SETTINGS_HEADER_TABLE_SIZE seen, and becomes exact with a
//! dynamic table size update, which the encoder must send to change its
//! size (RFC 7541 §4.2). If the assumption is wrong (a peer using a table
//! larger than it without our seeing SETTINGS), the only effect is that a
//! reference to a surviving old entry is reported as unknown *and* counted
//! as an HPACK error; no header is ever resolved wrongly, because resolution
//! only ever uses tracked entries, whose indices are exact.

use std::collections::VecDeque;

/// RFC 7541 §4.1: an entry's size is its name and value lengths plus 32.
pub const ENTRY_OVERHEAD: u64 = 32;

/// "Unknown" for [`DynamicTable::residue`]: anything may be there.
const RESIDUE_UNKNOWN: u64 = u64::MAX;

/// RFC 7541 Appendix A.
#[rustfmt::skip]
pub static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""), // 1
    (b":method", b"GET"), // 2
    (b":method", b"POST"), // 3
    (b":path", b"/"), // 4
    (b":path", b"/index.html"), // 5
    (b":scheme", b"http"), // 6
    (b":scheme", b"https"), // 7
    (b":status", b"200"), // 8
    (b":status", b"204"), // 9
    (b":status", b"206"), // 10
    (b":status", b"304"), // 11
    (b":status", b"400"), // 12
    (b":status", b"404"), // 13
    (b":status", b"500"), // 14
    (b"accept-charset", b""), // 15
    (b"accept-encoding", b"gzip, deflate"), // 16
    (b"accept-language", b""), // 17
    (b"accept-ranges", b""), // 18
    (b"accept", b""), // 19
    (b"access-control-allow-origin", b""), // 20
    (b"age", b""), // 21
    (b"allow", b""), // 22
    (b"authorization", b""), // 23
    (b"cache-control", b""), // 24
    (b"content-disposition", b""), // 25
    (b"content-encoding", b""), // 26
    (b"content-language", b""), // 27
    (b"content-length", b""), // 28
    (b"content-location", b""), // 29
    (b"content-range", b""), // 30
    (b"content-type", b""), // 31
    (b"cookie", b""), // 32
    (b"date", b""), // 33
    (b"etag", b""), // 34
    (b"expect", b""), // 35
    (b"expires", b""), // 36
    (b"from", b""), // 37
    (b"host", b""), // 38
    (b"if-match", b""), // 39
    (b"if-modified-since", b""), // 40
    (b"if-none-match", b""), // 41
    (b"if-range", b""), // 42
    (b"if-unmodified-since", b""), // 43
    (b"last-modified", b""), // 44
    (b"link", b""), // 45
    (b"location", b""), // 46
    (b"max-forwards", b""), // 47
    (b"proxy-authenticate", b""), // 48
    (b"proxy-authorization", b""), // 49
    (b"range", b""), // 50
    (b"referer", b""), // 51
    (b"refresh", b""), // 52
    (b"retry-after", b""), // 53
    (b"server", b""), // 54
    (b"set-cookie", b""), // 55
    (b"strict-transport-security", b""), // 56
    (b"transfer-encoding", b""), // 57
    (b"user-agent", b""), // 58
    (b"vary", b""), // 59
    (b"via", b""), // 60
    (b"www-authenticate", b""), // 61
];

/// Number of entries in the static table; dynamic indices start after it.
pub const STATIC_LEN: u64 = STATIC_TABLE.len() as u64;

/// A dynamic table entry. Name and value share one allocation.
#[derive(Clone, Debug)]
pub struct Entry {
    data: Box<[u8]>,
    name_len: u32,
    /// The name came from an unknown entry; `data` holds a placeholder.
    name_unknown: bool,
    /// RFC 7541 §4.1 size; a lower bound when the name is unknown.
    size: u64,
}

impl Entry {
    pub fn name(&self) -> &[u8] {
        &self.data[..self.name_len as usize]
    }

    pub fn value(&self) -> &[u8] {
        &self.data[self.name_len as usize..]
    }

    pub fn name_unknown(&self) -> bool {
        self.name_unknown
    }
}

/// What an index refers to.
#[derive(Debug)]
pub enum Lookup<'a> {
    Static(&'a [u8], &'a [u8]),
    Dynamic(&'a Entry),
    /// A dynamic index past the tracked entries while older entries may
    /// exist: the entry was inserted before we started decoding.
    Unknown,
    /// Index 0, or past every entry that can exist: a decoding error.
    Invalid,
}

/// One decoder's dynamic table (RFC 7541 §2.3.2, §4).
#[derive(Debug)]
pub struct DynamicTable {
    /// Newest first: index 62 is `entries[0]`.
    entries: VecDeque<Entry>,
    /// Sum of the tracked entries' sizes (a lower bound if some name is unknown).
    size: u64,
    /// Upper bound on the maximum table size the encoder has in force.
    limit: u64,
    /// Largest SETTINGS_HEADER_TABLE_SIZE the decoding side advertised, when
    /// seen from the start of the connection (size updates above it are errors).
    settings_max: Option<u64>,
    /// Memory cap on tracked octets; entries past it are dropped into the residue.
    cap: u64,
    /// Upper bound on the size of entries older than the oldest tracked one.
    residue: u64,
    /// Entries evicted (by the RFC rules or the cap), a counter.
    evictions: u64,
}

impl DynamicTable {
    /// A table seen from the start of the connection: empty, 4096 octets
    /// (RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(cap: u64) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            limit: 4096,
            settings_max: Some(4096),
            cap,
            residue: 0,
            evictions: 0,
        }
    }

    /// A table joined mid-way: unknown residue, `assumed_limit` as the bound.
    pub fn new_late(cap: u64, assumed_limit: u64) -> Self {
        let mut t = DynamicTable::new(cap);
        t.forget(assumed_limit);
        t
    }

    /// Lose track of the table (late join, lost bytes, decoding error): every
    /// tracked entry becomes residue of unknown size.
    pub fn forget(&mut self, assumed_limit: u64) {
        self.entries.clear();
        self.size = 0;
        self.residue = RESIDUE_UNKNOWN;
        self.settings_max = None;
        self.limit = self.limit.max(assumed_limit);
    }

    /// True when no entry from before we started tracking can still be
    /// referenced: every valid index resolves.
    pub fn fully_known(&self) -> bool {
        self.residue == 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tracked octets (RFC 7541 §4.1 sizes).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Resolve an index (RFC 7541 §2.3.3).
    pub fn get(&self, index: u64) -> Lookup<'_> {
        if index == 0 {
            return Lookup::Invalid;
        }
        if index <= STATIC_LEN {
            let (n, v) = STATIC_TABLE[(index - 1) as usize];
            return Lookup::Static(n, v);
        }
        let k = index - STATIC_LEN - 1;
        if let Some(e) = usize::try_from(k).ok().and_then(|k| self.entries.get(k)) {
            return Lookup::Dynamic(e);
        }
        if self.residue == 0 {
            Lookup::Invalid
        } else {
            Lookup::Unknown
        }
    }

    /// The decoding side advertised SETTINGS_HEADER_TABLE_SIZE = `value`
    /// (RFC 9113 §6.5.2). The encoder may use up to it, so it widens the bound.
    pub fn settings(&mut self, value: u64) {
        self.limit = self.limit.max(value);
        if let Some(m) = &mut self.settings_max {
            *m = (*m).max(value);
        }
    }

    /// SETTINGS of the decoding side may have been lost: widen the bound to
    /// `assumed` and stop checking size updates against what we saw.
    pub fn settings_lost(&mut self, assumed: u64) {
        self.limit = self.limit.max(assumed);
        self.settings_max = None;
    }

    /// Dynamic table size update (RFC 7541 §6.3). Returns false if it exceeds
    /// what the decoding side allowed (only checkable with a full view).
    pub fn size_update(&mut self, max: u64) -> bool {
        if let Some(m) = self.settings_max
            && max > m
        {
            return false;
        }
        self.limit = max;
        self.evict_to(max);
        self.tighten_residue();
        true
    }

    /// Insert an entry (RFC 7541 §4.4), evicting as needed.
    pub fn insert(&mut self, name: &[u8], value: &[u8], name_unknown: bool) {
        let size = if name_unknown {
            value.len() as u64 + ENTRY_OVERHEAD
        } else {
            (name.len() + value.len()) as u64 + ENTRY_OVERHEAD
        };
        if size > self.limit {
            // §4.4: an entry larger than the maximum size empties the table.
            self.evictions += self.entries.len() as u64;
            self.entries.clear();
            self.size = 0;
            self.residue = 0;
            return;
        }
        self.evict_to(self.limit - size);
        let mut data = Vec::with_capacity(name.len() + value.len());
        data.extend_from_slice(name);
        data.extend_from_slice(value);
        self.entries.push_front(Entry {
            data: data.into_boxed_slice(),
            name_len: name.len() as u32,
            name_unknown,
            size,
        });
        self.size += size;
        // Our own memory cap: dropped entries join the residue.
        while self.size > self.cap {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.size;
            self.evictions += 1;
            if self.residue != RESIDUE_UNKNOWN {
                self.residue = self.residue.saturating_add(e.size);
            }
        }
        self.tighten_residue();
    }

    /// Evict the oldest tracked entries until they fit in `max`. Evicting a
    /// tracked entry proves every older entry gone (oldest go first).
    fn evict_to(&mut self, max: u64) {
        while self.size > max {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.size;
            self.evictions += 1;
            self.residue = 0;
        }
    }

    fn tighten_residue(&mut self) {
        let room = self.limit.saturating_sub(self.size);
        self.residue = self.residue.min(room);
        if self.residue < ENTRY_OVERHEAD {
            self.residue = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_ends() {
        assert!(matches!(
            DynamicTable::new(1 << 16).get(2),
            Lookup::Static(b":method", b"GET")
        ));
        assert!(matches!(
            DynamicTable::new(1 << 16).get(61),
            Lookup::Static(b"www-authenticate", b"")
        ));
        assert!(matches!(DynamicTable::new(1 << 16).get(0), Lookup::Invalid));
        assert!(matches!(
            DynamicTable::new(1 << 16).get(62),
            Lookup::Invalid
        ));
    }

    #[test]
    fn late_join_becomes_known_after_limit_filled() {
        let mut t = DynamicTable::new_late(1 << 20, 4096);
        assert!(matches!(t.get(62), Lookup::Unknown));
        // 4096 - 32 octets must be inserted before no old entry can fit.
        let value = [b'x'; 968]; // 1 + 968 + 32 = 1001 octets per entry
        for i in 0..4 {
            t.insert(b"a", &value, false);
            assert!(!t.fully_known(), "after {i}");
            assert!(matches!(t.get(62 + i + 1), Lookup::Unknown));
        }
        assert!(matches!(t.get(62), Lookup::Dynamic(_)));
        // 4004 tracked: room 92 could hold an old entry; one more evicts.
        t.insert(b"a", &value, false);
        assert!(t.fully_known());
        assert_eq!(t.len(), 4);
        assert!(matches!(t.get(62 + 3), Lookup::Dynamic(_)));
        assert!(matches!(t.get(62 + 4), Lookup::Invalid));
    }

    #[test]
    fn size_update_to_zero_clears_residue() {
        let mut t = DynamicTable::new_late(1 << 20, 65536);
        assert!(t.size_update(0));
        assert!(t.fully_known());
        assert!(matches!(t.get(62), Lookup::Invalid));
    }

    #[test]
    fn settings_raise_is_honoured() {
        let mut t = DynamicTable::new(1 << 20);
        assert!(!t.size_update(65536));
        t.settings(65536);
        assert!(t.size_update(65536));
        for _ in 0..100 {
            t.insert(b"name", &[b'v'; 300], false);
        }
        // 100 * 336 = 33600 octets, all kept under a 65536 table.
        assert_eq!(t.len(), 100);
    }

    #[test]
    fn cap_drop_makes_old_indices_unknown() {
        let mut t = DynamicTable::new(200);
        t.insert(b"a", &[b'v'; 60], false); // 93
        t.insert(b"b", &[b'v'; 60], false); // 93
        t.insert(b"c", &[b'v'; 60], false); // dropped "a" by the cap
        assert_eq!(t.len(), 2);
        assert!(matches!(t.get(64), Lookup::Unknown));
    }
}
