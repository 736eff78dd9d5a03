//! Our Go test programs for the uprobe tests: built on demand with
//! Debian's Go (1.19) in GOPATH mode against Debian's packaged libraries
//! (`./x setup` installs golang-go and golang-github-gin-gonic-gin-dev),
//! and run as child processes that print their listening address.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use super::in_ci;

/// A program's source directory: `collector/src/golang/testdata/NAME`
/// (shared with the binary analysis tests) or `collector/tests/go/NAME`.
fn source(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("src/golang/testdata").join(name);
    if shared.exists() {
        shared
    } else {
        root.join("tests/go").join(name)
    }
}

/// True if `go` runs. Otherwise prints why, and under CI panics instead.
pub fn go_available() -> bool {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = "`go` is not installed (./x setup installs golang-go)";
        assert!(!in_ci(), "{msg}, and CI=true");
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

/// Builds program `name` into `target/go-uprobes/<dir>/<out>` (once per
/// test process and output) with extra `go build` arguments.
pub fn build(name: &str, dir: &str, out: &str, args: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let dst_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/go-uprobes")
        .join(dir);
    std::fs::create_dir_all(&dst_dir).unwrap();
    // As /proc/PID/exe will name it.
    let dst_dir = dst_dir.canonicalize().unwrap();
    let dst = dst_dir.join(out);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.get_or_insert_with(HashSet::new).contains(&dst) {
        return dst;
    }
    let tmp = dst_dir.join(format!("{out}.tmp{}", std::process::id()));
    let o = Command::new("go")
        .arg("build")
        .args(args)
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(source(name))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go build");
    assert!(
        o.status.success(),
        "go build of {name} failed (./x setup installs golang-go and golang-github-gin-gonic-gin-dev):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A rename gives a new inode: a file attached by an earlier run is
    // never modified in place.
    std::fs::rename(&tmp, &dst).unwrap();
    built.as_mut().unwrap().insert(dst.clone());
    dst
}

/// A running Go test program, killed (by pid) when dropped.
pub struct GoProc {
    pub child: Child,
    /// The address it listens on.
    pub addr: String,
    out: BufReader<ChildStdout>,
}

impl GoProc {
    /// Starts `exe ARGS` and reads the address it prints.
    pub fn start(exe: &Path, args: &[&str]) -> GoProc {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = String::new();
        out.read_line(&mut addr).unwrap();
        let addr = addr.trim().to_string();
        assert!(!addr.is_empty(), "{} printed no address", exe.display());
        GoProc { child, addr, out }
    }

    /// Writes a line to its stdin and returns the line it answers (the
    /// gRPC programs make one call per line).
    pub fn ask(&mut self) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"call\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }
}

impl Drop for GoProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the status code.
pub fn get(addr: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head = String::from_utf8_lossy(&resp);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}
