//! What the user asked to see of HTTP exchanges: `--proto`, `--method`,
//! `--path`, `--host`, `--status`, `--min-latency`, `--side`. (Pids, process
//! names and ports are filtered in the kernel, before any byte is copied.)

use std::time::Duration;

use protocols::record::{Exchange, Proto, Side};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "--status {0:?}: use a code (404), a class (5xx), a range (400-499), or a comma list; codes have three digits"
    )]
    Status(String),
    #[error(
        "--path {0:?}: a path prefix starts with / (e.g. /api), or * or a scheme (http://...) for those request forms; ~REGEX for a regular expression"
    )]
    PathPrefix(String),
    #[error("--path {0:?}: bad regular expression: {1}")]
    PathRegex(String, String),
    #[error("--min-latency {0:?}: use a number with a unit: 250us, 100ms, 1.5s")]
    Latency(String),
    #[error("--proto {0:?}: use http (all), http1, http2 or grpc")]
    Proto(String),
    #[error("--side {0:?}: use client or server")]
    Side(String),
}

/// Which protocols to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoFilter {
    /// HTTP/1.x and HTTP/2 (gRPC included).
    Http,
    Http1,
    Http2,
    /// HTTP/2 exchanges whose content-type is application/grpc.
    Grpc,
}

impl ProtoFilter {
    pub fn parse(s: &str) -> Result<ProtoFilter, FilterError> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(ProtoFilter::Http),
            "http1" | "http/1" | "http/1.1" => Ok(ProtoFilter::Http1),
            "http2" | "h2" | "http/2" => Ok(ProtoFilter::Http2),
            "grpc" => Ok(ProtoFilter::Grpc),
            _ => Err(FilterError::Proto(s.to_string())),
        }
    }
}

pub fn parse_side(s: &str) -> Result<Side, FilterError> {
    match s.to_ascii_lowercase().as_str() {
        "client" => Ok(Side::Client),
        "server" => Ok(Side::Server),
        _ => Err(FilterError::Side(s.to_string())),
    }
}

#[derive(Clone, Debug)]
pub enum PathMatch {
    Prefix(String),
    Regex(regex::Regex),
}

impl PathMatch {
    /// `/api` is a prefix; `~^/api/v[0-9]+$` (leading `~`) a regular expression.
    pub fn parse(s: &str) -> Result<PathMatch, FilterError> {
        match s.strip_prefix('~') {
            Some(re) => regex::Regex::new(re)
                .map(PathMatch::Regex)
                .map_err(|e| FilterError::PathRegex(s.to_string(), e.to_string())),
            // Request targets (RFC 9112 §3.2) start with "/", or are "*",
            // or absolute (a scheme, for proxies), or an authority
            // (CONNECT): a prefix that is none of these never matches.
            None if s.starts_with('/') || s.starts_with('*') || s.contains("://") => {
                Ok(PathMatch::Prefix(s.to_string()))
            }
            None if s.contains(':') => Ok(PathMatch::Prefix(s.to_string())),
            None => Err(FilterError::PathPrefix(s.to_string())),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Regex(r) => r.is_match(path),
        }
    }
}

/// Inclusive ranges of status codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMatch(Vec<(u16, u16)>);

impl StatusMatch {
    /// `404`, `5xx`, `400-499`, or a comma list of those.
    pub fn parse(s: &str) -> Result<StatusMatch, FilterError> {
        let bad = || FilterError::Status(s.to_string());
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim) {
            let range = if let Some((a, b)) = part.split_once('-') {
                (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                )
            } else if part.len() == 3 && part[1..].eq_ignore_ascii_case("xx") {
                let d = part[..1].parse::<u16>().map_err(|_| bad())?;
                if !(1..=5).contains(&d) {
                    return Err(bad());
                }
                (d * 100, d * 100 + 99)
            } else {
                let code: u16 = part.parse().map_err(|_| bad())?;
                (code, code)
            };
            if range.0 > range.1 || range.0 < 100 || range.1 > 999 {
                return Err(bad());
            }
            ranges.push(range);
        }
        Ok(StatusMatch(ranges))
    }

    fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&status))
    }
}

/// `250us`, `100ms`, `1.5s`, `2m`.
pub fn parse_latency(s: &str) -> Result<Duration, FilterError> {
    let bad = || FilterError::Latency(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => v / 1e9,
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[derive(Clone, Debug)]
pub struct Filters {
    pub proto: ProtoFilter,
    pub methods: Vec<String>,
    pub path: Option<PathMatch>,
    pub hosts: Vec<String>,
    pub status: Option<StatusMatch>,
    pub min_latency: Option<Duration>,
    pub side: Option<Side>,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            proto: ProtoFilter::Http,
            methods: Vec::new(),
            path: None,
            hosts: Vec::new(),
            status: None,
            min_latency: None,
            side: None,
        }
    }
}

impl Filters {
    pub fn matches(&self, ex: &Exchange) -> bool {
        let proto_ok = match self.proto {
            ProtoFilter::Http => true,
            ProtoFilter::Http1 => ex.proto == Proto::Http1,
            ProtoFilter::Http2 => ex.proto == Proto::Http2,
            ProtoFilter::Grpc => ex.grpc.is_some(),
        };
        if !proto_ok {
            return false;
        }
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&ex.method))
        {
            return false;
        }
        if let Some(p) = &self.path
            && !p.matches(&ex.path)
        {
            return false;
        }
        if !self.hosts.is_empty() {
            let Some(authority) = &ex.authority else {
                return false;
            };
            if !self.hosts.iter().any(|h| host_matches(h, authority)) {
                return false;
            }
        }
        if let Some(s) = &self.status {
            match ex.status {
                Some(code) if s.matches(code) => {}
                _ => return false,
            }
        }
        if let Some(min) = self.min_latency {
            match ex.latency_ns() {
                Some(ns) if Duration::from_nanos(ns) >= min => {}
                _ => return false,
            }
        }
        if let Some(side) = self.side
            && ex.side != side
        {
            return false;
        }
        true
    }
}

/// `example.com` matches `example.com` and `example.com:8080`;
/// `example.com:8080` matches only that port. Case-insensitive.
fn host_matches(filter: &str, authority: &str) -> bool {
    if filter.eq_ignore_ascii_case(authority) {
        return true;
    }
    let host = match authority.rsplit_once(':') {
        // Not an IPv6 literal without brackets.
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    filter.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::record::Message;

    fn ex(method: &str, path: &str, status: Option<u16>) -> Box<Exchange> {
        let mut e = Exchange::new(Proto::Http1, Side::Client);
        e.method = method.into();
        e.path = path.into();
        e.status = status;
        e.authority = Some("api.example.com:8080".into());
        e.request.first_ns = 1_000;
        e.response = Some(Message {
            last_ns: 1_000 + 5_000_000,
            ..Message::default()
        });
        e
    }

    #[test]
    fn status_forms() {
        let s = StatusMatch::parse("5xx").unwrap();
        assert!(s.matches(503) && !s.matches(404));
        let s = StatusMatch::parse("404, 400-403").unwrap();
        assert!(s.matches(404) && s.matches(401) && !s.matches(405));
        for bad in ["6xx", "abc", "500-400", "", "1000", "99", "0-199"] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_prefixes_that_can_match() {
        for ok in [
            "/api",
            "*",
            "http://example.com/",
            "example.com:443",
            "~^api",
        ] {
            assert!(PathMatch::parse(ok).is_ok(), "{ok}");
        }
        let err = PathMatch::parse("api").unwrap_err().to_string();
        assert!(err.contains("starts with /"), "{err}");
    }

    #[test]
    fn latency_units() {
        assert_eq!(parse_latency("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_latency("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_latency("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_latency("100").is_err());
        assert!(parse_latency("fast").is_err());
    }

    #[test]
    fn filters_combine() {
        let mut f = Filters::default();
        assert!(f.matches(&ex("GET", "/api/users", Some(200))));
        f.methods = vec!["post".into()];
        assert!(!f.matches(&ex("GET", "/api/users", Some(200))));
        assert!(f.matches(&ex("POST", "/api/users", Some(200))));
        f.path = Some(PathMatch::parse("~^/api/[a-z]+$").unwrap());
        assert!(f.matches(&ex("POST", "/api/users", Some(200))));
        assert!(!f.matches(&ex("POST", "/api/users/7", Some(200))));
        f.path = Some(PathMatch::parse("/api").unwrap());
        f.status = Some(StatusMatch::parse("2xx").unwrap());
        assert!(f.matches(&ex("POST", "/api/users/7", Some(201))));
        assert!(
            !f.matches(&ex("POST", "/api/users/7", None)),
            "no response, no status match"
        );
        f.min_latency = Some(Duration::from_millis(10));
        assert!(!f.matches(&ex("POST", "/api/x", Some(200))), "5 ms < 10 ms");
        f.min_latency = Some(Duration::from_millis(5));
        assert!(f.matches(&ex("POST", "/api/x", Some(200))));
        f.hosts = vec!["API.example.com".into()];
        assert!(f.matches(&ex("POST", "/api/x", Some(200))));
        f.hosts = vec!["api.example.com:9090".into()];
        assert!(!f.matches(&ex("POST", "/api/x", Some(200))));
        f.hosts.clear();
        f.side = Some(Side::Server);
        assert!(!f.matches(&ex("POST", "/api/x", Some(200))));
        assert!(PathMatch::parse("~(").is_err());
    }
}
