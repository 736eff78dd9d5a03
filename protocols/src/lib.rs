//! Sans-IO protocol reconstruction: bytes and stream positions in, records out.
//!
//! This crate knows nothing about eBPF, sockets or async runtimes. Live capture
//! (`collector`) and replays of recorded sessions feed it through the same entry
//! points, so everything here is tested without a kernel.
//!
//! Start at [`conn::Connection`]: one per TCP connection, fed the bytes of
//! both directions with their stream positions. It reassembles each
//! direction ([`stream::DataStream`]), detects the protocol and returns
//! [`record::Exchange`]s ([`http1`] for HTTP/1.x).

pub mod conn;
pub mod http1;
pub mod http2;
pub mod pcap;
pub mod record;
pub mod stream;
