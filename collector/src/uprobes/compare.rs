//! `sniff compare`: the report of [`super::join::compare`] for people.

use std::io::{self, Write};

use protocols::record::Side;

use super::join::{GoCall, KernelView, Report};
use crate::render::latency_human;

/// How many of each kind of difference are listed (all are counted).
const LIST_MAX: usize = 20;

fn side(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

fn kernel_line(k: &KernelView) -> String {
    format!(
        "pid {} {} {} {} {} → {}",
        k.tgid,
        side(k.side),
        k.proto,
        k.method,
        k.target,
        k.status.map_or_else(|| "-".to_string(), |s| s.to_string())
    )
}

fn call_line(c: &GoCall) -> String {
    format!(
        "pid {} {} goroutine {} {} {} (host {}) → {}{}",
        c.tgid,
        side(c.side),
        c.goid,
        c.method,
        c.path,
        c.host,
        if c.error {
            "error".to_string()
        } else {
            c.status.map_or_else(|| "-".to_string(), |s| s.to_string())
        },
        c.end_ns
            .map(|e| format!("  {}", latency_human(e.saturating_sub(c.start_ns))))
            .unwrap_or_default()
    )
}

/// Writes the report; the last line is the verdict.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let list = |out: &mut dyn Write, title: &str, lines: Vec<String>| -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        writeln!(out, "{title} ({}):", lines.len())?;
        for l in lines.iter().take(LIST_MAX) {
            writeln!(out, "  {l}")?;
        }
        if lines.len() > LIST_MAX {
            writeln!(out, "  ... and {} more", lines.len() - LIST_MAX)?;
        }
        Ok(())
    };
    list(
        out,
        "seen by syscalls only",
        report.only_syscalls.iter().map(kernel_line).collect(),
    )?;
    list(
        out,
        "seen by uprobes only",
        report.only_uprobes.iter().map(call_line).collect(),
    )?;
    list(
        out,
        "field mismatches",
        report
            .mismatches
            .iter()
            .map(|m| {
                format!(
                    "{}: {} syscalls {:?}, uprobes {:?}",
                    kernel_line(&m.kernel),
                    m.field,
                    m.syscalls,
                    m.uprobes
                )
            })
            .collect(),
    )?;
    writeln!(
        out,
        "{}: {} matched, {} only in syscalls, {} only in uprobes, {} field mismatches",
        if report.agrees() { "agree" } else { "DISAGREE" },
        report.matched,
        report.only_syscalls.len(),
        report.only_uprobes.len(),
        report.mismatches.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_line_and_lists() {
        let mut out = Vec::new();
        write(
            &Report {
                matched: 3,
                ..Report::default()
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "agree: 3 matched, 0 only in syscalls, 0 only in uprobes, 0 field mismatches\n"
        );
        let k = KernelView {
            tgid: 4,
            side: Side::Server,
            method: "GET".into(),
            target: "/x".into(),
            authority: None,
            status: Some(200),
            start_ns: 0,
            proto: "http1",
            stream_id: None,
            grpc_status: None,
        };
        let mut out = Vec::new();
        write(
            &Report {
                matched: 0,
                only_syscalls: vec![k; 25],
                ..Report::default()
            },
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("seen by syscalls only (25):\n  pid 4 server http1 GET /x → 200\n")
        );
        assert!(text.contains("... and 5 more"));
        assert!(text.ends_with(
            "DISAGREE: 0 matched, 25 only in syscalls, 0 only in uprobes, 0 field mismatches\n"
        ));
    }
}
