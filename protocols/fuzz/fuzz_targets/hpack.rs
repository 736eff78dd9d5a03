//! HPACK decoder on hostile input: header blocks fed in arbitrary fragments,
//! full-view and late-join decoders. Must never panic; every stored field
//! is within the caps; unknown fields carry the placeholder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::http2::hpack::Decoder;
use protocols::record::{FIELD_UNKNOWN, Headers};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut d = if mode & 1 == 0 {
        Decoder::new(1 << 16)
    } else {
        Decoder::new_late(1 << 16, 4096)
    };
    if mode & 2 != 0 {
        d.settings_table_size(65536);
    }
    d.set_list_caps(2048, 64);
    // Blocks are separated by 0xfe 0xfe; within a block, 0xfd splits fragments.
    for block in rest.split(|&b| b == 0xfe) {
        let mut out = Headers::new();
        d.begin_block();
        for frag in block.split(|&b| b == 0xfd) {
            d.feed(frag, &mut out);
        }
        let info = d.end_block();
        assert!(out.len() <= 64);
        assert!(out.byte_len() <= 2048);
        assert!(info.unknown as usize <= info.fields as usize);
        for (n, v, f) in out.iter() {
            if f & FIELD_UNKNOWN != 0 {
                assert!(n.starts_with(b"<unknown") || v.starts_with(b"<unknown"));
            }
        }
        if mode & 4 != 0 {
            d.forget();
        }
    }
});
