//! HPACK (RFC 7541): header compression for HTTP/2, decoding side only, with
//! support for joining a connection mid-way (see [`table`]).
//!
//! Why our own decoder and not the `hpack` crate the design card lists
//! (`tests/data/http2/tools/hpack_crate_eval/` reproduces this): `hpack`
//! 0.3.0 (2016) decodes all of RFC 7541 Appendix C correctly, but panics on
//! hostile input (a dynamic table size update whose integer overflows hits
//! an `unwrap()`; 174 panics in 200 000 random inputs of up to 24 octets),
//! accepts any table size an encoder announces, allocates two `Vec`s per
//! field, has no never-indexed flag in its output, and has no way to say
//! "this entry is unknown" after a late join. This decoder passes Appendix C,
//! runs clean under fuzzing, and supports joining mid-way.

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod table;

pub use decoder::{BlockInfo, Decoder, HpackCounters, HpackError};
pub use encoder::Encoder;
