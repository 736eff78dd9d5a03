//! The client's own account of what it did (curl `-w '%{json}'`, our peers'
//! JSON lines, a fixture's `<name>.json`), and the check that sniff's
//! exchanges say the same: the same requests, no more and no fewer, with
//! the same methods, paths, statuses and body sizes.

use std::collections::HashSet;

pub use fixtures::Exchange as Did;
use serde_json::Value;

/// The port of an `ip:port` / `[v6]:port` field.
pub fn port(v: &Value) -> Option<u16> {
    v.as_str()?.rsplit(':').next()?.parse().ok()
}

/// The client's port of an exchange, whichever side reported it.
pub fn client_port(ex: &Value) -> Option<u16> {
    match ex["side"].as_str() {
        Some("client") => port(&ex["local"]),
        Some("server") => port(&ex["remote"]),
        _ => None,
    }
}

pub fn flags(ex: &Value) -> Vec<&str> {
    ex["flags"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn has_flag(ex: &Value, flag: &str) -> bool {
    flags(ex).contains(&flag)
}

/// The HTTP/1.1 half of an h2c upgrade: the `101 Switching Protocols`
/// answer to the request that HTTP/2 stream 1 then answers for real.
pub fn is_upgrade_record(ex: &Value) -> bool {
    ex["status"] == 101 && has_flag(ex, "upgrade")
}

/// One line of curl's `-w '%{json}'` as the client's account.
pub fn from_curl(j: &Value) -> Did {
    let url = j["url_effective"].as_str().expect("url_effective");
    // scheme://authority/path?query -> /path?query
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme
        .find('/')
        .map_or("/", |i| &after_scheme[i..])
        .to_string();
    Did {
        method: j["method"].as_str().expect("method").to_string(),
        path,
        status: j["response_code"].as_u64().map(|s| s as u16),
        request_body: j["size_upload"].as_u64().expect("size_upload"),
        response_body: j["size_download"].as_u64().expect("size_download"),
        client_port: j["local_port"].as_u64().map(|p| p as u16),
        stream_id: None,
        http_version: j["http_version"].as_str().map(String::from),
        interim: Vec::new(),
        trailers: Vec::new(),
        grpc: None,
    }
}

/// The protocol sniff must report for what the client did.
fn want_proto(did: &Did) -> &'static str {
    if did.http_version.as_deref() == Some("2") || did.grpc.is_some() || did.stream_id.is_some() {
        "http2"
    } else {
        "http1"
    }
}

/// How sniff's exchanges must relate to the client's account.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The requests of one connection come out in the order the client
    /// made them (HTTP/1, pipelined or not). Otherwise (HTTP/2) they are
    /// paired by connection, path and stream id, in any order.
    pub ordered: bool,
    /// The capture itself lost bytes (a snap length): exchanges flagged
    /// `gap` (and `truncated`, `resynced`, `incomplete`) may show shorter
    /// bodies than the client got, never longer.
    pub lossy_capture: bool,
    /// Flags allowed besides those the scenario explains (`upgrade` on an
    /// h2c upgrade; with `lossy_capture`, `gap`, `resynced`, `incomplete`).
    pub extra_flags: &'static [&'static str],
    /// The side every exchange must be reported from.
    pub side: &'static str,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            ordered: true,
            lossy_capture: false,
            extra_flags: &[],
            side: "client",
        }
    }
}

fn summary(ex: &Value) -> String {
    format!(
        "{} {} {} -> {} (req {} resp {}) port {:?} stream {} flags {:?}",
        ex["proto"],
        ex["method"],
        ex["path"],
        ex["status"],
        ex["req_body_len"],
        ex["resp_body_len"],
        client_port(ex),
        ex["stream_id"],
        flags(ex)
    )
}

fn did_summary(d: &Did) -> String {
    format!(
        "{} {} -> {:?} (req {} resp {}) port {:?} stream {:?}",
        d.method, d.path, d.status, d.request_body, d.response_body, d.client_port, d.stream_id
    )
}

/// Pairs each exchange sniff reported with the client's account of it, and
/// panics (saying what differs) unless they are the same requests, no more
/// and no fewer, with the same methods, paths, statuses, body sizes,
/// interim statuses, trailers and gRPC outcome, and no flag the scenario
/// does not explain. Returns the pairs, in the client's order, for the
/// caller's own checks (pids, peers, addresses).
pub fn check<'a>(
    what: &str,
    got: &'a [Value],
    did: &'a [Did],
    rules: Rules,
) -> Vec<(&'a Did, &'a Value)> {
    let listing = || {
        let g: Vec<String> = got.iter().map(summary).collect();
        let d: Vec<String> = did.iter().map(did_summary).collect();
        format!(
            "\n  sniff reported:\n    {}\n  the client did:\n    {}",
            g.join("\n    "),
            d.join("\n    ")
        )
    };
    for ex in got {
        assert_eq!(ex["type"], "exchange", "{what}: not an exchange: {ex}");
        assert_eq!(
            ex["side"],
            rules.side,
            "{what}: reported from the wrong side: {}",
            summary(ex)
        );
    }
    // The 101 halves of h2c upgrades: each belongs to one upgraded request.
    let (upgrades, main): (Vec<&Value>, Vec<&Value>) =
        got.iter().partition(|e| is_upgrade_record(e));
    let mut upgraded: HashSet<usize> = HashSet::new();
    for u in &upgrades {
        let i = did
            .iter()
            .enumerate()
            .position(|(i, d)| {
                !upgraded.contains(&i)
                    && d.interim.contains(&101)
                    && d.method == u["method"]
                    && d.path == u["path"]
                    && d.client_port.is_none_or(|p| client_port(u) == Some(p))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{what}: an upgrade the client did not ask for: {}{}",
                    summary(u),
                    listing()
                )
            });
        upgraded.insert(i);
    }
    assert_eq!(
        main.len(),
        did.len(),
        "{what}: sniff reported {} exchanges, the client made {}{}",
        main.len(),
        did.len(),
        listing()
    );

    let mut used = vec![false; main.len()];
    let mut pairs = Vec::with_capacity(did.len());
    for (i, d) in did.iter().enumerate() {
        let same_conn = |e: &Value| d.client_port.is_none_or(|p| client_port(e) == Some(p));
        let j = if rules.ordered {
            // The next unreported exchange of this connection must be this one.
            let j = (0..main.len())
                .find(|&j| !used[j] && same_conn(main[j]))
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: nothing reported for {}{}",
                        did_summary(d),
                        listing()
                    )
                });
            assert!(
                main[j]["method"] == d.method.as_str() && main[j]["path"] == d.path.as_str(),
                "{what}: expected {} next on its connection, sniff reported {}{}",
                did_summary(d),
                summary(main[j]),
                listing()
            );
            j
        } else {
            (0..main.len())
                .find(|&j| {
                    let e = main[j];
                    !used[j]
                        && same_conn(e)
                        && e["method"] == d.method.as_str()
                        && e["path"] == d.path.as_str()
                        && d.stream_id.is_none_or(|s| e["stream_id"] == s)
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: nothing reported for {}{}",
                        did_summary(d),
                        listing()
                    )
                })
        };
        used[j] = true;
        let e = main[j];
        let w = format!("{what}: {}", did_summary(d));
        let fl = flags(e);

        assert_eq!(e["proto"], want_proto(d), "{w}: {}", summary(e));
        match d.http_version.as_deref() {
            Some("2") => assert_eq!(e["version"], "HTTP/2", "{w}"),
            Some(_) => assert!(
                e["version"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("HTTP/1.")),
                "{w}: {}",
                e["version"]
            ),
            None => {}
        }
        if let Some(s) = d.stream_id {
            assert_eq!(e["stream_id"], s, "{w}");
        }
        if let Some(s) = d.status {
            assert_eq!(e["status"], s, "{w}: {}", summary(e));
        }
        let lossy = rules.lossy_capture && fl.contains(&"gap");
        for (field, want) in [
            ("req_body_len", d.request_body),
            ("resp_body_len", d.response_body),
        ] {
            let n = e[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{w}: no {field}: {}", summary(e)));
            if lossy {
                assert!(
                    n <= want,
                    "{w}: {field} {n} is more than the client's {want}"
                );
            } else {
                assert_eq!(n, want, "{w}: {field}: {}", summary(e));
            }
        }
        if want_proto(d) == "http1" {
            let interim: Vec<u64> = e["interim"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let want: Vec<u64> = d.interim.iter().map(|&c| c as u64).collect();
            assert_eq!(interim, want, "{w}: interim statuses");
        }
        if d.interim.contains(&101) {
            assert!(
                upgraded.contains(&i)
                    || fl.contains(&"upgrade")
                    || e["interim"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|c| c == 101)),
                "{w}: the h2c upgrade is not shown: {}",
                summary(e)
            );
        }
        for t in &d.trailers {
            let names: Vec<&str> = e["resp_trailers"]
                .as_array()
                .map(|a| a.iter().filter_map(|kv| kv[0].as_str()).collect())
                .unwrap_or_default();
            assert!(
                names.iter().any(|n| n.eq_ignore_ascii_case(t)),
                "{w}: trailer {t} missing from {names:?}"
            );
        }
        match &d.grpc {
            Some(g) => {
                let eg = &e["grpc"];
                assert!(eg.is_object(), "{w}: no gRPC call reported: {}", summary(e));
                assert_eq!(eg["service"], g.service.as_str(), "{w}");
                assert_eq!(eg["method"], g.method.as_str(), "{w}");
                assert_eq!(eg["kind"], g.kind.as_str(), "{w}");
                assert_eq!(eg["req_messages"], g.requests, "{w}");
                assert_eq!(eg["resp_messages"], g.responses, "{w}");
                assert_eq!(eg["status"], g.status, "{w}");
                assert_eq!(e["grpc_status"], g.status, "{w}");
                assert_eq!(eg["message"].as_str(), g.message.as_deref(), "{w}");
            }
            None => assert!(e["grpc"].is_null(), "{w}: not gRPC: {}", e["grpc"]),
        }
        for f in &fl {
            let explained = (*f == "upgrade" && d.interim.contains(&101))
                || (rules.lossy_capture
                    && ["truncated", "gap", "resynced", "incomplete"].contains(f))
                || rules.extra_flags.contains(f);
            assert!(
                explained,
                "{w}: flag {f:?} the client's account does not explain: {}",
                summary(e)
            );
        }
        pairs.push((d, e));
    }
    pairs
}
