#!/usr/bin/python3
"""Print the HPACK Huffman code (RFC 7541 Appendix B) as a Rust array.

The (code, length) pairs are the RFC's table; python3-hpack (Debian) carries
the same data, so we read it from there instead of retyping 257 rows.
`huffman.rs` checks the result is a canonical prefix code and round-trips it.
Usage: gen_huffman_table.py > /tmp/table.rs  (then paste into huffman.rs)
"""
import hpack.huffman_constants as h

codes, lens = h.REQUEST_CODES, h.REQUEST_CODES_LENGTH
assert len(codes) == len(lens) == 257
print("pub(crate) const CODES: [(u32, u8); 257] = [")
for sym, (c, n) in enumerate(zip(codes, lens)):
    print(f"    (0x{c:08x}, {n}), // {sym}")
print("];")
