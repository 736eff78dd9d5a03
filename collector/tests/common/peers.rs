//! Real peers for kernel tests: servers and clients started by the test
//! (python http.server, node, nginx, nghttpd, Go, grpcio, curl), each
//! stopped by its pid when its guard drops. Scripts of our own are in
//! `collector/tests/peers/` and `fixtures/record/peers/`.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use super::account::{Did, from_curl};

/// Debian's python: python3-grpcio is installed for it, not for the pyenv
/// python first on PATH.
pub const PYTHON: &str = "/usr/bin/python3";

/// Our own peer scripts.
pub fn test_peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// The fixture recorder's peers (shared: same servers live and recorded).
pub fn record_peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/record/peers")
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sniff-test-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port in 20000-29999 (below the ephemeral range, so clients have the
/// higher port) that nothing listens on now, on 127.0.0.1 and ::1.
pub fn free_port() -> u16 {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        ^ ((std::process::id() as u64) << 20);
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 10000) as u16;
        let v4 = TcpListener::bind(("127.0.0.1", port)).is_ok();
        let v6 = TcpListener::bind(("::1", port)).is_ok();
        if v4 && v6 {
            return port;
        }
    }
    panic!("no free port in 20000-29999");
}

/// A process we started; killed (by its pid) and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until something accepts on 127.0.0.1:`port` (or `[::1]`).
    pub fn wait_listening(mut self, host: &str, port: u16) -> Proc {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early: {status}", self.name);
            }
            if TcpStream::connect((host, port)).is_ok() {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "{} never listened on {port}",
                self.name
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on a free port, started before sniff (so its readiness probe
/// is not captured).
pub struct Server {
    pub proc: Proc,
    pub port: u16,
    /// What the process is called in /proc/PID/comm.
    pub comm: String,
    _dir: Option<TempDir>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `python3 -m http.server` (HTTP/1.0 answers) serving [`docroot`].
    /// With `cgi` (`--cgi`) it reads each request a byte at a time.
    pub fn python_http(cgi: bool) -> Server {
        let dir = TempDir::new("www");
        docroot(dir.path());
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir.path());
        if cgi {
            cmd.arg("--cgi");
        }
        let proc = Proc::spawn("python http.server", &mut cmd).wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "python3".into(),
            _dir: Some(dir),
        }
    }

    /// tests/peers/named_threads_server.py: a python3 whose request threads
    /// name themselves `req-worker`.
    pub fn python_named_threads() -> Server {
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.arg(test_peers().join("named_threads_server.py"))
            .arg(port.to_string());
        let proc =
            Proc::spawn("python named-threads server", &mut cmd).wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "python3".into(),
            _dir: None,
        }
    }

    /// node `http`: fixtures/record/peers/h1_server.js (keep-alive,
    /// chunked, echo, status, delay).
    pub fn node_h1() -> Server {
        let port = free_port();
        let proc = Proc::spawn(
            "node h1_server.js",
            Command::new("node")
                .arg(record_peers().join("h1_server.js"))
                .arg(port.to_string()),
        )
        .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "node".into(),
            _dir: None,
        }
    }

    /// node `http2` (h2c): fixtures/record/peers/h2_server.js.
    pub fn node_h2() -> Server {
        let port = free_port();
        let proc = Proc::spawn(
            "node h2_server.js",
            Command::new("node")
                .arg(record_peers().join("h2_server.js"))
                .arg(port.to_string()),
        )
        .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "node".into(),
            _dir: None,
        }
    }

    /// nginx (one process, no daemon) serving [`docroot`], keep-alive on.
    pub fn nginx() -> Server {
        let dir = TempDir::new("nginx");
        let root = dir.path().join("www");
        docroot(&root);
        let port = free_port();
        let d = dir.path().display();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 keepalive_timeout 120s;\n\
                 types {{ text/plain txt; application/json json; text/html html; application/octet-stream bin; }}\n\
                 server {{ listen 127.0.0.1:{port}; root {}; etag off; }}\n}}\n",
                root.display()
            ),
        )
        .unwrap();
        let proc = Proc::spawn(
            "nginx",
            Command::new("/usr/sbin/nginx")
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path()),
        )
        .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "nginx".into(),
            _dir: Some(dir),
        }
    }

    /// nghttpd --no-tls (h2c by prior knowledge) serving [`docroot`].
    pub fn nghttpd() -> Server {
        let dir = TempDir::new("nghttpd");
        docroot(dir.path());
        let port = free_port();
        let proc = Proc::spawn(
            "nghttpd",
            Command::new("/usr/sbin/nghttpd")
                .args(["--no-tls", "-a", "127.0.0.1", "-d"])
                .arg(dir.path())
                .arg(port.to_string()),
        )
        .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "nghttpd".into(),
            _dir: Some(dir),
        }
    }

    /// A Go program from fixtures/record/peers/PKG run as `BIN ARGS.. PORT`.
    pub fn go(pkg: &str, args: &[&str]) -> Server {
        let bin = go_build(pkg);
        let port = free_port();
        let proc = Proc::spawn(pkg, Command::new(&bin).args(args).arg(port.to_string()))
            .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: pkg.chars().take(15).collect(),
            _dir: None,
        }
    }

    /// The grpcio Echo server of fixtures/record/peers/grpc.
    pub fn grpc_python(stubs: &Path) -> Server {
        let port = free_port();
        let proc = Proc::spawn(
            "grpc server.py",
            Command::new(PYTHON)
                .arg(record_peers().join("grpc/server.py"))
                .arg(stubs)
                .arg(port.to_string())
                .env("no_proxy", "*")
                .env("GRPC_ENABLE_FORK_SUPPORT", "0"),
        )
        .wait_listening("127.0.0.1", port);
        Server {
            proc,
            port,
            comm: "python3".into(),
            _dir: None,
        }
    }
}

/// Fixed files (the same as the fixture recorder's): `index.html` 59 B,
/// `small.txt` 2200 B, `data.json`, `medium.bin` 8192 B, `large.bin`
/// 600 KiB; modified
/// 2024-01-01 00:00:00 GMT so `If-Modified-Since` gets a 304.
pub fn docroot(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = (0..40)
        .map(|i| format!("line {i:04}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    let items: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let json = format!("{{\"items\": [{}]}}", items.join(", "));
    let medium = super::pattern(2, 8192);
    let large = super::pattern(3, 600 * 1024);
    let files: [(&str, &[u8]); 5] = [
        (
            "index.html",
            b"<!doctype html>\n<title>sniff fixtures</title>\n<p>hello</p>\n",
        ),
        ("small.txt", text.as_bytes()),
        ("data.json", json.as_bytes()),
        ("medium.bin", &medium),
        ("large.bin", &large),
    ];
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_704_067_200))
            .unwrap();
    }
}

pub const FIXED_HTTP_DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// A client run to its end: its pid, and its stdout.
pub struct Ran {
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// Our peers print one JSON line per request in the fixtures' format.
    pub fn did(&self) -> Vec<Did> {
        self.json_lines()
            .into_iter()
            .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}")))
            .collect()
    }

    /// curl `-w '%{json}\n'` lines.
    pub fn curl_did(&self) -> Vec<Did> {
        self.json_lines().iter().map(from_curl).collect()
    }
}

/// Runs a client to its end; panics if it fails.
pub fn run(cmd: &mut Command) -> Ran {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let ran = Ran {
        pid,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        ran.stdout,
        ran.stderr
    );
    ran
}

/// `curl -s OPTS` with `-w '%{json}\n' -o /dev/null` for each URL (one
/// process: keep-alive where the server allows it).
pub fn curl(opts: &[&str], urls: &[&str]) -> Ran {
    let mut cmd = Command::new("curl");
    cmd.arg("-s").args(opts);
    for u in urls {
        cmd.args(["-w", "%{json}\\n", "-o", "/dev/null", u]);
    }
    run(&mut cmd)
}

/// One curl process making one transfer per entry, each with its own
/// options (`--next` between them), reusing its connection where it can.
pub fn curl_next(transfers: &[(&[&str], &str)]) -> Ran {
    let mut cmd = Command::new("curl");
    for (i, (opts, url)) in transfers.iter().enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.arg("-s")
            .args(*opts)
            .args(["-w", "%{json}\\n", "-o", "/dev/null", url]);
    }
    run(&mut cmd)
}

/// Builds a Go peer of fixtures/record/peers in GOPATH mode from Debian's
/// packages (no module proxy here); cached across tests and runs.
pub fn go_build(pkg: &str) -> PathBuf {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-peers");
    std::fs::create_dir_all(&out_dir).unwrap();
    let bin = out_dir.join(pkg);
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(record_peers().join(pkg))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", out_dir.join("cache"))
        .status()
        .expect("go (Debian's golang-go) builds the Go peers");
    assert!(status.success(), "go build {pkg} failed");
    bin
}

/// Python stubs of fixtures/record/peers/grpc/echo.proto, made with
/// grpc_tools (python3-grpc-tools) into `dir`.
pub fn grpc_stubs(dir: &Path) {
    let proto = record_peers().join("grpc");
    let status = Command::new(PYTHON)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto.display()))
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .arg(proto.join("echo.proto"))
        .status()
        .unwrap();
    assert!(status.success(), "grpc_tools.protoc failed");
}
