//! HPACK (RFC 7541): header compression for HTTP/2, decoding side only, with
//! support for joining a connection mid-way (see [`table`]).
//!
//! Why our own decoder and not the `hpack` crate the design card lists: see
//! `BENCHMARKS.md` and the HTTP/2 report; in short, that crate (0.3.0, 2016)
//! panics on hostile input and cannot represent unknown table entries.

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod table;

pub use decoder::{BlockInfo, Decoder, HpackCounters, HpackError};
pub use encoder::Encoder;
