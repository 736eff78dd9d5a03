//! `sniff --proto http` for real, as root: real clients and servers started
//! by each test (python http.server, node, nginx, Go net/http, nghttpd,
//! grpcio, curl) on loopback, and the client's own account of what it did
//! (curl `-w '%{json}'`, our peers' JSON lines) as the truth: sniff must
//! report exactly those exchanges, with the processes, addresses and peers
//! a user would check.
//!
//! HTTP/2 and gRPC tests are ignored until HTTP/2 decoding lands (issue 4).

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write as _},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Duration,
};

use common::{
    Sniff,
    account::{self, Did, Rules, client_port, flags, has_flag},
    can_load_ebpf,
    peers::{
        self, FIXED_HTTP_DATE, PYTHON, Server, TempDir, curl, curl_next, grpc_stubs, record_peers,
        run, test_peers,
    },
    replay, serial,
};
use serde_json::{Value, json};

/// Longest wait for sniff to report traffic that already happened.
const WAIT: Duration = Duration::from_secs(15);

/// Stops sniff once it has reported `n` exchanges (or after [`WAIT`]);
/// it must exit cleanly having lost nothing. Returns its exchanges.
fn collect(sniff: Sniff, n: usize) -> Vec<Value> {
    let (got, stats) = collect_stats(sniff, n);
    for k in [
        "ringbuf_drops",
        "truncated_syscalls",
        "read_failures",
        "lost_bytes",
        "lossy_exchanges",
    ] {
        assert_eq!(stats[k], 0, "{k}: {stats}");
    }
    got
}

/// Like [`collect`], with the final stats line, whatever it counted.
fn collect_stats(mut sniff: Sniff, n: usize) -> (Vec<Value>, Value) {
    sniff.wait_for_exchanges(n, WAIT);
    let out = sniff.stop();
    assert!(out.status.success(), "sniff failed: {}", out.stderr);
    let stats = out.stats();
    let got = out.of_type("exchange");
    // The stats line counts what was printed.
    assert_eq!(stats["shown"], got.len(), "{stats}");
    (got, stats)
}

/// The client's end, as a user reads it: its process and socket, the
/// server's address, and the server process named as the peer.
fn assert_client_view(
    pairs: &[(&Did, &Value)],
    client_pid: u32,
    client_comm: &str,
    server: &Server,
) {
    for (d, e) in pairs {
        let w = format!("{} {}: {e}", d.method, d.path);
        assert_eq!(e["pid"], client_pid, "{w}");
        assert_eq!(e["comm"], client_comm, "{w}");
        assert_eq!(e["remote"], format!("127.0.0.1:{}", server.port), "{w}");
        if let Some(p) = d.client_port {
            assert_eq!(e["local"], format!("127.0.0.1:{p}"), "{w}");
        }
        assert_eq!(
            e["peer"],
            json!({"pid": server.pid(), "comm": server.comm}),
            "{w}"
        );
        assert_eq!(e["conn_role"], "client", "{w}");
        assert!(e["tcp_state"].is_null(), "seen from connect: {w}");
    }
}

/// The server's end of the same exchanges (`--side server`).
fn assert_server_view(
    pairs: &[(&Did, &Value)],
    server: &Server,
    client_pid: u32,
    client_comm: &str,
) {
    for (d, e) in pairs {
        let w = format!("{} {}: {e}", d.method, d.path);
        assert_eq!(e["pid"], server.pid(), "{w}");
        assert_eq!(e["comm"], server.comm.as_str(), "{w}");
        assert_eq!(e["local"], format!("127.0.0.1:{}", server.port), "{w}");
        assert_eq!(
            e["peer"],
            json!({"pid": client_pid, "comm": client_comm}),
            "{w}"
        );
        assert_eq!(e["conn_role"], "server", "{w}");
    }
}

fn same_connection(got: &[Value]) {
    let conns: Vec<(&Value, &Value, &Value)> = got
        .iter()
        .map(|e| (&e["pid"], &e["fd"], &e["local"]))
        .collect();
    assert!(
        conns.windows(2).all(|w| w[0] == w[1]),
        "not one connection: {conns:?}"
    );
}

fn header<'a>(list: &'a Value, name: &str) -> Option<&'a str> {
    list.as_array()?
        .iter()
        .find(|kv| kv[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|kv| kv[1].as_str())
}

#[test]
fn curl_to_python_http_server() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    // --cgi: python reads each request one byte at a time, the hardest
    // case for the kernel's protocol check (no CGI script is run here).
    let server = Server::python_http(true);
    let port = server.port.to_string();
    let both = Sniff::start(&["--json", "--port", &port]);
    let server_side = Sniff::start(&["--json", "--port", &port, "--side", "server"]);
    let urls: Vec<String> = [
        "/index.html",
        "/small.txt",
        "/missing.txt",
        "/medium.bin",
        "/nope/",
    ]
    .iter()
    .map(|p| server.url(p))
    .collect();
    let client = curl(&[], &urls.iter().map(String::as_str).collect::<Vec<_>>());
    let did = client.curl_did();
    assert_eq!(
        did.iter().map(|d| d.status.unwrap()).collect::<Vec<_>>(),
        [200, 200, 404, 200, 404],
        "the server's answers"
    );

    let got = collect(both, did.len());
    let pairs = account::check("curl → python http.server", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "curl", &server);
    // HTTP/1.0 answers: one connection per request.
    let ports: std::collections::HashSet<_> = got.iter().map(client_port).collect();
    assert_eq!(ports.len(), did.len(), "{ports:?}");

    let got = collect(server_side, did.len());
    let rules = Rules {
        side: "server",
        ..Rules::default()
    };
    let pairs = account::check("python http.server's side", &got, &did, rules);
    assert_server_view(&pairs, &server, client.pid, "curl");
}

/// A process is named by its main thread (`/proc/PID/comm`), also when the
/// thread doing the I/O has a name of its own (grpcio's `event_engine`, JVM
/// and Go-runtime-renamed threads): in the output, and for `--comm`.
#[test]
fn threads_with_their_own_names_count_as_their_process() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::python_named_threads();
    let port = server.port.to_string();
    let by_comm = Sniff::start(&["--json", "--port", &port, "--comm", "python3"]);
    let client = curl(&[], &[&server.url("/a"), &server.url("/b")]);
    let did = client.curl_did();
    let got = collect(by_comm, did.len());
    let rules = Rules {
        side: "server",
        ..Rules::default()
    };
    let pairs = account::check("--comm python3, threads renamed", &got, &did, rules);
    assert_server_view(&pairs, &server, client.pid, "curl");
}

#[test]
fn keepalive_curl_to_node() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h1();
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let urls: Vec<String> = [
        "/size/100",
        "/size/5000",
        "/status/404",
        "/size/1",
        "/status/201",
    ]
    .iter()
    .map(|p| server.url(p))
    .collect();
    let client = curl(&[], &urls.iter().map(String::as_str).collect::<Vec<_>>());
    let did = client.curl_did();
    assert!(
        did.windows(2).all(|w| w[0].client_port == w[1].client_port),
        "curl did not keep the connection alive: {did:?}"
    );
    let got = collect(sniff, did.len());
    let pairs = account::check("keep-alive curl → node", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "curl", &server);
    same_connection(&got);
}

#[test]
fn pipelined_requests_to_node() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h1();
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    // Six requests written in one send(2), answered in order.
    let client = run(Command::new(PYTHON)
        .arg(record_peers().join("pipeline_client.py"))
        .args(["127.0.0.1", &server.port.to_string()]));
    let did = client.did();
    assert_eq!(did.len(), 6);
    let got = collect(sniff, did.len());
    let pairs = account::check("pipelined python → node", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "python3", &server);
    same_connection(&got);
}

#[test]
fn chunked_responses_from_node() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h1();
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let urls: Vec<String> = ["/chunked/5000/4", "/chunked/100/1", "/chunked/9000/7"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    let client = curl(&[], &urls.iter().map(String::as_str).collect::<Vec<_>>());
    let did = client.curl_did();
    let got = collect(sniff, did.len());
    let pairs = account::check("chunked node → curl", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "curl", &server);
    for (_, e) in &pairs {
        assert_eq!(
            header(&e["resp_headers"], "transfer-encoding"),
            Some("chunked"),
            "{e}"
        );
        assert_eq!(header(&e["resp_headers"], "content-length"), None, "{e}");
    }
}

#[test]
fn nginx_static_files_head_and_304() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::nginx();
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let ims = format!("If-Modified-Since: {FIXED_HTTP_DATE}");
    let client = curl_next(&[
        (&[], &server.url("/small.txt")),
        (&["-I"], &server.url("/small.txt")),
        (&["-H", &ims], &server.url("/small.txt")),
        (&[], &server.url("/nope.txt")),
        (&[], &server.url("/medium.bin")),
        (&[], &server.url("/index.html")),
    ]);
    let did = client.curl_did();
    assert_eq!(
        did.iter()
            .map(|d| (d.method.as_str(), d.status.unwrap()))
            .collect::<Vec<_>>(),
        [
            ("GET", 200),
            ("HEAD", 200),
            ("GET", 304),
            ("GET", 404),
            ("GET", 200),
            ("GET", 200)
        ]
    );
    let got = collect(sniff, did.len());
    let pairs = account::check("curl → nginx static", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "curl", &server);
    same_connection(&got);
    // HEAD: the length of what GET would send, and no body.
    let head = pairs[1].1;
    assert_eq!(
        header(&head["resp_headers"], "content-length"),
        Some("2200")
    );
    assert_eq!(head["resp_body_len"], 0);
}

#[test]
fn go_nethttp_client_and_server() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::go("go-http", &["server"]);
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let client = run(Command::new(peers::go_build("go-http"))
        .arg("client")
        .arg(server.port.to_string()));
    let did = client.did();
    assert_eq!(did.len(), 5);
    let got = collect(sniff, did.len());
    let pairs = account::check("Go net/http", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "go-http", &server);
}

/// A client that makes its first requests, says where its socket is, and
/// waits for a line on stdin before making the rest (on the same
/// connection). Killed on drop.
struct LateClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl LateClient {
    fn start(cmd: &mut Command) -> LateClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the client");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        LateClient {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        assert!(
            self.stdout.read_line(&mut l).unwrap() > 0,
            "the client ended early"
        );
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    }

    /// Lets it go on; returns every line it prints until it exits.
    fn go_on(mut self) -> Vec<Value> {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let mut out = Vec::new();
        let mut l = String::new();
        while self.stdout.read_line(&mut l).unwrap() > 0 {
            out.push(serde_json::from_str(&l).unwrap());
            l.clear();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the client failed: {status}");
        out
    }
}

impl Drop for LateClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keepalive_connection_opened_before_sniff() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::nginx();
    let port = server.port.to_string();
    let later = ["/small.txt", "/nope.txt", "/data.json", "/index.html"];
    let mut client = LateClient::start(
        Command::new(PYTHON)
            .arg(test_peers().join("late_h1_client.py"))
            .args(["127.0.0.1", &port, "/index.html"])
            .args(later),
    );
    let first = client.line();
    assert_eq!(first["status"], 200);
    let socket = client.line();
    let client_pid = client.child.id();

    // The connection is open and idle; now sniff starts.
    let both = Sniff::start(&["--json", "--port", &port]);
    let server_side = Sniff::start(&["--json", "--port", &port, "--side", "server"]);
    let lines = client.go_on();
    let did: Vec<Did> = lines
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    assert_eq!(did.len(), later.len());

    // Only what happened after sniff started, each once, from the client.
    let got = collect(both, did.len());
    let rules = Rules {
        extra_flags: &["late_join"],
        ..Rules::default()
    };
    let pairs = account::check("keep-alive opened before sniff", &got, &did, rules);
    for (d, e) in &pairs {
        let w = format!("{} {}: {e}", d.method, d.path);
        assert_eq!(e["pid"], client_pid, "{w}");
        assert_eq!(e["comm"], "python3", "{w}");
        assert_eq!(e["local"], socket["local"], "{w}");
        assert_eq!(e["remote"], socket["remote"], "{w}");
        assert_eq!(
            e["peer"],
            json!({"pid": server.pid(), "comm": "nginx"}),
            "{w}"
        );
        // Not from connect(2), which happened before: from sock_diag.
        assert_eq!(e["conn_role"], "client", "{w}");
        assert_eq!(e["tcp_state"], "ESTABLISHED", "{w}");
    }
    assert!(has_flag(pairs[0].1, "late_join"), "{}", pairs[0].1);

    let got = collect(server_side, did.len());
    let rules = Rules {
        side: "server",
        extra_flags: &["late_join"],
        ..Rules::default()
    };
    let pairs = account::check("its server side", &got, &did, rules);
    for (_, e) in &pairs {
        assert_eq!(e["pid"], server.pid(), "{e}");
        assert_eq!(e["local"], socket["remote"], "{e}");
        assert_eq!(e["remote"], socket["local"], "{e}");
        assert_eq!(
            e["peer"],
            json!({"pid": client_pid, "comm": "python3"}),
            "{e}"
        );
        assert_eq!(e["conn_role"], "server", "{e}");
        assert_eq!(e["tcp_state"], "ESTABLISHED", "{e}");
    }
}

#[test]
fn http2_connection_opened_before_sniff() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h2();
    let port = server.port.to_string();
    // The first path again (its :path and x-test-token are then HPACK
    // dynamic-table references sniff never saw inserted), then new ones.
    let later = ["/size/100", "/size/2000", "/missing", "/size/100"];
    let mut client = LateClient::start(
        Command::new("node")
            .arg(test_peers().join("late_h2_client.js"))
            .args([port.as_str(), "/size/100"])
            .args(later),
    );
    let first = client.line();
    assert_eq!(first["status"], 200);
    let socket = client.line();
    let client_pid = client.child.id();

    let sniff = Sniff::start(&["--json", "--port", &port]);
    let did = client.go_on();
    assert_eq!(did.len(), later.len());
    let got = collect(sniff, did.len());
    assert_eq!(got.len(), did.len(), "{got:#?}");

    let mut partial = 0;
    for d in &did {
        let e = got
            .iter()
            .find(|e| e["stream_id"] == d["stream_id"])
            .unwrap_or_else(|| panic!("stream {} not reported: {got:#?}", d["stream_id"]));
        let w = format!("stream {} {}: {e}", d["stream_id"], d["path"]);
        assert_eq!(e["proto"], "http2", "{w}");
        assert_eq!(e["pid"], client_pid, "{w}");
        assert_eq!(e["side"], "client", "{w}");
        assert_eq!(e["local"], socket["local"], "{w}");
        assert_eq!(e["remote"], socket["remote"], "{w}");
        assert_eq!(
            e["peer"],
            json!({"pid": server.pid(), "comm": "node"}),
            "{w}"
        );
        assert_eq!(e["conn_role"], "client", "{w}");
        assert_eq!(e["tcp_state"], "ESTABLISHED", "{w}");
        // What does not depend on HPACK state is exact.
        assert_eq!(e["method"], "GET", "{w}");
        assert_eq!(e["status"], d["status"], "{w}");
        assert_eq!(e["req_body_len"], 0, "{w}");
        assert_eq!(e["resp_body_len"], d["response_body"], "{w}");
        // Late-join semantics: a header is right, or shown as unknown with
        // headers_partial; never a wrong value.
        let unknown = |v: &str| v.starts_with("<unknown");
        let path = e["path"].as_str().unwrap();
        assert!(path == d["path"] || unknown(path), "{w}: wrong path");
        let is_partial = has_flag(e, "headers_partial");
        for (list, truth) in [
            (&e["req_headers"], &d["sent"]),
            (&e["resp_headers"], &d["received"]),
        ] {
            for kv in list.as_array().unwrap() {
                let (name, value) = (kv[0].as_str().unwrap(), kv[1].as_str().unwrap());
                if unknown(value) || unknown(name) {
                    assert!(is_partial, "{w}: {name}: {value} without headers_partial");
                    continue;
                }
                let known = truth.as_array().unwrap().iter().any(|t| {
                    t[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)) && t[1] == value
                });
                // :scheme and :authority are added by node, not by us.
                assert!(
                    known || [":scheme", ":authority"].contains(&name),
                    "{w}: {name}: {value} is not what was sent or received"
                );
            }
        }
        for f in flags(e) {
            assert!(
                ["late_join", "headers_partial"].contains(&f),
                "{w}: flag {f}"
            );
        }
        partial += is_partial as usize;
    }
    // The repeated path refers to a table entry made before sniff started.
    assert!(partial > 0, "no header was unknown: {got:#?}");
}

#[test]
fn h2c_prior_knowledge_curl_to_nghttpd() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::nghttpd();
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    // One curl per URL: curl 7.88.1 fails (exit 16) reusing an h2c
    // prior-knowledge connection.
    let mut did = Vec::new();
    let mut pids = BTreeMap::new();
    for p in ["/small.txt", "/medium.bin", "/missing"] {
        let c = curl(&["--http2-prior-knowledge"], &[&server.url(p)]);
        for d in c.curl_did() {
            pids.insert(d.client_port, c.pid);
            did.push(d);
        }
    }
    assert_eq!(
        did.iter().map(|d| d.status).collect::<Vec<_>>(),
        [Some(200), Some(200), Some(404)]
    );
    let got = collect(sniff, did.len());
    let pairs = account::check("h2c curl → nghttpd", &got, &did, Rules::default());
    for (d, e) in &pairs {
        assert_eq!(e["stream_id"], 1, "{e}");
        assert_client_view(&[(d, e)], pids[&d.client_port], "curl", &server);
    }
}

#[test]
fn h2c_upgrade_curl_to_go() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::go("go-h2c", &[]);
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let urls = [
        server.url("/size/3000"),
        server.url("/size/10"),
        server.url("/nope"),
    ];
    let client = curl(
        &["-v", "--http2"],
        &urls.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut did = client.curl_did();
    // curl -v: "< HTTP/1.1 101 Switching Protocols" before the upgraded answer.
    assert!(
        client.stderr.contains("< HTTP/1.1 101"),
        "{}",
        client.stderr
    );
    did[0].interim = vec![101];
    assert!(did.iter().all(|d| d.http_version.as_deref() == Some("2")));
    let got = collect(sniff, did.len());
    let pairs = account::check("h2c upgrade curl → Go", &got, &did, Rules::default());
    assert_client_view(&pairs, client.pid, "curl", &server);
    assert_eq!(
        pairs
            .iter()
            .map(|(_, e)| e["stream_id"].clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(3), json!(5)]
    );
}

#[test]
fn grpc_python_unary_and_streaming() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let stubs = TempDir::new("grpc-stubs");
    grpc_stubs(stubs.path());
    let server = Server::grpc_python(stubs.path());
    let sniff = Sniff::start(&["--json", "--port", &server.port.to_string()]);
    let client = run(Command::new(PYTHON)
        .arg(record_peers().join("grpc/client.py"))
        .arg(stubs.path())
        .arg(server.port.to_string())
        .env("no_proxy", "*")
        .env("GRPC_ENABLE_FORK_SUPPORT", "0"));
    let did = client.did();
    let kinds: Vec<&str> = did
        .iter()
        .map(|d| d.grpc.as_ref().unwrap().kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "unary",
            "server_streaming",
            "client_streaming",
            "bidi_streaming",
            "unary"
        ]
    );
    let got = collect(sniff, did.len());
    let rules = Rules {
        ordered: false,
        ..Rules::default()
    };
    let pairs = account::check("grpcio", &got, &did, rules);
    assert_client_view(&pairs, client.pid, "python3", &server);
    // --proto grpc shows exactly these too (checked by the filter test for
    // http1/http2); the failing call's status and message are the client's.
    let failed = pairs.last().unwrap().1;
    assert_eq!(failed["grpc_status"], 5);
}

/// One slow request and several fast ones, with 2xx, 4xx and 5xx answers,
/// GET, POST and HEAD, one with its own Host, over HTTP/1.1 (and one HTTP/2
/// request to show it is left out of `--proto http1`), watched by one sniff
/// per filter at once. What each must show is the client's account,
/// filtered by what the user asked for.
#[test]
fn filters_show_what_users_ask_for() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let h1 = Server::node_h1();
    let h2 = Server::node_h2();
    // Every case watches the HTTP/1 server; `--proto http1` also watches
    // the HTTP/2 one, whose exchange it must not show.
    let ports = format!("{},{}", h1.port, h2.port);
    let h1_port = h1.port.to_string();
    let node_pid = h1.pid().to_string();
    type Want = fn(&Did, f64) -> bool;
    // args, the side shown, what is wanted, and the peer process named:
    // from pairing both captured ends, or from sock_diag and /proc when
    // only one end is captured (--comm, --pid).
    let cases: Vec<(Vec<&str>, &str, Want)> = vec![
        (vec![], "client", |_, _| true),
        (vec!["--status", "4xx"], "client", |d, _| {
            (400..500).contains(&d.status.unwrap())
        }),
        (vec!["--status", "404,503"], "client", |d, _| {
            [404, 503].contains(&d.status.unwrap())
        }),
        (vec!["--path", "/size"], "client", |d, _| {
            d.path.starts_with("/size")
        }),
        (
            vec!["--path", "~^/(users|status)/[0-9]+$"],
            "client",
            |d, _| d.path.starts_with("/users/") || d.path.starts_with("/status/"),
        ),
        (vec!["--method", "POST,HEAD"], "client", |d, _| {
            ["POST", "HEAD"].contains(&d.method.as_str())
        }),
        // The client's own clock says which were slow.
        (vec!["--min-latency", "200ms"], "client", |_, secs| {
            secs >= 0.2
        }),
        // A name matches any port of it.
        (vec!["--host", "api.example.test"], "client", |d, _| {
            d.path == "/size/7"
        }),
        (vec!["--side", "server"], "server", |_, _| true),
        (vec!["--side", "client"], "client", |_, _| true),
        (vec!["--proto", "http1"], "client", |_, _| true),
        (vec!["--comm", "curl"], "client", |_, _| true),
        (vec!["--pid", &node_pid], "server", |_, _| true),
    ];
    let sniffs: Vec<Sniff> = cases
        .iter()
        .map(|(args, _, _)| {
            let port = if args.first() == Some(&"--proto") {
                &ports
            } else {
                &h1_port
            };
            let mut all = vec!["--json", "--port", port];
            all.extend(args);
            Sniff::start(&all)
        })
        .collect();

    let mut runs = vec![curl(
        &[],
        &[
            &h1.url("/size/100"),
            &h1.url("/status/404"),
            &h1.url("/status/503"),
            &h1.url("/size/2048"),
            &h1.url("/users/42"),
            &h1.url("/delay/400"),
            &h1.url("/status/201"),
        ],
    )];
    let body = "x".repeat(300);
    runs.push(curl(
        &["--data-binary", &body, "-H", "Content-Type: text/plain"],
        &[&h1.url("/echo")],
    ));
    runs.push(curl(&["-I"], &[&h1.url("/size/50")]));
    runs.push(curl(
        &["-H", "Host: api.example.test:8080"],
        &[&h1.url("/size/7")],
    ));
    // HTTP/2: never shown by --proto http1.
    let h2_run = curl(&["--http2-prior-knowledge"], &[&h2.url("/size/300")]);
    assert_eq!(h2_run.curl_did()[0].status, Some(200));

    let mut did: Vec<(Did, f64, u32)> = Vec::new();
    for r in &runs {
        for j in r.json_lines() {
            did.push((
                account::from_curl(&j),
                j["time_total"].as_f64().unwrap(),
                r.pid,
            ));
        }
    }
    assert_eq!(did.len(), 10);
    for ((args, side, want), sniff) in cases.iter().zip(sniffs) {
        let want: Vec<Did> = did
            .iter()
            .filter(|(d, secs, _)| want(d, *secs))
            .map(|(d, _, _)| d.clone())
            .collect();
        let what = format!("sniff {}", args.join(" "));
        assert!(!want.is_empty(), "{what}: the table wants nothing");
        let view_filter = !["--side", "--proto", "--comm", "--pid"]
            .contains(&args.first().copied().unwrap_or(""));
        if !args.is_empty() && view_filter {
            assert!(want.len() < did.len(), "{what}: filters nothing");
        }
        let got = collect(sniff, want.len());
        let rules = Rules {
            side,
            ..Rules::default()
        };
        let pairs = account::check(&what, &got, &want, rules);
        // With one end captured, the other comes from sock_diag and /proc
        // after the fact: a connection over (its process gone) before sniff
        // read its events has no peer to name, and shows none, never a
        // wrong one. The first connection lasts over 400 ms: always named.
        let one_sided = ["--comm", "--pid"].contains(&args.first().copied().unwrap_or(""));
        let long_lived = did[0].0.client_port;
        let mut named = 0;
        for (d, e) in pairs {
            let client_pid = did
                .iter()
                .find(|x| x.0.client_port == d.client_port)
                .unwrap()
                .2;
            let mut e = e.clone();
            if one_sided && e["peer"].is_null() && d.client_port != long_lived {
                e["peer"] = if *side == "server" {
                    json!({"pid": client_pid, "comm": "curl"})
                } else {
                    json!({"pid": h1.pid(), "comm": h1.comm})
                };
            } else {
                named += 1;
            }
            if *side == "server" {
                assert_server_view(&[(d, &e)], &h1, client_pid, "curl");
            } else {
                assert_client_view(&[(d, &e)], client_pid, "curl", &h1);
            }
        }
        assert!(named > 0, "{what}: no peer named");
    }
}

#[test]
fn proto_filter_separates_http1_http2_and_grpc() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let h1 = Server::node_h1();
    let h2 = Server::node_h2();
    let stubs = TempDir::new("grpc-stubs");
    grpc_stubs(stubs.path());
    let grpc = Server::grpc_python(stubs.path());
    let ports = format!("{},{},{}", h1.port, h2.port, grpc.port);
    let only = |proto: &str| Sniff::start(&["--json", "--port", &ports, "--proto", proto]);
    let (s1, s2, sg, sall) = (only("http1"), only("http2"), only("grpc"), only("http"));

    let c1 = curl(&[], &[&h1.url("/size/10"), &h1.url("/status/404")]);
    let c2 = curl(&["--http2-prior-knowledge"], &[&h2.url("/size/300")]);
    let cg = run(Command::new(PYTHON)
        .arg(record_peers().join("grpc/client.py"))
        .arg(stubs.path())
        .arg(grpc.port.to_string())
        .env("no_proxy", "*")
        .env("GRPC_ENABLE_FORK_SUPPORT", "0"));
    let (d1, d2, dg) = (c1.curl_did(), c2.curl_did(), cg.did());
    let unordered = Rules {
        ordered: false,
        ..Rules::default()
    };
    account::check(
        "--proto http1",
        &collect(s1, d1.len()),
        &d1,
        Rules::default(),
    );
    let h2_all: Vec<Did> = d2.iter().chain(&dg).cloned().collect();
    account::check(
        "--proto http2",
        &collect(s2, h2_all.len()),
        &h2_all,
        unordered,
    );
    account::check("--proto grpc", &collect(sg, dg.len()), &dg, unordered);
    let all: Vec<Did> = d1.iter().chain(&h2_all).cloned().collect();
    account::check("--proto http", &collect(sall, all.len()), &all, unordered);
}

/// `sniff record` and a live `sniff --json` watch the same traffic;
/// `sniff replay` of the recording then prints what the live run printed.
#[test]
fn record_then_replay_prints_what_live_printed() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h1();
    let port = server.port.to_string();
    let dir = TempDir::new("record");
    let file = dir.path().join("session.sniff");
    let live = Sniff::start(&["--json", "--port", &port]);
    let recorder = Sniff::start(&["record", "-o", file.to_str().unwrap(), "--port", &port]);

    let c = curl(
        &[],
        &[
            &server.url("/size/100"),
            &server.url("/chunked/3000/3"),
            &server.url("/status/404"),
        ],
    );
    let p = run(Command::new(PYTHON)
        .arg(record_peers().join("pipeline_client.py"))
        .args(["127.0.0.1", &port]));
    let did: Vec<Did> = c.curl_did().into_iter().chain(p.did()).collect();

    let live = collect(live, did.len());
    account::check("live", &live, &did, Rules::default());
    let rec = recorder.stop();
    assert!(
        rec.status.success() && rec.stderr.contains("capture lost nothing"),
        "{}",
        rec.stderr
    );
    let replayed = replay(&file, &["--json"]).of_type("exchange");

    // Per connection, in order. Everything must be equal but the times:
    // the recorder's and the live sniff's programs each timestamp the same
    // syscall when they run (microseconds apart), and each process measures
    // CLOCK_REALTIME - CLOCK_MONOTONIC itself; so `time`, `start_ns` and
    // `latency_ns` are compared to within a millisecond, not exactly.
    let by_conn = |xs: &[Value]| {
        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for x in xs {
            let key = format!("{} {} {} {}", x["pid"], x["fd"], x["local"], x["remote"]);
            m.entry(key).or_default().push(x.clone());
        }
        m
    };
    let (a, b) = (by_conn(&live), by_conn(&replayed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (conn, xs) in &a {
        assert_eq!(xs.len(), b[conn].len(), "{conn}");
        for (x, y) in xs.iter().zip(&b[conn]) {
            for f in ["start_ns", "latency_ns"] {
                let dt = x[f].as_i64().unwrap() - y[f].as_i64().unwrap();
                assert!(dt.abs() < 1_000_000, "{conn}: {f} differ by {dt} ns");
            }
            let (mut x, mut y) = (x.clone(), y.clone());
            for v in [&mut x, &mut y] {
                let o = v.as_object_mut().unwrap();
                for f in ["time", "start_ns", "latency_ns"] {
                    o.remove(f);
                }
            }
            assert_eq!(x, y, "{conn}: live (left) and replay differ");
        }
    }
}

/// A body far beyond the per-syscall capture cap: the exchange is flagged
/// `truncated` and counted, its lengths stay exact.
#[test]
fn large_body_beyond_the_capture_cap() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::nginx();
    let port = server.port.to_string();
    let sniff = Sniff::start(&["--json", "--port", &port, "--max-bytes-per-syscall", "4K"]);
    let client = curl(&[], &[&server.url("/large.bin"), &server.url("/small.txt")]);
    let did = client.curl_did();
    assert_eq!(did[0].response_body, 614_400);
    let (got, stats) = collect_stats(sniff, did.len());
    // Truncation is a known loss: `gap` (bytes missing) and `truncated`
    // (why: the cap), with exact lengths all the same.
    let rules = Rules {
        extra_flags: &["truncated", "gap"],
        ..Rules::default()
    };
    let pairs = account::check("600 KiB through a 4 KiB cap", &got, &did, rules);
    assert_client_view(&pairs, client.pid, "curl", &server);
    assert!(has_flag(pairs[0].1, "truncated"), "{}", pairs[0].1);
    assert!(flags(pairs[1].1).is_empty(), "{}", pairs[1].1);
    assert!(stats["truncated_syscalls"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["lossy_exchanges"].as_u64(), Some(1), "{stats}");
    assert_eq!(stats["ringbuf_drops"], 0, "{stats}");
}

/// HTTP/2 frames cannot be followed across a hole, so connections that
/// start as HTTP/2 are copied whole by default: grpcio writes a 3 MB
/// message in one syscall, far past the 256 KiB default cap, and both ends'
/// views must still be exact, and the next call's headers known.
#[test]
fn large_grpc_messages_are_not_cut_by_the_default_cap() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let stubs = TempDir::new("grpc-stubs");
    grpc_stubs(stubs.path());
    let server = Server::grpc_python(stubs.path());
    let port = server.port.to_string();
    let client_side = Sniff::start(&["--json", "--port", &port]);
    let server_side = Sniff::start(&["--json", "--port", &port, "--side", "server"]);
    let client = run(Command::new(PYTHON)
        .arg(test_peers().join("grpc_large_unary.py"))
        .arg(stubs.path())
        .arg(&port)
        .env("no_proxy", "*")
        .env("GRPC_ENABLE_FORK_SUPPORT", "0"));
    let did = client.did();
    assert!(did[0].request_body > 3_000_000, "{:?}", did[0].request_body);
    for (sniff, side) in [(client_side, "client"), (server_side, "server")] {
        let got = collect(sniff, did.len());
        let rules = Rules {
            side,
            ..Rules::default()
        };
        let pairs = account::check(&format!("3 MB gRPC, {side} side"), &got, &did, rules);
        for (_, e) in &pairs {
            assert!(flags(e).is_empty(), "{e}");
        }
    }
}

#[test]
fn secrets_are_redacted_unless_show_secrets() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let server = Server::node_h1();
    let port = server.port.to_string();
    let bearer = "s3cr3t-b34r3r-t0k3n-0123456789ab";
    let cookie = "session=c00k13-v4lu3";
    let api_key = "4p1-k3y-v4lu3";
    let json_default = Sniff::start(&["--json", "--port", &port]);
    let json_shown = Sniff::start(&["--json", "--port", &port, "--show-secrets"]);
    let json_extra = Sniff::start(&["--json", "--port", &port, "--redact", "X-Api-Key"]);
    let mut text = Sniff::start(&["-H", "--color", "never", "--port", &port]);

    let auth = format!("Authorization: Bearer {bearer}");
    let ck = format!("Cookie: {cookie}");
    let key = format!("X-Api-Key: {api_key}");
    let c = curl(
        &["-H", &auth, "-H", &ck, "-H", &key],
        &[&server.url("/size/10")],
    );
    let did = c.curl_did();

    let secrets = [bearer, "c00k13", api_key];
    let check = |name: &str, sniff: Sniff, hidden: &[&str]| -> Value {
        let got = collect(sniff, 1);
        account::check(name, &got, &did, Rules::default());
        let line = got[0].to_string();
        for s in hidden {
            assert!(!line.contains(s), "{name}: {s} shown: {line}");
        }
        got[0].clone()
    };
    let e = check("default", json_default, &secrets[..2]);
    let h = &e["req_headers"];
    assert_eq!(
        header(h, "authorization"),
        Some(format!("Bearer <redacted {} bytes>", bearer.len()).as_str())
    );
    assert_eq!(
        header(h, "cookie"),
        Some(format!("<redacted {} bytes>", cookie.len()).as_str())
    );
    assert_eq!(
        header(h, "x-api-key"),
        Some(api_key),
        "not a secret unless named"
    );
    let e = check("--show-secrets", json_shown, &[]);
    let h = &e["req_headers"];
    assert_eq!(
        header(h, "authorization"),
        Some(format!("Bearer {bearer}").as_str())
    );
    assert_eq!(header(h, "cookie"), Some(cookie));
    let e = check("--redact X-Api-Key", json_extra, &secrets);
    assert_eq!(
        header(&e["req_headers"], "x-api-key"),
        Some(format!("<redacted {} bytes>", api_key.len()).as_str())
    );

    // The human output (-H shows headers) keeps them hidden too.
    text.wait_for_lines(1, WAIT, |l| l.contains("Authorization:"));
    let out = text.stop();
    let all = out.lines.join("\n");
    assert!(all.contains("GET /size/10 HTTP/1.1 → 200 OK"), "{all}");
    // Who talked to whom: the client process and socket, then the server.
    let who = format!(
        "curl[{}] 127.0.0.1:{} → node[{}] 127.0.0.1:{}",
        c.pid,
        did[0].client_port.unwrap(),
        server.pid(),
        server.port
    );
    assert!(all.contains(&who), "no {who:?} in:\n{all}");
    assert!(all.contains("Authorization: Bearer <redacted"), "{all}");
    for s in &secrets[..2] {
        assert!(!all.contains(s), "{s} shown:\n{all}");
    }
}

/// A network namespace of the test's own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("sniff-test-{tag}-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {}", args.join(" "));
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        ip(&["netns", "add", &name]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        Netns(name)
    }

    /// `prog` run inside the namespace (`ip netns exec` execs it: same pid).
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Every container has its own 127.0.0.1, and the same ports get used in
/// several of them: two connections with the very same addresses, in two
/// network namespaces, at the same time. Each client must be paired with
/// the server of its own namespace (named as its peer), and both reported.
#[test]
fn same_loopback_addresses_in_two_network_namespaces() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    const SERVER: &str = "
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = sys.argv[2].encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
";
    const CLIENT: &str = "
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[2])))
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /' + sys.argv[3].encode() + b' HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')
d = b''
while True:
    c = s.recv(4096)
    if not c:
        break
    d += c
print(d.split(b'\\r\\n\\r\\n', 1)[1].decode())
";
    let port = peers::free_port();
    let client_port = (port + 10000).to_string();
    let port = port.to_string();
    let spaces = [Netns::new("a"), Netns::new("b")];
    let servers: Vec<peers::Proc> = spaces
        .iter()
        .zip(["a", "b"])
        .map(|(ns, tag)| {
            let s = peers::Proc::spawn(
                &format!("server {tag}"),
                ns.cmd(PYTHON).args(["-c", SERVER, &port, tag]),
            );
            // Ready once something inside the namespace can connect.
            let probe = format!("import socket; socket.create_connection(('127.0.0.1', {port}))");
            let deadline = std::time::Instant::now() + WAIT;
            while !ns
                .cmd(PYTHON)
                .args(["-c", &probe])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|st| st.success())
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "server {tag} never listened"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            s
        })
        .collect();
    let sniff = Sniff::start(&["--json", "--port", &port]);
    // Both clients connect before either server accepts (the servers are
    // stopped meanwhile), so that both pairs of addresses are known to sniff
    // at the same time.
    let signal = |sig: &str| {
        for s in &servers {
            let ok = Command::new("kill")
                .args([sig, &s.pid().to_string()])
                .status()
                .is_ok_and(|st| st.success());
            assert!(ok, "kill {sig}");
        }
    };
    signal("-STOP");
    let clients: Vec<Child> = spaces
        .iter()
        .zip(["a", "b"])
        .map(|(ns, tag)| {
            ns.cmd(PYTHON)
                .args(["-c", CLIENT, &port, &client_port, tag])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    signal("-CONT");
    let client_pids: Vec<u32> = clients.iter().map(Child::id).collect();
    for (c, tag) in clients.into_iter().zip(["a", "b"]) {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "client {tag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            tag,
            "client {tag}'s answer"
        );
    }

    let got = collect(sniff, 2);
    assert_eq!(got.len(), 2, "{got:#?}");
    for (i, tag) in ["a", "b"].into_iter().enumerate() {
        let path = format!("/{tag}");
        let ex = got
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no exchange for {path}: {got:#?}"));
        assert_eq!(ex["pid"], client_pids[i], "{ex}");
        assert_eq!(ex["side"], "client", "{ex}");
        assert_eq!(ex["local"], format!("127.0.0.1:{client_port}"), "{ex}");
        assert_eq!(ex["remote"], format!("127.0.0.1:{port}"), "{ex}");
        assert_eq!(ex["status"], 200, "{ex}");
        assert_eq!(ex["resp_body_len"], 1, "{ex}");
        assert_eq!(ex["peer"]["pid"], servers[i].pid(), "{tag}'s peer: {ex}");
    }
}
