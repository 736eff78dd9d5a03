//! `cargo fuzz run pcap`: any bytes as a capture file, and as a frame of
//! every link type. Never a panic; whole-file and streaming reads agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::pcap::{Capture, LinkType, Parsed, Reader, decode};

const LINKS: [LinkType; 10] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_OLD_12,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
    LinkType(147),
];

fuzz_target!(|data: &[u8]| {
    // As a frame.
    if let Some((&sel, frame)) = data.split_first() {
        let _ = decode(LINKS[sel as usize % LINKS.len()], frame);
    }

    // As a file, whole.
    let whole = Capture::decode(data);
    if let Ok(cap) = &whole {
        for s in &cap.segments {
            assert!(s.payload.len() as u64 <= s.wire_len as u64);
            let c = &cap.connections[s.conn.index()];
            assert!(s.end() <= c.end[s.dir.index()]);
            assert!(c.first_ns <= s.ts_ns && s.ts_ns <= c.last_ns);
        }
    }

    // As a file, streamed in small chunks: the same frames, in order.
    let chunk = 1 + data.first().copied().unwrap_or(0) as usize % 64;
    let mut reader = Reader::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = 0u64;
    'outer: for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match reader.next(&buf) {
                Ok(Parsed::NeedMore { needed }) => {
                    assert!(needed > buf.len());
                    break;
                }
                Ok(Parsed::Skipped { consumed, .. }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    buf.drain(..consumed);
                }
                Ok(Parsed::Frame { consumed, .. }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    frames += 1;
                    buf.drain(..consumed);
                }
                Err(_) => break 'outer,
            }
        }
    }
    if let Ok(cap) = &whole {
        assert_eq!(frames, cap.counters.packets);
    }
});
