//! The `sniff record` file format: the raw kernel records exactly as read
//! from the ring buffer, plus the metadata and clock ticks the live pipeline
//! consumed, in order. `sniff replay` feeds them through the same pipeline,
//! so it prints what the live run printed. Documented in
//! docs/recording-format.md.
//!
//! ```text
//! file    = magic "SNIFFREC" | version u32le (=1) | header_len u32le | header (JSON)
//!           record*
//! record  = tag u8 | len u32le | payload[len]
//! tag 1   = kernel event (a ring-buffer record, see probe-common)
//! tag 2   = metadata (JSON, see pipeline::MetaUpdate)
//! tag 3   = tick: u64le capture-clock ns
//! ```

use std::io::{self, BufWriter, Read, Write};

use serde::{Deserialize, Serialize};

use crate::pipeline::MetaUpdate;

pub const MAGIC: &[u8; 8] = b"SNIFFREC";
pub const VERSION: u32 = 1;
const TAG_EVENT: u8 = 1;
const TAG_META: u8 = 2;
const TAG_TICK: u8 = 3;
/// No record is bigger than one ring-buffer event (header + 32 KiB) or a
/// metadata line; anything claiming more is corruption.
const MAX_RECORD: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("not a sniff recording (bad magic)")]
    Magic,
    #[error("recording format version {0} is not supported (this sniff reads version {VERSION})")]
    Version(u32),
    #[error("recording header is not valid JSON: {0}")]
    Header(String),
    #[error("record at byte {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// First thing in a recording.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Add to capture-clock (CLOCK_MONOTONIC) ns to get Unix ns.
    pub clock_offset_ns: i64,
    pub sniff_version: String,
    pub kernel: String,
    pub hostname: String,
    /// The command line that made it.
    pub args: Vec<String>,
}

pub struct Writer<W: Write> {
    out: BufWriter<W>,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, header: &Header) -> io::Result<Writer<W>> {
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let json = serde_json::to_vec(header)?;
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        let written = 16 + json.len() as u64;
        Ok(Writer { out, written })
    }

    fn record(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        self.out.write_all(&[tag])?;
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(payload)?;
        self.written += 5 + payload.len() as u64;
        Ok(())
    }

    pub fn event(&mut self, raw: &[u8]) -> io::Result<()> {
        self.record(TAG_EVENT, raw)
    }

    pub fn meta(&mut self, m: &MetaUpdate) -> io::Result<()> {
        let json = serde_json::to_vec(m)?;
        self.record(TAG_META, &json)
    }

    pub fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        self.record(TAG_TICK, &now_ns.to_le_bytes())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Event(Vec<u8>),
    Meta(MetaUpdate),
    Tick(u64),
}

pub struct Reader<R: Read> {
    input: R,
    offset: u64,
    pub header: Header,
    /// Offset of a last record cut short by the end of the file.
    cut_short: Option<u64>,
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Reader<R>, RecordingError> {
        let mut fixed = [0u8; 16];
        input
            .read_exact(&mut fixed)
            .map_err(|_| RecordingError::Magic)?;
        if &fixed[..8] != MAGIC {
            return Err(RecordingError::Magic);
        }
        let version = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        if version != VERSION {
            return Err(RecordingError::Version(version));
        }
        let len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
        if len > MAX_RECORD {
            return Err(RecordingError::Header(format!("{len} bytes is too long")));
        }
        let mut json = vec![0u8; len as usize];
        input
            .read_exact(&mut json)
            .map_err(|e| RecordingError::Header(e.to_string()))?;
        let header =
            serde_json::from_slice(&json).map_err(|e| RecordingError::Header(e.to_string()))?;
        Ok(Reader {
            input,
            offset: 16 + len as u64,
            header,
            cut_short: None,
        })
    }

    /// The next record; `Ok(None)` at the end. A record cut short by the
    /// end of the file (a recording stopped by SIGKILL) also ends it; see
    /// [`Reader::cut_short`].
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordingError> {
        let mut head = [0u8; 5];
        match read_full(&mut self.input, &mut head)? {
            0 => return Ok(None),
            5 => {}
            _ => {
                self.cut_short = Some(self.offset);
                return Ok(None);
            }
        }
        let at = self.offset;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD {
            return Err(RecordingError::Corrupt {
                offset: at,
                what: format!("length {len} is too large"),
            });
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.input, &mut payload)? < payload.len() {
            self.cut_short = Some(at);
            return Ok(None);
        }
        self.offset += 5 + len as u64;
        let corrupt = |what: String| RecordingError::Corrupt { offset: at, what };
        Ok(Some(match head[0] {
            TAG_EVENT => Record::Event(payload),
            TAG_META => Record::Meta(
                serde_json::from_slice(&payload).map_err(|e| corrupt(format!("metadata: {e}")))?,
            ),
            TAG_TICK => {
                let b: [u8; 8] = payload
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("tick is not 8 bytes".into()))?;
                Record::Tick(u64::from_le_bytes(b))
            }
            t => return Err(corrupt(format!("unknown tag {t}"))),
        }))
    }
}

impl<R: Read> Reader<R> {
    /// Where the file ended inside a record, if it did (offset of that
    /// record): everything before it was read.
    pub fn cut_short(&self) -> Option<u64> {
        self.cut_short
    }
}

/// Reads until `buf` is full or the input ends; returns bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Peer;

    fn header() -> Header {
        Header {
            clock_offset_ns: 1_700_000_000_000_000_000,
            sniff_version: "0.1.0".into(),
            kernel: "6.18".into(),
            hostname: "box".into(),
            args: vec!["sniff".into(), "record".into()],
        }
    }

    #[test]
    fn round_trip() {
        let meta = MetaUpdate {
            pid: 1,
            fd: 2,
            generation: 3,
            peer: Some(Peer {
                pid: 9,
                comm: "nginx".into(),
            }),
            ..MetaUpdate::default()
        };
        let mut buf = Vec::new();
        {
            let mut w = Writer::new(&mut buf, &header()).unwrap();
            w.event(b"raw-bytes").unwrap();
            w.meta(&meta).unwrap();
            w.tick(42).unwrap();
            w.flush().unwrap();
        }
        let mut r = Reader::new(&buf[..]).unwrap();
        assert_eq!(r.header, header());
        assert_eq!(
            r.next_record().unwrap(),
            Some(Record::Event(b"raw-bytes".to_vec()))
        );
        assert_eq!(r.next_record().unwrap(), Some(Record::Meta(meta)));
        assert_eq!(r.next_record().unwrap(), Some(Record::Tick(42)));
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(r.cut_short(), None);
        // Cut inside the last record (its 5-byte head, or its payload):
        // reading ends there, and the reader says where.
        let tick_at = (buf.len() - 13) as u64;
        for cut_by in [3, 10] {
            let cut = &buf[..buf.len() - cut_by];
            let mut r = Reader::new(cut).unwrap();
            let mut n = 0;
            while r.next_record().unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, 2);
            assert_eq!(r.cut_short(), Some(tick_at), "cut by {cut_by}");
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(
            Reader::new(&b"GIF89a........"[..]),
            Err(RecordingError::Magic)
        ));
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Reader::new(&v[..]),
            Err(RecordingError::Version(7))
        ));
        let mut buf = Vec::new();
        Writer::new(&mut buf, &header()).unwrap().flush().unwrap();
        let mut w = buf.clone();
        w.extend_from_slice(&[9, 1, 0, 0, 0, 0]);
        let mut r = Reader::new(&w[..]).unwrap();
        assert!(matches!(
            r.next_record(),
            Err(RecordingError::Corrupt { .. })
        ));
    }
}
