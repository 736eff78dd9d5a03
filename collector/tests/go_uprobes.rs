//! Go uprobes on real Go programs of ours (Go 1.19 from Debian, built by
//! the test set-up): the service four-tuple of `sniff topology`, linking
//! across goroutines, stripped binaries, programs started after sniff.
//!
//! As root; without it (or without `go`) a test says why and returns,
//! except under `CI=true`, where it fails.

mod common;

use std::{collections::BTreeMap, path::Path, time::Duration};

use common::{
    Output, Sniff, can_load_ebpf,
    go::{GoProc, build, get, go_available},
    serial,
};

type Tuple = (String, String, String, String);

/// The JSON rows of `sniff topology --json`: tuple → (count, errors), and
/// p50 <= p99 for each.
fn tuples(out: &Output) -> BTreeMap<Tuple, (u64, u64)> {
    assert!(out.status.success(), "sniff failed:\n{}", out.stderr);
    let mut map = BTreeMap::new();
    for line in &out.lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {v}"))
                .to_string()
        };
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        assert!(n("p50_ns") <= n("p99_ns"), "{v}");
        assert!(n("p99_ns") > 0, "{v}");
        let key = (s("caller"), s("caller_func"), s("callee"), s("callee_func"));
        assert!(map.insert(key, (n("count"), n("errors"))).is_none(), "{v}");
    }
    map
}

/// Asserts that `sniff topology --json` gave exactly these rows:
/// (caller, caller_func, callee, callee_func, count, errors).
fn assert_tuples(out: &Output, want: &[(&str, &str, &str, &str, u64, u64)]) {
    let want: BTreeMap<Tuple, (u64, u64)> = want
        .iter()
        .map(|&(caller, func, callee, callee_func, count, errors)| {
            let key = (
                caller.into(),
                func.into(),
                callee.into(),
                callee_func.into(),
            );
            (key, (count, errors))
        })
        .collect();
    assert_eq!(tuples(out), want, "stderr:\n{}", out.stderr);
}

/// The `--json` records of one `type` in sniff's output (every line must
/// be JSON).
fn records(out: &Output, kind: &str) -> Vec<serde_json::Value> {
    out.lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"))
        })
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Asserts that `sniff compare` exited 0 with `summary` as its last line.
fn assert_agree(out: &Output, summary: &str) {
    let text = out.lines.join("\n");
    assert!(
        out.status.success(),
        "compare failed:\n{text}\n{}",
        out.stderr
    );
    assert_eq!(
        out.lines.last().map(String::as_str),
        Some(summary),
        "{text}"
    );
}

/// Starts `sniff topology --json ARGS` and waits until it says it attached
/// to `exe`.
fn topology_attached_to(exe: &Path, args: &[&str]) -> Sniff {
    let mut all = vec!["topology", "--json"];
    all.extend_from_slice(args);
    attached_to(exe, &all)
}

/// Starts `sniff ARGS` and waits until it says it attached to `exe`.
fn attached_to(exe: &Path, all: &[&str]) -> Sniff {
    let sniff = Sniff::start(all);
    wait_attached(sniff, exe)
}

/// Waits until `sniff` says it attached to `exe`.
fn wait_attached(mut sniff: Sniff, exe: &Path) -> Sniff {
    let name = exe.display().to_string();
    assert!(
        sniff.wait_for_stderr(Duration::from_secs(30), |l| {
            l.contains("Go uprobes attached to") && l.contains(&name)
        }),
        "sniff did not attach to {name}:\n{}",
        sniff.stop().stderr
    );
    sniff
}

fn ready() -> bool {
    can_load_ebpf() && go_available()
}

/// The seed's demo: a gin server whose /handle calls its own /echo, on
/// 127.0.0.1:9932 (or any free port if that one is taken). 100 concurrent
/// /handle give exactly the two tuples, 100 times each.
#[test]
fn seed_demo_100_concurrent_requests_give_exact_tuples() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("gin", "full", "demo", &[]);
    let addr = if std::net::TcpListener::bind("127.0.0.1:9932").is_ok() {
        "127.0.0.1:9932"
    } else {
        "127.0.0.1:0"
    };
    let demo = GoProc::start(&exe, &[addr]);
    let pid = demo.pid().to_string();
    let sniff = topology_attached_to(&exe, &["--pid", &pid]);

    let threads: Vec<_> = (0..100)
        .map(|_| {
            let addr = demo.addr.clone();
            std::thread::spawn(move || get(&addr, "/handle"))
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap(), 200);
    }
    let out = sniff.stop();
    let callee = format!("{} (demo)", demo.addr);
    assert_tuples(
        &out,
        &[
            ("demo", "/echo", "none", "none", 100, 0),
            ("demo", "/handle", &callee, "/echo", 100, 0),
        ],
    );
}

/// The same demo stripped of symbols and DWARF (`-ldflags=-s -w`):
/// functions from .gopclntab, offsets from the fallback table.
#[test]
fn stripped_binary_gives_the_same_tuples() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("gin", "stripped", "demo", &["-ldflags=-s -w"]);
    let demo = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = demo.pid().to_string();
    let sniff = topology_attached_to(
        &exe,
        &["--pid", &pid, "--service-name", &format!("{pid}=shop")],
    );
    for _ in 0..10 {
        assert_eq!(get(&demo.addr, "/handle"), 200);
    }
    let out = sniff.stop();
    let callee = format!("{} (shop)", demo.addr);
    assert_tuples(
        &out,
        &[
            ("shop", "/echo", "none", "none", 10, 0),
            ("shop", "/handle", &callee, "/echo", 10, 0),
        ],
    );
}

/// A call made from a goroutine the handler started is linked to the
/// handler; one handed to a worker through a channel is unlinked (never
/// linked to the wrong request); a 503 counts as an error.
#[test]
fn child_goroutine_is_linked_and_channel_worker_is_not() {
    let _g = serial();
    if !ready() {
        return;
    }
    child_and_worker(&build("handoff", "full", "handoff", &[]), 5, 2);
}

/// The handoff program under `sniff topology`: `n` calls each to /child
/// (its goroutine's call is linked) and /worker (the channel worker's is
/// not), and `fails` to /fail (a 503, counted as an error).
fn child_and_worker(exe: &Path, n: u64, fails: u64) {
    let p = GoProc::start(exe, &["127.0.0.1:0"]);
    let pid = p.pid().to_string();
    let sniff = topology_attached_to(exe, &["--pid", &pid]);
    for _ in 0..n {
        assert_eq!(get(&p.addr, "/child"), 200);
        assert_eq!(get(&p.addr, "/worker"), 200);
    }
    for _ in 0..fails {
        assert_eq!(get(&p.addr, "/fail"), 503);
    }
    let out = sniff.stop();
    let callee = format!("{} (handoff)", p.addr);
    let mut want = vec![
        ("handoff", "/child", callee.as_str(), "/echo", n, 0),
        ("handoff", "/echo", "none", "none", 2 * n, 0),
        ("handoff", "/worker", "none", "none", n, 0),
        ("handoff", "unlinked", callee.as_str(), "/echo", n, 0),
    ];
    if fails > 0 {
        want.push(("handoff", "/fail", "none", "none", fails, fails));
    }
    assert_tuples(&out, &want);
}

/// A Go program started after sniff (a binary sniff has never seen) is
/// found through its exec and probed.
#[test]
fn program_started_after_sniff_is_probed() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("handoff", "late", "latecomer", &[]);
    let mut sniff = Sniff::start(&["topology", "--json", "--comm", "latecomer"]);
    // Nothing of ours runs it yet.
    assert!(!sniff.wait_for_stderr(Duration::from_millis(300), |l| l.contains("latecomer")));
    let p = GoProc::start(&exe, &["127.0.0.1:0"]);
    let sniff = wait_attached(sniff, &exe);
    for _ in 0..3 {
        assert_eq!(get(&p.addr, "/child"), 200);
    }
    let out = sniff.stop();
    let callee = format!("{} (latecomer)", p.addr);
    assert_tuples(
        &out,
        &[
            ("latecomer", "/child", &callee, "/echo", 3, 0),
            ("latecomer", "/echo", "none", "none", 3, 0),
        ],
    );
}

/// `sniff compare` on Go HTTP/1 traffic over connections opened after it
/// started: every exchange is matched, nothing else, exit 0.
#[test]
fn compare_agrees_on_go_http1() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("gin", "full", "demo", &[]);
    let demo = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = demo.pid().to_string();
    let sniff = attached_to(&exe, &["compare", "--pid", &pid]);
    for _ in 0..20 {
        assert_eq!(get(&demo.addr, "/handle"), 200);
    }
    // /handle served, /echo called, /echo served: 20 each.
    assert_agree(
        &sniff.stop(),
        "agree: 60 matched, 0 only in syscalls, 0 only in uprobes, 0 field mismatches",
    );
}

/// A call made without net/http's client (bytes written by hand) is seen
/// by the syscalls only: compare says so and exits 1.
#[test]
fn compare_reports_what_only_syscalls_saw() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("handoff", "full", "handoff", &[]);
    let p = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = p.pid().to_string();
    let sniff = attached_to(&exe, &["compare", "--pid", &pid]);
    assert_eq!(get(&p.addr, "/raw"), 200);
    let out = sniff.stop();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        out.lines.join("\n"),
        out.stderr
    );
    let text = out.lines.join("\n");
    assert!(
        text.contains("seen by syscalls only (1):\n  pid")
            && text.contains("client http1 GET /echo → 200"),
        "{text}"
    );
    // /raw served and /echo served are seen by both.
    assert!(
        text.ends_with(
            "DISAGREE: 2 matched, 1 only in syscalls, 0 only in uprobes, 0 field mismatches"
        ),
        "{text}"
    );
}

/// `--source both` (the default): kernel exchanges of a Go process carry
/// the Go view: the handler, and for a client call the handler that made
/// it.
#[test]
fn source_both_adds_the_go_view_to_exchanges() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("gin", "full", "demo", &[]);
    let demo = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = demo.pid().to_string();
    let sniff = attached_to(&exe, &["--json", "--pid", &pid]);
    assert_eq!(get(&demo.addr, "/handle"), 200);
    let out = sniff.stop();
    let exchanges = records(&out, "exchange");
    let find = |path: &str, side: &str| {
        exchanges
            .iter()
            .find(|v| v["path"] == path && v["side"] == side)
            .unwrap_or_else(|| panic!("no {side} {path} in {exchanges:?}"))
    };
    let handle = &find("/handle", "server")["go"];
    assert_eq!(handle["function"], "net/http.serverHandler.ServeHTTP");
    assert_eq!(handle["caller_func"], "/handle");
    assert_eq!(handle["status"], 200);
    let echo = &find("/echo", "client")["go"];
    assert_eq!(echo["function"], "net/http.(*Transport).roundTrip");
    assert_eq!(echo["caller_func"], "/handle");
    assert!(echo["goroutine"].as_u64().unwrap() > 0);
}

/// gRPC over a connection opened after sniff started: the grpc-go probes
/// give each call's method, status and decoded headers on both sides
/// (`--source uprobes`), and `sniff compare` agrees with the kernel's
/// HTTP/2 decoding, stream by stream.
#[test]
fn grpc_calls_from_uprobes_and_compare_agrees() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("grpclate", "full", "grpclate", &[]);

    let mut p = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = p.pid().to_string();
    let sniff = attached_to(&exe, &["--source", "uprobes", "--json", "--pid", &pid]);
    for _ in 0..3 {
        assert_eq!(p.ask(), "SERVING");
    }
    let out = sniff.stop();
    let calls = records(&out, "go_grpc_call");
    assert_eq!(calls.len(), 6, "{:?}\n{}", out.lines, out.stderr);
    for side in ["client", "server"] {
        let mine: Vec<_> = calls.iter().filter(|c| c["side"] == side).collect();
        assert_eq!(mine.len(), 3, "{side}: {calls:?}");
        for c in mine {
            assert_eq!(c["path"], "/grpc.health.v1.Health/Check");
            assert_eq!(c["grpc_status"], 0);
            assert_eq!(c["status"], 200);
            assert_eq!(c["authority"], p.addr.as_str());
            let has = |list: &str, name: &str, value: &str| {
                c[list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f[0] == name && f[1].as_str().unwrap().starts_with(value))
            };
            assert!(has("req_headers", "user-agent", "grpc-go/"), "{c}");
            assert!(
                has("req_headers", "content-type", "application/grpc"),
                "{c}"
            );
            assert!(has("resp_headers", "grpc-status", "0"), "{c}");
        }
    }
    drop(p);

    // A new process: its client connects after sniff compare started.
    let mut p = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = p.pid().to_string();
    let sniff = attached_to(&exe, &["compare", "--pid", &pid]);
    for _ in 0..5 {
        assert_eq!(p.ask(), "SERVING");
    }
    assert_agree(
        &sniff.stop(),
        "agree: 10 matched, 0 only in syscalls, 0 only in uprobes, 0 field mismatches",
    );
}

/// An HTTP/2 connection joined mid-way: the kernel cannot decode headers
/// indexed in HPACK's dynamic table before capture began (it marks the
/// exchange `headers_partial`); the Go view carries them, decoded.
#[test]
fn grpc_headers_from_uprobes_fill_a_late_joined_connection() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("grpclate", "full", "grpclate", &[]);
    let mut p = GoProc::start(&exe, &["127.0.0.1:0"]);
    // Connect and fill the HPACK tables before sniff starts.
    for _ in 0..2 {
        assert_eq!(p.ask(), "SERVING");
    }
    let pid = p.pid().to_string();
    let sniff = attached_to(&exe, &["--json", "--pid", &pid]);
    for _ in 0..2 {
        assert_eq!(p.ask(), "SERVING");
    }
    let out = sniff.stop();
    let exchanges = records(&out, "exchange");
    assert_eq!(exchanges.len(), 2, "{exchanges:?}\n{}", out.stderr);
    for ex in &exchanges {
        let flags: Vec<&str> = ex["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(flags.contains(&"headers_partial"), "{ex}");
        let unknown = ex["req_headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f[1].as_str().unwrap().starts_with("<unknown"));
        assert!(unknown, "{ex}");
        let go = &ex["go"];
        let req = go["req_headers"]
            .as_array()
            .unwrap_or_else(|| panic!("{ex}"));
        assert!(
            req.iter()
                .any(|f| f[0] == "user-agent" && f[1].as_str().unwrap().starts_with("grpc-go/")),
            "{ex}"
        );
        assert!(
            req.iter()
                .any(|f| f[0] == ":path" && f[1] == "/grpc.health.v1.Health/Check"),
            "{ex}"
        );
    }
}

/// A position-independent executable (`-buildmode=pie`): probes attach at
/// file offsets, wherever the binary is loaded.
#[test]
fn pie_binary_is_probed() {
    let _g = serial();
    if !ready() {
        return;
    }
    child_and_worker(
        &build("handoff", "pie", "handoff", &["-buildmode=pie"]),
        2,
        0,
    );
}

/// Calls made at stack depths 0..=400 from fresh goroutines: at some depths
/// roundTrip's entry must grow the stack and Go runs the function again
/// from its entry, so its entry probe fires twice. Each call is counted
/// once, and the duplicates are reported.
#[test]
fn entries_repeated_by_stack_growth_are_counted_once() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("handoff", "full", "handoff", &[]);
    let p = GoProc::start(&exe, &["127.0.0.1:0"]);
    let pid = p.pid().to_string();
    let sniff = topology_attached_to(&exe, &["--pid", &pid]);
    for d in 0..=400 {
        assert_eq!(get(&p.addr, &format!("/deep?d={d}")), 200);
    }
    let out = sniff.stop();
    let callee = format!("{} (handoff)", p.addr);
    assert_tuples(
        &out,
        &[
            ("handoff", "/deep", &callee, "/echo", 401, 0),
            ("handoff", "/echo", "none", "none", 401, 0),
        ],
    );
    let dup: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("sniff: Go uprobes: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dup > 0, "no entry was seen twice:\n{}", out.stderr);
}

/// An HTTP handler calling a gRPC service, directly and from a goroutine
/// it starts: grpc-go's NewStream (in the caller's goroutine) links each
/// call to the handler; the callee is the gRPC server's address, named.
#[test]
fn http_handler_calling_grpc_is_linked() {
    let _g = serial();
    if !ready() {
        return;
    }
    let exe = build("mixed", "full", "mixed", &[]);
    let p = GoProc::start(&exe, &[]);
    let (http, grpc) = p.addr.split_once(' ').expect("HTTPADDR GRPCADDR");
    let pid = p.pid().to_string();
    let sniff = topology_attached_to(&exe, &["--pid", &pid]);
    for _ in 0..4 {
        assert_eq!(get(http, "/grpc"), 200);
        assert_eq!(get(http, "/go"), 200);
    }
    let out = sniff.stop();
    let callee = format!("{grpc} (mixed)");
    let method = "/grpc.health.v1.Health/Check";
    assert_tuples(
        &out,
        &[
            ("mixed", "/go", &callee, method, 4, 0),
            ("mixed", "/grpc", &callee, method, 4, 0),
        ],
    );
}
