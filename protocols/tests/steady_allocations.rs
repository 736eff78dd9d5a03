//! A keep-alive HTTP/1 connection whose consumer recycles the records it
//! got allocates nothing per exchange once warm: the records, their strings,
//! header lists and previews all come back from the free lists. Counted
//! with a global allocator that counts the calls made by the test thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use protocols::conn::{Config, Connection};
use protocols::record::{Direction, Exchange};

struct Counting;

thread_local! {
    /// Allocations by this thread while `COUNTING` is set.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are const-initialised thread locals, which don't allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQ: Direction = Direction::Egress;
const RESP: Direction = Direction::Ingress;

/// Allocations made while feeding `rounds` exchanges (a GET with a Host
/// and a JSON response with a body preview, then a chunked response with
/// trailers) and consuming what each event completed.
fn allocations(conn: &mut Connection, pos: &mut [u64; 2], rounds: usize, recycle: bool) -> u64 {
    let get = b"GET /api/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\nAccept: application/json\r\nUser-Agent: test/1.0\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"items\":[1,2,3],\"next\":3}\n";
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n";
    let mut out = Vec::with_capacity(4);
    let mut seen = 0;
    COUNTING.with(|c| c.set(true));
    ALLOCS.with(|a| a.set(0));
    for i in 0..rounds {
        let resp: &[u8] = if i % 2 == 0 { ok } else { chunked };
        for (dir, bytes) in [(REQ, &get[..]), (RESP, resp)] {
            let p = &mut pos[dir.index()];
            conn.data(dir, *p, (i * 2 + 1) as u64, bytes, &mut out);
            *p += bytes.len() as u64;
            seen += out.len();
            if recycle {
                out.drain(..).for_each(Exchange::recycle);
            } else {
                out.clear();
            }
        }
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(seen, rounds);
    ALLOCS.with(Cell::get)
}

#[test]
fn warm_recycled_connection_allocates_nothing_per_exchange() {
    let mut conn = Connection::new(&Config::default());
    let mut pos = [0; 2];
    // Warm up: queues, free lists and buffers reach their working sizes.
    allocations(&mut conn, &mut pos, 100, true);
    assert_eq!(allocations(&mut conn, &mut pos, 1000, true), 0);
    // Without recycling the same traffic allocates per exchange, so the
    // count above is not zero by accident. (Trailers are the one part
    // never recycled: one list per chunked response with trailers.)
    let dropped = allocations(&mut conn, &mut pos, 1000, false);
    assert!(dropped >= 5 * 1000, "{dropped}");
}
