//! `sniff topology`: Go uprobe events in, the four-tuple table out when
//! capture ends.

use std::io::{self, Write};

use super::{
    spans::Tracker,
    topology::{Namer, Topology},
};
use crate::{events::Event, loader::KernelStats, session::Sink};

pub struct TopologySink<W: Write> {
    tracker: Tracker,
    topology: Topology,
    namer: Box<dyn Namer>,
    json: bool,
    out: W,
}

impl<W: Write> TopologySink<W> {
    pub fn new(namer: Box<dyn Namer>, json: bool, out: W) -> Self {
        TopologySink {
            tracker: Tracker::new(),
            topology: Topology::new(),
            namer,
            json,
            out,
        }
    }
}

impl<W: Write> Sink for TopologySink<W> {
    fn event(&mut self, _raw: &[u8], ev: &Event<'_>) -> io::Result<()> {
        match ev {
            Event::GoSpan(s) => {
                if let Some(f) = self.tracker.on_span(s) {
                    self.topology.add(&f, self.namer.as_mut());
                }
            }
            Event::GoGoroutine(g) => self.tracker.on_goroutine(g),
            Event::ProcExit(p) => self.tracker.forget(p.key.tgid),
            _ => {}
        }
        Ok(())
    }

    fn stats(&mut self, _stats: &KernelStats, _malformed: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.json {
            self.topology.write_json(&mut self.out)?;
        } else {
            self.topology.write_text(&mut self.out)?;
        }
        self.out.flush()
    }

    fn summary(&self) -> Option<String> {
        let s = self.tracker.stats;
        (s.returns_without_entry + s.entries_without_return > 0).then(|| {
            format!(
                "Go calls cut by the start or end of capture: {} returns without their entry, {} entries without their return",
                s.returns_without_entry, s.entries_without_return
            )
        })
    }
}
