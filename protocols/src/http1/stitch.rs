//! Pairing requests with responses on one HTTP/1 connection (RFC 9112 §9.3:
//! responses come back in the order the requests were sent, pipelined or not).
//!
//! In sync, pairing is strictly first-in first-out. After a gap the count of
//! lost messages is unknown, so capture timestamps decide, as a person
//! reading the trace would:
//! - requests lost (a gap in the request direction leaves a [`Slot::Marker`]):
//!   a response that began before the next visible request was sent answers
//!   one of the lost requests, and is reported without a request;
//! - responses lost (a gap in the response direction sets `resp_gap`): the
//!   next response answers the latest request sent before it began; the
//!   unanswered requests before that one lost their responses in the gap.
//!   This is exact for non-pipelined traffic and a best guess when several
//!   requests were in flight across the gap.

use std::collections::VecDeque;

use crate::record::{Exchange, Flags};

/// What the response parser needs to know about the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// A response to HEAD has no body (RFC 9110 §9.3.2).
    Head,
    /// A 2xx to CONNECT turns the connection into a tunnel (RFC 9110 §9.3.6).
    Connect,
    Other,
}

/// Where a queued exchange's response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resp {
    None,
    Started,
    Done,
}

pub struct Entry {
    pub seq: u64,
    pub ex: Box<Exchange>,
    pub req_done: bool,
    pub resp: Resp,
    pub method: MethodKind,
    /// Sent `Upgrade` (or is CONNECT): the request side waits for the answer
    /// before parsing on, since what follows may be another protocol.
    pub wants_switch: bool,
    /// Sent `Expect: 100-continue` (RFC 9110 §10.1.1): its body may never
    /// come if the final response comes first.
    pub expect_continue: bool,
}

pub enum Slot {
    /// Requests may have been lost here (a gap in the request direction).
    Marker,
    Entry(Entry),
}

/// Counters kept by the stitcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StitchStats {
    pub exchanges: u64,
    pub incomplete: u64,
    pub no_request: u64,
    pub invalid: u64,
    /// Exchanges pushed out unanswered because too many requests were queued.
    pub evicted: u64,
}

/// Which queued request a response answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Entry(u64),
    /// None visible: the response is reported on its own. `gap`: its
    /// request was most likely lost in a gap.
    NoRequest {
        gap: bool,
    },
    /// None yet, but the request may still arrive (directions are delivered
    /// independently): hold the response.
    Wait,
}

pub struct Stitcher {
    slots: VecDeque<Slot>,
    next_seq: u64,
    /// Responses may have been lost (gap and resync in the response direction).
    pub resp_gap: bool,
    max_pending: usize,
    pub stats: StitchStats,
}

impl Stitcher {
    pub fn new(max_pending: usize) -> Self {
        Stitcher {
            slots: VecDeque::new(),
            next_seq: 0,
            resp_gap: false,
            max_pending: max_pending.max(1),
            stats: StitchStats::default(),
        }
    }

    /// Queues a request whose head was just parsed; returns its sequence number.
    pub fn push_request(
        &mut self,
        ex: Box<Exchange>,
        method: MethodKind,
        wants_switch: bool,
        expect_continue: bool,
        out: &mut Vec<Box<Exchange>>,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.push_back(Slot::Entry(Entry {
            seq,
            ex,
            req_done: false,
            resp: Resp::None,
            method,
            wants_switch,
            expect_continue,
        }));
        self.evict(out);
        seq
    }

    /// Notes that requests may have been lost at this point.
    pub fn push_marker(&mut self) {
        if !matches!(self.slots.back(), Some(Slot::Marker)) {
            self.slots.push_back(Slot::Marker);
        }
    }

    /// Queues a response that answers no visible request, before every
    /// unanswered request; returns its sequence number.
    pub fn push_no_request(&mut self, mut ex: Box<Exchange>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        ex.flags |= Flags::NO_REQUEST;
        let at = self
            .slots
            .iter()
            .position(|s| match s {
                Slot::Marker => true,
                Slot::Entry(e) => e.resp == Resp::None,
            })
            .unwrap_or(self.slots.len());
        self.slots.insert(
            at,
            Slot::Entry(Entry {
                seq,
                ex,
                req_done: true,
                resp: Resp::Started,
                method: MethodKind::Other,
                wants_switch: false,
                expect_continue: false,
            }),
        );
        seq
    }

    /// The queued exchange `seq`. Checked first, inline: the front one,
    /// which the response in progress nearly always answers.
    #[inline]
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        if matches!(self.slots.front(), Some(Slot::Entry(e)) if e.seq == seq) {
            return match self.slots.front_mut() {
                Some(Slot::Entry(e)) => Some(e),
                _ => None,
            };
        }
        self.find_mut(seq)
    }

    /// `get_mut` past the front: a search of the queue.
    #[inline(never)]
    fn find_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        self.slots.iter_mut().find_map(|s| match s {
            Slot::Entry(e) if e.seq == seq => Some(e),
            _ => None,
        })
    }

    /// Chooses the request a response starting at `ts_ns` answers, and marks
    /// it started. `may_wait`: holding the response is allowed.
    ///
    /// In sync, with the front request unanswered, that is the one: taken
    /// inline, without the search.
    #[inline]
    pub fn pick(&mut self, ts_ns: u64, may_wait: bool) -> Pick {
        if !self.resp_gap
            && let Some(Slot::Entry(e)) = self.slots.front_mut()
            && e.resp == Resp::None
        {
            e.resp = Resp::Started;
            return Pick::Entry(e.seq);
        }
        self.pick_search(ts_ns, may_wait)
    }

    /// `pick` in general: after a gap, or past the front.
    #[inline(never)]
    fn pick_search(&mut self, ts_ns: u64, may_wait: bool) -> Pick {
        let pick = if self.resp_gap {
            self.pick_after_gap(ts_ns, may_wait)
        } else {
            self.pick_in_order(ts_ns, may_wait)
        };
        if let Pick::Entry(seq) = pick
            && let Some(e) = self.get_mut(seq)
        {
            e.resp = Resp::Started;
        }
        pick
    }

    fn pick_in_order(&mut self, ts_ns: u64, may_wait: bool) -> Pick {
        let wait = if may_wait {
            Pick::Wait
        } else {
            Pick::NoRequest { gap: false }
        };
        let mut i = 0;
        loop {
            match self.slots.get(i) {
                None => return wait,
                Some(Slot::Entry(e)) if e.resp != Resp::None => i += 1,
                Some(Slot::Entry(e)) => return Pick::Entry(e.seq),
                Some(Slot::Marker) => {
                    let next = self.slots.iter().skip(i + 1).find_map(|s| match s {
                        Slot::Entry(e) if e.resp == Resp::None => Some(e.ex.request.first_ns),
                        _ => None,
                    });
                    match next {
                        None => return wait,
                        Some(first_ns) if ts_ns < first_ns => {
                            return Pick::NoRequest { gap: true };
                        }
                        Some(_) => {
                            self.slots.remove(i);
                        }
                    }
                }
            }
        }
    }

    fn pick_after_gap(&mut self, ts_ns: u64, may_wait: bool) -> Pick {
        let mut any = false;
        let mut best = None;
        for (i, s) in self.slots.iter().enumerate() {
            if let Slot::Entry(e) = s
                && e.resp == Resp::None
            {
                any = true;
                if e.ex.request.first_ns <= ts_ns {
                    best = Some(i);
                }
            }
        }
        let Some(k) = best else {
            if !any && may_wait {
                return Pick::Wait;
            }
            self.resp_gap = false;
            return Pick::NoRequest { gap: false };
        };
        self.resp_gap = false;
        // Requests before the chosen one lost their responses in the gap.
        let mut i = 0;
        let mut k = k;
        while i < k {
            match &mut self.slots[i] {
                Slot::Marker => {
                    self.slots.remove(i);
                    k -= 1;
                    continue;
                }
                Slot::Entry(e) if e.resp == Resp::None => {
                    e.resp = Resp::Done;
                    e.ex.flags |= Flags::GAP | Flags::INCOMPLETE;
                }
                Slot::Entry(_) => {}
            }
            i += 1;
        }
        match &self.slots[k] {
            Slot::Entry(e) => Pick::Entry(e.seq),
            Slot::Marker => Pick::NoRequest { gap: true },
        }
    }

    /// Emits, in order, the exchanges at the front whose request and response
    /// are both complete.
    ///
    /// The check is inlined into the callers: it often finds nothing ready
    /// (a request ends before its response), and then costs no call.
    #[inline]
    pub fn emit_ready(&mut self, out: &mut Vec<Box<Exchange>>) {
        if self.front_ready() {
            self.emit_front(out);
        }
    }

    /// The front exchange has both its request and its response.
    fn front_ready(&self) -> bool {
        matches!(self.slots.front(), Some(Slot::Entry(e)) if e.req_done && e.resp == Resp::Done)
    }

    /// Emits the ready exchanges at the front (at least one is).
    #[inline(never)]
    fn emit_front(&mut self, out: &mut Vec<Box<Exchange>>) {
        while self.front_ready() {
            if let Some(Slot::Entry(e)) = self.slots.pop_front() {
                self.count(&e.ex);
                out.push(e.ex);
            }
        }
    }

    /// Frees the queue's capacity when it is empty.
    pub fn release_if_empty(&mut self) {
        if self.slots.is_empty() {
            self.slots = VecDeque::new();
        }
    }

    /// Emits everything queued: unfinished sides are flagged incomplete.
    pub fn drain(&mut self, out: &mut Vec<Box<Exchange>>) {
        while let Some(slot) = self.slots.pop_front() {
            if let Slot::Entry(mut e) = slot {
                if !e.req_done || e.resp != Resp::Done {
                    e.ex.flags |= Flags::INCOMPLETE;
                }
                self.count(&e.ex);
                out.push(e.ex);
            }
        }
        self.resp_gap = false;
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Marker))
    }

    fn evict(&mut self, out: &mut Vec<Box<Exchange>>) {
        while self.slots.len() > self.max_pending {
            if let Some(Slot::Entry(mut e)) = self.slots.pop_front() {
                e.ex.flags |= Flags::INCOMPLETE;
                self.stats.evicted += 1;
                self.count(&e.ex);
                out.push(e.ex);
            }
        }
    }

    /// Counts an exchange on its way out.
    fn count(&mut self, ex: &Exchange) {
        self.stats.exchanges += 1;
        if ex.flags.contains(Flags::INCOMPLETE) {
            self.stats.incomplete += 1;
        }
        if ex.flags.contains(Flags::NO_REQUEST) {
            self.stats.no_request += 1;
        }
        if ex.flags.contains(Flags::INVALID) {
            self.stats.invalid += 1;
        }
    }
}
