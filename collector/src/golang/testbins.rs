//! Real Go binaries for the tests, built on demand from `testdata/` with
//! Debian's Go (1.19) in GOPATH mode against Debian's packaged libraries
//! (gin: golang-github-gin-gonic-gin-dev, grpc-go: golang-google-grpc-dev;
//! `./x setup` installs them).
//!
//! Each (program, variant) is built once per test process into
//! `target/golang-testbins/`. Without `go` the tests skip with a message,
//! unless `CI=true`, where that is a failure.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Program {
    /// net/http server whose handler calls itself through net/http's client.
    NetHttp,
    /// The same with gin (the seed-000 demo).
    Gin,
    /// grpc-go server and client (health service).
    Grpc,
}

impl Program {
    pub(crate) const ALL: [Program; 3] = [Program::NetHttp, Program::Gin, Program::Grpc];

    fn dir(self) -> &'static str {
        match self {
            Program::NetHttp => "nethttp",
            Program::Gin => "gin",
            Program::Grpc => "grpc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    /// `go build`: symbols and DWARF.
    Full,
    /// `go build -ldflags='-s -w'`: no `.symtab`, no DWARF.
    Stripped,
    /// `go build -buildmode=pie`: position-independent.
    Pie,
}

impl Variant {
    fn suffix(self) -> &'static str {
        match self {
            Variant::Full => "",
            Variant::Stripped => "-stripped",
            Variant::Pie => "-pie",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Variant::Full => &[],
            Variant::Stripped => &["-ldflags=-s -w"],
            Variant::Pie => &["-buildmode=pie"],
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn go_available() -> bool {
    static GO: OnceLock<bool> = OnceLock::new();
    *GO.get_or_init(|| {
        let ok = Command::new("go")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                !in_ci(),
                "`go` is not installed, and CI=true: the Go binary analysis tests need it (./x setup installs golang-go)"
            );
            // Straight to stderr, past the test harness's capture: once.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: `go` is not installed (./x setup installs golang-go); \
                  Go binary analysis tests on real binaries skipped\n",
            );
        }
        ok
    })
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/golang-testbins")
}

/// The path of a built test binary, or `None` when `go` is missing outside
/// CI (the caller returns early: skipped).
pub(crate) fn binary(program: Program, variant: Variant) -> Option<PathBuf> {
    if !go_available() {
        return None;
    }
    type Built = HashMap<(Program, Variant), &'static OnceLock<PathBuf>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let cell: &'static OnceLock<PathBuf> = {
        let mut map = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry((program, variant))
            .or_insert_with(|| Box::leak(Box::new(OnceLock::new())))
    };
    Some(cell.get_or_init(|| build(program, variant)).clone())
}

/// The bytes of a built test binary.
pub(crate) fn bytes(program: Program, variant: Variant) -> Option<Vec<u8>> {
    let path = binary(program, variant)?;
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

fn build(program: Program, variant: Variant) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/golang/testdata")
        .join(program.dir());
    let dir = out_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let name = format!("{}{}", program.dir(), variant.suffix());
    let dst = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.arg("build")
        .args(variant.args())
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local");
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        cmd.env("GOCACHE", dir.join("go-cache"));
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running go build for {name}: {e}"));
    assert!(
        out.status.success(),
        "go build of {} ({variant:?}) failed; the Debian packages golang-go, \
         golang-github-gin-gonic-gin-dev and golang-google-grpc-dev are needed (./x setup):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &dst)
        .unwrap_or_else(|e| panic!("moving {} into place: {e}", tmp.display()));
    dst
}

/// The upstream version of an installed Debian package as a Go module
/// version: `1:0.7.0+dfsg-1` → `v0.7.0`. GOPATH-mode builds record no
/// module versions, so for Debian's packaged libraries this is where the
/// version is known from.
pub(crate) fn debian_module_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v = String::from_utf8(out.stdout).ok()?;
    let v = v.split_once(':').map_or(v.as_str(), |(_, v)| v);
    let v = v.split(['+', '-', '~']).next()?;
    Some(format!("v{v}"))
}
