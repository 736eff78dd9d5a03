//! Before trusting offsets: are the values a probe read through them
//! plausible? The loader feeds each probe's first events through a
//! [`Trust`]; a probe whose values are not plausible is detached, with the
//! reason, instead of reporting garbage.
//!
//! Reading through a wrong offset cannot harm the target (eBPF reads user
//! memory with `bpf_probe_read_user`, which fails safely, and a uprobe
//! changes no register or memory of the process); it can only produce
//! nonsense, which these checks catch.
//!
//! The checks are strict on purpose: a value that a correct offset could
//! produce but that is rare (an extension HTTP method) costs one probe's
//! data until the next run, a wrong offset accepted costs wrong output.

use std::fmt;

/// Methods net/http sends and serves in practice (RFC 9110 section 9,
/// RFC 5789 PATCH, and `PRI` of the HTTP/2 preface).
pub const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI",
];

/// How many events of a probe are checked before it is trusted.
pub const EVENTS_TO_CHECK: u32 = 16;
/// Longest string read through an offset that is plausible for a header
/// value, path or host (the eBPF side also caps what it copies).
pub const MAX_STRING_LEN: u64 = 64 << 10;
/// Goroutine ids count up from 1; a process with 2^40 goroutines created is
/// not something we will see.
pub const MAX_GOID: i64 = 1 << 40;

/// Why a value is not plausible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Implausible {
    /// What was read, e.g. `net/http.Request.Method`.
    pub what: &'static str,
    /// The value, printable.
    pub value: String,
    /// What it should have been.
    pub expected: &'static str,
}

impl fmt::Display for Implausible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} read as {} ({})",
            self.what, self.value, self.expected
        )
    }
}

fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(32)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// `net/http.Request.Method`: one of [`HTTP_METHODS`].
pub fn http_method(what: &'static str, b: &[u8]) -> Result<(), Implausible> {
    if HTTP_METHODS.iter().any(|m| m.as_bytes() == b) {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: show(b),
            expected: "not a known HTTP method",
        })
    }
}

/// A request path (`URL.Path`): empty, `*`, or starting with `/`, with no
/// control characters.
pub fn url_path(what: &'static str, b: &[u8]) -> Result<(), Implausible> {
    let ok = (b.is_empty() || b == b"*" || b.first() == Some(&b'/'))
        && b.len() as u64 <= MAX_STRING_LEN
        && !b.iter().any(|c| c.is_ascii_control());
    if ok {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: show(b),
            expected: "not a URL path",
        })
    }
}

/// A host (`URL.Host`, `Request.Host`, gRPC `:authority`): printable, no
/// spaces, not too long; may be empty.
pub fn host(what: &'static str, b: &[u8]) -> Result<(), Implausible> {
    let ok = b.len() <= 255 && b.iter().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: show(b),
            expected: "not a host name or address",
        })
    }
}

/// A gRPC method (`CallHdr.Method`, `Stream.method`): `/service/method`.
pub fn grpc_method(what: &'static str, b: &[u8]) -> Result<(), Implausible> {
    let ok = b.first() == Some(&b'/')
        && b.iter().filter(|&&c| c == b'/').count() == 2
        && b.len() > 3
        && b.len() <= 1024
        && b.iter().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: show(b),
            expected: "not a gRPC /service/method",
        })
    }
}

/// An HTTP status (`Response.StatusCode`, `response.status`): 100-599, or 0
/// for "not written yet" (net/http then writes 200).
pub fn status(what: &'static str, v: i64) -> Result<(), Implausible> {
    if v == 0 || (100..=599).contains(&v) {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: v.to_string(),
            expected: "not an HTTP status",
        })
    }
}

/// A goroutine id (`runtime.g.goid`): positive and not absurdly large.
pub fn goid(what: &'static str, v: i64) -> Result<(), Implausible> {
    if (1..MAX_GOID).contains(&v) {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: v.to_string(),
            expected: "not a goroutine id",
        })
    }
}

/// A Go string header read through an offset: its length must be sane
/// before its bytes are worth reading.
pub fn string_len(what: &'static str, len: i64) -> Result<(), Implausible> {
    if (0..=MAX_STRING_LEN as i64).contains(&len) {
        Ok(())
    } else {
        Err(Implausible {
            what,
            value: len.to_string(),
            expected: "not a plausible string length",
        })
    }
}

/// What to do with a probe after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still checking its first events.
    Checking,
    /// Its first [`EVENTS_TO_CHECK`] events were all plausible.
    Trusted,
    /// Detach it: the message says which probe and why.
    Detach(String),
}

/// Per-probe trust: every one of the first [`EVENTS_TO_CHECK`] events must
/// be plausible; the first implausible one detaches the probe. After that,
/// implausible events are counted (a torn read of a value being written
/// concurrently can happen) and dropped, not fatal.
#[derive(Clone, Debug)]
pub struct Trust {
    probe: &'static str,
    checked: u32,
    detached: bool,
    /// Implausible events after the probe was trusted.
    pub dropped: u64,
}

impl Trust {
    pub fn new(probe: &'static str) -> Self {
        Self {
            probe,
            checked: 0,
            detached: false,
            dropped: 0,
        }
    }

    /// Record one event's checks (all of them: `Err` if any failed).
    pub fn observe(&mut self, event: Result<(), Implausible>) -> Verdict {
        if self.detached {
            return Verdict::Detach(format!("probe {} already detached", self.probe));
        }
        match event {
            Ok(()) if self.checked < EVENTS_TO_CHECK => {
                self.checked += 1;
                if self.checked == EVENTS_TO_CHECK {
                    Verdict::Trusted
                } else {
                    Verdict::Checking
                }
            }
            Ok(()) => Verdict::Trusted,
            Err(e) if self.checked < EVENTS_TO_CHECK => {
                self.detached = true;
                Verdict::Detach(format!(
                    "probe {} detached: {e}; the struct offsets do not match this binary",
                    self.probe
                ))
            }
            Err(_) => {
                self.dropped += 1;
                Verdict::Trusted
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let w = "net/http.Request.Method";
        assert!(http_method(w, b"GET").is_ok());
        assert!(http_method(w, b"get").is_err());
        assert!(http_method(w, b"\x00\x13G").is_err());
        assert!(http_method(w, b"127.0.0.1:80").is_err());
        assert!(
            url_path(w, b"/a/b").is_ok() && url_path(w, b"").is_ok() && url_path(w, b"*").is_ok()
        );
        assert!(url_path(w, b"HTTP/1.1").is_err() && url_path(w, b"/a\nb").is_err());
        assert!(host(w, b"127.0.0.1:9932").is_ok() && host(w, b"").is_ok());
        assert!(host(w, b"a b").is_err());
        assert!(grpc_method(w, b"/grpc.health.v1.Health/Check").is_ok());
        assert!(grpc_method(w, b"/x").is_err() && grpc_method(w, b"a/b/c").is_err());
        assert!(status(w, 200).is_ok() && status(w, 0).is_ok());
        assert!(status(w, 42).is_err() && status(w, 1 << 33).is_err());
        assert!(goid(w, 1).is_ok() && goid(w, 0).is_err() && goid(w, -5).is_err());
        assert!(string_len(w, 5).is_ok() && string_len(w, -1).is_err());
        let e = http_method(w, b"\x01\x02").unwrap_err().to_string();
        assert_eq!(
            e,
            "net/http.Request.Method read as \"\\u{1}\\u{2}\" (not a known HTTP method)"
        );
    }

    #[test]
    fn trust_detaches_on_the_first_implausible_event() {
        let mut t = Trust::new("http_server");
        for _ in 0..EVENTS_TO_CHECK - 1 {
            assert_eq!(t.observe(Ok(())), Verdict::Checking);
        }
        let bad = || http_method("net/http.Request.Method", b"\x07");
        let mut early = t.clone();
        let Verdict::Detach(msg) = early.observe(bad()) else {
            panic!("not detached")
        };
        assert!(
            msg.starts_with("probe http_server detached: net/http.Request.Method read as"),
            "{msg}"
        );
        assert!(matches!(early.observe(Ok(())), Verdict::Detach(_)));
        assert_eq!(t.observe(Ok(())), Verdict::Trusted);
        assert_eq!(t.observe(bad()), Verdict::Trusted);
        assert_eq!(t.dropped, 1);
    }
}
