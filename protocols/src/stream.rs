//! Per-direction reassembly: position-keyed chunks in, one contiguous head out.
//!
//! A [`DataStream`] holds the bytes of one direction of one connection. Chunks
//! arrive as `(pos, ts_ns, bytes)` where `pos` is the offset of the chunk's first
//! byte in that direction (a kernel byte counter, or `seq - ISN` in a pcap). They
//! may arrive out of order, twice, or overlapping (TCP retransmissions); the
//! stream keeps each byte once and counts the duplicates.
//!
//! Holes come in two kinds:
//! - a **known** hole ([`DataStream::mark_lost`]): the capture says those bytes
//!   existed but were not copied (a syscall moved N bytes, C < N were captured).
//!   Nothing will ever fill it, so it is skipped as soon as the stream reaches it.
//! - an **unknown** hole: bytes beyond it arrived, the bytes inside it did not
//!   (an event was lost, or is late: per-CPU buffers deliver slightly out of
//!   order). It is waited for until more than `reorder_window` bytes are
//!   buffered beyond it, or until [`DataStream::flush`]; then it is skipped.
//!
//! Every skip is handed to the parser as a [`Gap`] with its exact length, at the
//! exact place in the byte sequence where it happened: the parser reads
//! [`DataStream::head`] (the bytes before the next gap), consumes what it can,
//! and once the head is empty takes the gap with [`DataStream::take_gap`].
//!
//! Memory: the stream keeps the unconsumed head (which the parser bounds: a
//! parser consumes everything except a partial message head, itself capped) and
//! at most `reorder_window` bytes of out-of-order chunks (plus the one chunk that
//! crosses the window, after which the hole is skipped).

use std::collections::{BTreeMap, VecDeque};

/// How many bytes may wait beyond an unknown hole before the hole is skipped.
///
/// Per-CPU perf/ring buffers reorder events by at most a few events; pcap
/// replays reorder by a TCP window. 256 KiB covers both with room to spare
/// while bounding memory per direction.
pub const DEFAULT_REORDER_WINDOW: usize = 256 * 1024;

/// Once this many consumed bytes sit at the front of the buffer, they are
/// dropped (the buffer is compacted) even if unconsumed bytes remain after
/// them. Keeps compaction amortised O(1) per byte.
const COMPACT_AT: usize = 64 * 1024;

/// Buffer capacity an emptied stream may keep: enough for a typical head
/// straddling two reads, small enough that thousands of idle connections
/// cost little.
const IDLE_CAPACITY: usize = 4 * 1024;

/// Bytes that were skipped because they will never (or no longer) arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Exact number of bytes skipped.
    pub len: u64,
    /// Every skipped byte was a known hole (cut by the capture): the bytes
    /// existed but were not copied. `false` if any of them was simply not seen.
    pub known: bool,
}

/// Counters of one direction. All are byte counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Distinct captured bytes accepted (each position counted once).
    pub bytes: u64,
    /// Bytes received again for positions already held or consumed.
    pub duplicate: u64,
    /// Bytes skipped over known holes (capture truncation).
    pub lost_known: u64,
    /// Bytes skipped over unknown holes (lost or too-late events).
    pub lost_unknown: u64,
}

impl StreamStats {
    /// All lost bytes, known and unknown.
    pub fn lost(&self) -> u64 {
        self.lost_known + self.lost_unknown
    }
}

/// The contiguous head of a stream: bytes, and the capture timestamp of each.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    /// Bytes up to the next gap (or the end of what arrived).
    pub bytes: &'a [u8],
    marks: Marks<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Marks<'a> {
    /// Every byte has this timestamp.
    One(u64),
    /// `(buffer offset, ts)` of each appended chunk, ascending; `base` is the
    /// buffer offset of `bytes[0]`.
    Many {
        marks: &'a [(usize, u64)],
        base: usize,
    },
}

impl<'a> Head<'a> {
    /// A head made of one chunk whose bytes all carry `ts_ns`.
    pub fn single(bytes: &'a [u8], ts_ns: u64) -> Self {
        Head {
            bytes,
            marks: Marks::One(ts_ns),
        }
    }

    /// Capture timestamp of `bytes[off]` (of the chunk that carried it).
    /// Inline: a head parsed in place is one chunk, and then it is a load.
    #[inline]
    pub fn ts_at(&self, off: usize) -> u64 {
        match self.marks {
            Marks::One(ts) => ts,
            Marks::Many { marks, base } => Self::ts_in(marks, base + off),
        }
    }

    /// The timestamp of buffer offset `at`, from the chunks' marks.
    fn ts_in(marks: &[(usize, u64)], at: usize) -> u64 {
        let i = marks.partition_point(|&(o, _)| o <= at);
        match i.checked_sub(1).and_then(|i| marks.get(i)) {
            Some(&(_, ts)) => ts,
            None => marks.first().map_or(0, |&(_, ts)| ts),
        }
    }
}

struct Pending {
    ts_ns: u64,
    bytes: Vec<u8>,
}

/// One direction of a connection, reassembled. See the module docs.
pub struct DataStream {
    /// Captured bytes in stream order; `buf[start..]` is not consumed yet.
    /// Skipped gaps take no room here: they are markers in `gaps`.
    buf: Vec<u8>,
    start: usize,
    /// `(buffer offset, ts)` per appended chunk, ascending offsets.
    marks: Vec<(usize, u64)>,
    /// Gaps skipped, at the buffer offset where they sit, in order.
    gaps: VecDeque<(usize, Gap)>,
    /// Stream position one past the last byte appended or skipped.
    end: u64,
    /// Stream position of the next unconsumed byte (`head().bytes[0]`), or of
    /// the next gap when the head is empty.
    read_pos: u64,
    /// Chunks beyond `end`, keyed by position.
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// Known holes not reached yet: start -> end (exclusive).
    holes: BTreeMap<u64, u64>,
    reorder_window: usize,
    stats: StreamStats,
}

impl DataStream {
    /// An empty stream starting at position 0.
    pub fn new(reorder_window: usize) -> Self {
        DataStream {
            buf: Vec::new(),
            start: 0,
            marks: Vec::new(),
            gaps: VecDeque::new(),
            end: 0,
            read_pos: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            holes: BTreeMap::new(),
            reorder_window,
            stats: StreamStats::default(),
        }
    }

    /// Adds a captured chunk at stream position `pos`. Bytes already held or
    /// consumed are dropped and counted as duplicates.
    pub fn push(&mut self, pos: u64, ts_ns: u64, bytes: &[u8]) {
        // A chunk can't extend past u64::MAX; cut what would.
        let room = u64::MAX - pos;
        let bytes = if bytes.len() as u64 > room {
            &bytes[..room as usize]
        } else {
            bytes
        };
        if bytes.is_empty() {
            return;
        }
        let chunk_end = pos + bytes.len() as u64;
        if chunk_end <= self.end {
            self.stats.duplicate += bytes.len() as u64;
            return;
        }
        if pos <= self.end {
            let skip = (self.end - pos) as usize;
            self.stats.duplicate += skip as u64;
            self.append(ts_ns, &bytes[skip..]);
        } else {
            self.insert_pending(pos, ts_ns, bytes);
        }
        self.advance(false);
    }

    /// Declares `[pos, pos + len)` lost for sure (captured length shorter than
    /// the syscall's length). The stream skips it as soon as it reaches it.
    pub fn mark_lost(&mut self, pos: u64, len: u64) {
        let hole_end = pos.saturating_add(len);
        let start = pos.max(self.end);
        if hole_end <= start {
            return;
        }
        let e = self.holes.entry(start).or_insert(hole_end);
        *e = (*e).max(hole_end);
        self.advance(false);
    }

    /// Gives up waiting for unknown holes: skips every one of them so that all
    /// buffered chunks become part of the head (with gaps in between).
    pub fn flush(&mut self) {
        self.advance(true);
    }

    /// The bytes before the next gap, with their timestamps.
    pub fn head(&self) -> Head<'_> {
        let stop = self.gaps.front().map_or(self.buf.len(), |&(at, _)| at);
        Head {
            bytes: &self.buf[self.start..stop],
            marks: Marks::Many {
                marks: &self.marks,
                base: self.start,
            },
        }
    }

    /// True if a gap follows the current head: no byte will ever extend it.
    pub fn gap_follows(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// The gap that follows the current head, if any.
    pub fn next_gap(&self) -> Option<Gap> {
        self.gaps.front().map(|&(_, g)| g)
    }

    /// Marks `n` head bytes as consumed by the parser.
    pub fn consume(&mut self, n: usize) {
        let stop = self.gaps.front().map_or(self.buf.len(), |&(at, _)| at);
        let n = n.min(stop - self.start);
        self.start += n;
        self.read_pos += n as u64;
        if self.start == self.buf.len() || self.start >= COMPACT_AT {
            self.compact();
        }
    }

    /// Once the head is fully consumed: the gap that follows it, if any. The
    /// stream then continues with the bytes after the gap.
    pub fn take_gap(&mut self) -> Option<Gap> {
        match self.gaps.front() {
            Some(&(at, gap)) if at == self.start => {
                self.gaps.pop_front();
                self.read_pos += gap.len;
                Some(gap)
            }
            _ => None,
        }
    }

    /// True if a chunk at `pos` would be the next byte and nothing is held:
    /// the caller may parse the chunk in place and hand over only the rest
    /// (see [`DataStream::parsed_in_place`]).
    pub fn is_idle_at(&self, pos: u64) -> bool {
        self.start == self.buf.len()
            && pos == self.end
            && self.gaps.is_empty()
            && self.pending.is_empty()
            && self.holes.is_empty()
    }

    /// Records that `n` bytes at the current end were parsed in place by the
    /// caller (only valid when [`DataStream::is_idle_at`] the end): they count
    /// as received and consumed without being copied.
    fn skip_parsed(&mut self, n: usize) {
        debug_assert!(self.start == self.buf.len() && self.gaps.is_empty());
        self.end += n as u64;
        self.read_pos += n as u64;
        self.stats.bytes += n as u64;
    }

    /// `bytes` arrived at `pos` (where the stream [`DataStream::is_idle_at`])
    /// and the caller parsed the first `n` in place: those count as
    /// consumed, the rest is kept. Inlined into `Connection::data`: it runs
    /// once per captured chunk, and when all was parsed it is three
    /// additions.
    #[inline(always)]
    pub fn parsed_in_place(&mut self, pos: u64, ts_ns: u64, bytes: &[u8], n: usize) {
        self.skip_parsed(n);
        // Usually all of it was parsed: no call to make for an empty tail.
        if n < bytes.len() {
            self.push(pos + n as u64, ts_ns, &bytes[n..]);
        }
    }

    /// Frees the buffers' capacity when nothing is held (an idle stream).
    pub fn release_if_empty(&mut self) {
        if self.buffered() == 0 && self.gaps.is_empty() {
            self.compact();
            self.buf = Vec::new();
            self.marks = Vec::new();
            self.gaps = VecDeque::new();
        }
    }

    /// Stream position of the first head byte.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Stream position one past the last byte received or skipped in order.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes held: unconsumed head and gaps' successors plus out-of-order chunks.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start + self.pending_bytes
    }

    /// True if chunks are waiting beyond an unknown hole.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    fn append(&mut self, ts_ns: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let at = self.buf.len();
        match self.marks.last_mut() {
            Some(last) if last.0 == at => last.1 = ts_ns,
            Some(last) if last.1 == ts_ns => {}
            _ => self.marks.push((at, ts_ns)),
        }
        self.buf.extend_from_slice(bytes);
        self.end += bytes.len() as u64;
        self.stats.bytes += bytes.len() as u64;
    }

    fn skip(&mut self, len: u64, known: bool) {
        if len == 0 {
            return;
        }
        if known {
            self.stats.lost_known += len;
        } else {
            self.stats.lost_unknown += len;
        }
        self.end += len;
        let at = self.buf.len();
        match self.gaps.back_mut() {
            Some((o, g)) if *o == at => {
                g.len += len;
                g.known &= known;
            }
            _ => self.gaps.push_back((at, Gap { len, known })),
        }
    }

    fn insert_pending(&mut self, pos: u64, ts_ns: u64, bytes: &[u8]) {
        match self.pending.get_mut(&pos) {
            Some(p) if p.bytes.len() >= bytes.len() => {
                self.stats.duplicate += bytes.len() as u64;
            }
            Some(p) => {
                self.stats.duplicate += p.bytes.len() as u64;
                self.pending_bytes += bytes.len() - p.bytes.len();
                p.bytes.clear();
                p.bytes.extend_from_slice(bytes);
                p.ts_ns = ts_ns;
            }
            None => {
                self.pending_bytes += bytes.len();
                self.pending.insert(
                    pos,
                    Pending {
                        ts_ns,
                        bytes: bytes.to_vec(),
                    },
                );
            }
        }
    }

    /// Moves everything that became contiguous into the head, skipping known
    /// holes, and unknown holes too when `force` or the window is exceeded.
    fn advance(&mut self, force: bool) {
        loop {
            if let Some(entry) = self.pending.first_entry()
                && *entry.key() <= self.end
            {
                let pos = *entry.key();
                let p = entry.remove();
                self.pending_bytes -= p.bytes.len();
                let chunk_end = pos + p.bytes.len() as u64;
                if chunk_end <= self.end {
                    self.stats.duplicate += p.bytes.len() as u64;
                } else {
                    let skip = (self.end - pos) as usize;
                    self.stats.duplicate += skip as u64;
                    self.append(p.ts_ns, &p.bytes[skip..]);
                }
                continue;
            }
            if let Some(entry) = self.holes.first_entry()
                && *entry.key() <= self.end
            {
                let hole_end = entry.remove();
                if hole_end > self.end {
                    self.skip(hole_end - self.end, true);
                }
                continue;
            }
            if let Some((&next, _)) = self.pending.first_key_value()
                && (force || self.pending_bytes > self.reorder_window)
            {
                // The unknown part of the hole stops where data or a known
                // hole begins.
                let stop = match self.holes.first_key_value() {
                    Some((&h, _)) if h < next => h,
                    _ => next,
                };
                self.skip(stop - self.end, false);
                continue;
            }
            break;
        }
    }

    fn compact(&mut self) {
        let n = self.start;
        if n == 0 {
            return;
        }
        if n == self.buf.len() {
            if self.buf.capacity() > IDLE_CAPACITY {
                // Nothing left to hold: an idle connection keeps no buffer.
                self.buf = Vec::new();
                self.marks = Vec::new();
            } else {
                self.buf.clear();
                self.marks.clear();
            }
        } else {
            self.buf.drain(..n);
            // Keep the mark covering the new first byte.
            let keep = self
                .marks
                .partition_point(|&(o, _)| o <= n)
                .saturating_sub(1);
            self.marks.drain(..keep);
            for m in &mut self.marks {
                m.0 = m.0.saturating_sub(n);
            }
        }
        for g in &mut self.gaps {
            g.0 -= n;
        }
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut DataStream) -> (Vec<u8>, Vec<Gap>) {
        let mut bytes = Vec::new();
        let mut gaps = Vec::new();
        loop {
            let h = s.head();
            if !h.bytes.is_empty() {
                bytes.extend_from_slice(h.bytes);
                let n = h.bytes.len();
                s.consume(n);
                continue;
            }
            match s.take_gap() {
                Some(g) => {
                    bytes.push(b'|');
                    gaps.push(g);
                }
                None => break,
            }
        }
        (bytes, gaps)
    }

    #[test]
    fn in_order_chunks_concatenate() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.push(0, 1, b"abc");
        s.push(3, 2, b"def");
        assert_eq!(s.head().bytes, b"abcdef");
        assert_eq!(s.head().ts_at(2), 1);
        assert_eq!(s.head().ts_at(3), 2);
        s.consume(4);
        assert_eq!(s.head().bytes, b"ef");
        assert_eq!(s.head().ts_at(0), 2);
        assert_eq!(s.read_pos(), 4);
    }

    #[test]
    fn reordering_and_duplicates() {
        // name, (pos, bytes) pushed in order, expected head, duplicates
        type Case<'a> = (&'a str, &'a [(u64, &'a [u8])], &'a [u8], u64);
        let cases: &[Case] = &[
            ("swapped", &[(3, b"def"), (0, b"abc")], b"abcdef", 0),
            (
                "exact dup",
                &[(0, b"abc"), (0, b"abc"), (3, b"d")],
                b"abcd",
                3,
            ),
            ("overlap", &[(0, b"abcd"), (2, b"cdef")], b"abcdef", 2),
            (
                "pending overlap",
                &[(4, b"ef"), (2, b"cdef"), (0, b"ab")],
                b"abcdef",
                2,
            ),
            (
                "longer retransmit",
                &[(2, b"c"), (2, b"cde"), (0, b"ab")],
                b"abcde",
                1,
            ),
            ("old", &[(0, b"abc"), (1, b"b")], b"abc", 1),
        ];
        for (name, chunks, want, dup) in cases {
            let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
            for (i, (pos, b)) in chunks.iter().enumerate() {
                s.push(*pos, i as u64, b);
            }
            let (got, gaps) = drain(&mut s);
            assert_eq!(&got[..], *want, "{name}");
            assert!(gaps.is_empty(), "{name}");
            assert_eq!(s.stats().duplicate, *dup, "{name}");
            assert_eq!(s.stats().bytes, want.len() as u64, "{name}");
        }
    }

    #[test]
    fn known_hole_is_skipped_at_once() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.push(0, 1, b"abc");
        s.mark_lost(3, 5);
        s.push(8, 2, b"xyz");
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"abc|xyz");
        assert_eq!(
            gaps,
            [Gap {
                len: 5,
                known: true
            }]
        );
        assert_eq!(s.stats().lost_known, 5);
        assert_eq!(s.stats().lost_unknown, 0);
    }

    #[test]
    fn known_hole_reported_before_its_data() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.mark_lost(3, 5);
        s.push(8, 2, b"xyz");
        assert!(s.head().bytes.is_empty());
        s.push(0, 1, b"abc");
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"abc|xyz");
        assert_eq!(
            gaps,
            [Gap {
                len: 5,
                known: true
            }]
        );
    }

    #[test]
    fn unknown_hole_waits_then_flushes() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.push(0, 1, b"abc");
        s.push(10, 2, b"xyz");
        assert!(s.waiting());
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"abc");
        assert!(gaps.is_empty());
        s.flush();
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"|xyz");
        assert_eq!(
            gaps,
            [Gap {
                len: 7,
                known: false
            }]
        );
        assert_eq!(s.stats().lost_unknown, 7);
        // A late arrival of the hole's bytes is a duplicate now.
        s.push(3, 3, b"defghij");
        assert_eq!(s.stats().duplicate, 7);
        assert!(s.head().bytes.is_empty());
    }

    #[test]
    fn unknown_hole_skipped_past_window() {
        let mut s = DataStream::new(8);
        s.push(0, 1, b"ab");
        s.push(5, 2, b"0123");
        assert!(s.waiting());
        s.push(9, 3, b"45678");
        assert!(!s.waiting());
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"ab|012345678");
        assert_eq!(
            gaps,
            [Gap {
                len: 3,
                known: false
            }]
        );
    }

    #[test]
    fn adjacent_known_and_unknown_holes_merge() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.push(0, 1, b"ab");
        s.mark_lost(4, 2);
        s.push(6, 2, b"cd");
        s.flush();
        let (got, gaps) = drain(&mut s);
        assert_eq!(got, b"ab|cd");
        assert_eq!(
            gaps,
            [Gap {
                len: 4,
                known: false
            }]
        );
        assert_eq!(s.stats().lost_known, 2);
        assert_eq!(s.stats().lost_unknown, 2);
    }

    #[test]
    fn head_stops_at_gap_and_timestamps_follow() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        s.push(0, 10, b"abc");
        s.mark_lost(3, 1);
        s.push(4, 20, b"def");
        assert_eq!(s.head().bytes, b"abc");
        assert!(s.gap_follows());
        assert_eq!(s.take_gap(), None, "gap only once the head is consumed");
        s.consume(3);
        assert_eq!(
            s.take_gap(),
            Some(Gap {
                len: 1,
                known: true
            })
        );
        assert_eq!(s.read_pos(), 4);
        assert_eq!(s.head().bytes, b"def");
        assert_eq!(s.head().ts_at(0), 20);
    }

    #[test]
    fn compaction_keeps_positions_and_timestamps() {
        let mut s = DataStream::new(DEFAULT_REORDER_WINDOW);
        let big = vec![b'x'; COMPACT_AT + 10];
        s.push(0, 1, &big);
        s.push(big.len() as u64, 2, b"tail");
        s.consume(COMPACT_AT + 5);
        assert_eq!(s.head().bytes.len(), 5 + 4);
        assert_eq!(s.head().ts_at(0), 1);
        assert_eq!(s.head().ts_at(5), 2);
        assert_eq!(s.buffered(), 9);
    }

    #[test]
    fn huge_positions_do_not_overflow() {
        let mut s = DataStream::new(16);
        s.push(u64::MAX - 2, 1, b"abcdef");
        s.mark_lost(u64::MAX - 1, u64::MAX);
        s.flush();
        let (_, gaps) = drain(&mut s);
        assert_eq!(gaps.iter().map(|g| g.len).sum::<u64>(), u64::MAX - 2);
    }
}
