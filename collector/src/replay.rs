//! `sniff replay FILE`: a `sniff record` file, or a pcap/pcapng capture,
//! through the same pipeline as live capture.
//!
//! A pcap has no processes: each TCP connection is shown from its client's
//! side (the SYN sender, or the higher port), as process `pcap` with pid 0
//! and the connection's number as fd.

use std::{
    io::{self, BufWriter, Write},
    path::Path,
};

use anyhow::{Context as _, bail};
use protocols::{
    conn::Config as ConnConfig,
    pcap::{Capture, Dir},
    record::Direction,
};

use crate::{
    events::{self, Common, Conn, ConnKey, Data, Event, Role},
    filter::Filters,
    pipeline::{IDLE_FLUSH_NS, Input, Pipeline},
    recording::{self, Record},
    render::Renderer,
};

pub fn run(
    file: &Path,
    filters: &Filters,
    renderer: impl Fn(i128) -> anyhow::Result<Renderer>,
) -> anyhow::Result<()> {
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let result = if data.starts_with(recording::MAGIC) {
        replay_recording(&data, filters, &renderer, out)
    } else if is_pcap(&data) {
        replay_pcap(&data, filters, &renderer, out)
    } else {
        bail!(
            "{} is not a sniff recording, pcap or pcapng file",
            file.display()
        );
    };
    match result {
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn is_pcap(data: &[u8]) -> bool {
    let Some(m) = data.get(..4) else {
        return false;
    };
    matches!(
        m,
        [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x0a, 0x0d, 0x0d, 0x0a]
    )
}

fn replay_recording<W: Write>(
    data: &[u8],
    filters: &Filters,
    renderer: &impl Fn(i128) -> anyhow::Result<Renderer>,
    out: W,
) -> anyhow::Result<()> {
    let mut reader = recording::Reader::new(data)?;
    let renderer = renderer(reader.header.clock_offset_ns as i128)?;
    let mut pipeline = Pipeline::new(ConnConfig::default(), filters.clone(), renderer, out);
    let mut last_ns = 0u64;
    let mut malformed = 0u64;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Event(raw) => match events::parse(&raw) {
                Ok(ev) => {
                    last_ns = last_ns.max(event_ts(&ev));
                    pipeline.input(&Input::Event(&ev))?;
                }
                Err(_) => malformed += 1,
            },
            Record::Meta(m) => pipeline.input(&Input::Meta(&m))?,
            Record::Tick(now) => {
                last_ns = last_ns.max(now);
                pipeline.input(&Input::Tick(now))?;
            }
        }
    }
    pipeline.finish(last_ns)?;
    report(&pipeline, malformed);
    if let Some(at) = reader.cut_short() {
        eprintln!(
            "sniff: the recording ends inside a record at byte {at} (cut short, e.g. sniff \
             was killed): everything before it was replayed"
        );
    }
    Ok(())
}

fn event_ts(ev: &Event<'_>) -> u64 {
    ev.ts_ns()
}

fn report<W: Write>(pipeline: &Pipeline<W>, malformed: u64) {
    let p = pipeline.stats();
    eprintln!(
        "sniff: replayed {} connections, {} exchanges ({} shown){}{}",
        p.connections,
        p.exchanges,
        p.shown,
        if p.lost_bytes > 0 {
            format!("; {} bytes missing from the capture", p.lost_bytes)
        } else {
            String::new()
        },
        if malformed > 0 {
            format!("; {malformed} malformed records skipped")
        } else {
            String::new()
        }
    );
}

fn replay_pcap<W: Write>(
    data: &[u8],
    filters: &Filters,
    renderer: &impl Fn(i128) -> anyhow::Result<Renderer>,
    out: W,
) -> anyhow::Result<()> {
    let capture = Capture::decode(data).map_err(|e| anyhow::anyhow!("reading the capture: {e}"))?;
    // pcap timestamps are Unix time already.
    let mut pipeline = Pipeline::new(ConnConfig::default(), filters.clone(), renderer(0)?, out);
    let key = |id: usize| ConnKey {
        tgid: 0,
        fd: id as i32,
        generation: 1,
    };
    let common = |id: usize, ts_ns: u64| Common {
        key: key(id),
        tid: 0,
        ts_ns,
        comm: "pcap".into(),
    };
    // Each connection's last segment, to close it there.
    let mut last_segment = vec![usize::MAX; capture.connections.len()];
    for (i, s) in capture.segments.iter().enumerate() {
        last_segment[s.conn.index()] = i;
    }
    let mut announced = vec![false; capture.connections.len()];
    let mut last_tick = 0u64;
    for (i, s) in capture.segments.iter().enumerate() {
        let id = s.conn.index();
        let Some(c) = capture.connections.get(id) else {
            continue;
        };
        if s.ts_ns >= last_tick + IDLE_FLUSH_NS / 10 {
            pipeline.input(&Input::Tick(s.ts_ns))?;
            last_tick = s.ts_ns;
        }
        if !announced[id] {
            announced[id] = true;
            let conn = Event::Conn(Conn {
                common: common(id, s.ts_ns),
                family: if c.client.is_ipv4() {
                    events::AF_INET
                } else {
                    events::AF_INET6
                },
                sock_type: 1,
                role: Role::Client,
                tcp_state: 1,
                // Seen from its first byte when the handshake was captured;
                // otherwise joined mid-way.
                syscall: if c.syn[0] {
                    Some(probe_common::Syscall::Connect)
                } else {
                    None
                },
                ret: 0,
                local: Some(c.client),
                remote: Some(c.server),
            });
            pipeline.input(&Input::Event(&conn))?;
        }
        if s.wire_len > 0 {
            let data = Event::Data(Data {
                common: common(id, s.ts_ns),
                enter_ns: s.ts_ns,
                syscall: None,
                direction: match s.dir {
                    Dir::ToServer => Direction::Egress,
                    Dir::ToClient => Direction::Ingress,
                },
                pos: s.pos,
                syscall_len: s.wire_len,
                chunk_offset: 0,
                last: true,
                truncated: s.cut(),
                read_failed: false,
                payload: s.payload,
            });
            pipeline.input(&Input::Event(&data))?;
        }
        if last_segment[id] == i {
            let close = Event::Close(events::Close {
                common: common(id, s.ts_ns),
                egress_bytes: c.end[0],
                ingress_bytes: c.end[1],
            });
            pipeline.input(&Input::Event(&close))?;
        }
    }
    let end = capture.segments.last().map_or(0, |s| s.ts_ns);
    pipeline.finish(end)?;
    let n = capture.counters;
    if let Some(stop) = &capture.stopped {
        eprintln!("sniff: the capture ends early: {stop}");
    }
    if n.fragments + n.malformed + n.truncated + n.unknown_link > 0 {
        eprintln!(
            "sniff: capture: {} packets, {} not TCP, {} IP fragments skipped, {} malformed, {} cut by the snap length",
            n.packets, n.non_tcp, n.fragments, n.malformed, n.truncated
        );
    }
    report(&pipeline, 0);
    Ok(())
}
