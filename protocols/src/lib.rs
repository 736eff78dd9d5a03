//! Sans-IO protocol reconstruction: bytes and stream positions in, records out.
//!
//! This crate knows nothing about eBPF, sockets or async runtimes. Live capture
//! (`collector`) and replays of recorded sessions feed it through the same entry
//! points, so everything here is tested without a kernel.

pub mod http2;
pub mod record;
