//! Builds the eBPF programs (`probe-ebpf`) for the BPF target and leaves the
//! object in OUT_DIR, where `src/loader.rs` embeds it.
//!
//! We drive cargo ourselves instead of using aya-build because the programs
//! need `-C target-cpu=v3` (atomic fetch-add for stream positions, 32-bit
//! jumps), and aya-build owns the rustflags.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let root = manifest_dir
        .parent()
        .context("collector has no parent dir")?;
    for dir in [
        "probe-ebpf/src",
        "probe-ebpf/Cargo.toml",
        "probe-common/src",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo::rerun-if-env-changed=SNIFF_SKIP_EBPF");
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("little") => "bpfel-unknown-none",
        Ok("big") => "bpfeb-unknown-none",
        other => bail!("unsupported target endianness {other:?}"),
    };
    let dst = out_dir.join("probe.bpf.o");
    if env::var_os("SNIFF_SKIP_EBPF").is_some() {
        // For `cargo clippy`/docs on machines without bpf-linker: an empty
        // object makes the loader fail with a clear message at run time.
        std::fs::write(&dst, b"")?;
        return Ok(());
    }
    if which("bpf-linker").is_none() {
        bail!(
            "bpf-linker is not installed: run ./x setup (it installs llvm-22-dev and bpf-linker)"
        );
    }
    let target_dir = out_dir.join("ebpf-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // bpf-linker passes LLVM `--bpf-expand-memcpy-in-order` by default,
    // which leaves every memset (even zeroing 3 bytes of padding) to a call
    // of aya-ebpf's byte-at-a-time `memset`: about a tenth of the programs'
    // time per syscall. Without it LLVM writes small fills and copies as
    // plain stores.
    let flags = [
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
        "-Clink-arg=--disable-expand-memcpy-in-order",
        "-Ctarget-cpu=v3",
    ]
    .join("\x1f");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--package", "probe-ebpf", "--bins", "--release"])
        .args(["--target", target, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        // Our stdout is read by cargo as build directives: keep it clean.
        .stdout(std::io::stderr());
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("building the eBPF programs failed ({status}); see the errors above");
    }
    let built = target_dir.join(target).join("release").join("probe");
    std::fs::copy(&built, &dst)
        .with_context(|| format!("copying {} to {}", built.display(), dst.display()))?;
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
