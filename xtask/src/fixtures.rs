//! `cargo xtask fixtures [--golden] [NAME...]`: the real-peer fixtures.
//!
//! Without `--golden`: re-record the scenarios (all, or the named ones) with
//! `fixtures/record/record-all.sh`, which checks for the peers and capture
//! tools (installing nothing), records each scenario on loopback with tcpdump
//! and `sniff record` at once, and writes
//! `fixtures/data/<name>.{pcap,pcapng,sniff,json,tshark.json}`; then write
//! their golden outputs as below.
//!
//! With `--golden`: only (re)write the golden outputs of the recordings as
//! they are: `sniff replay <capture> --json` into `<name>.golden.jsonl`, and
//! `sniff replay <name>.sniff --json` into `<name>.sniff.golden.jsonl`.
//! A golden whose exchange count differs from the client's account is not
//! written (the replay tests check every field; this only stops blessing
//! an output that is plainly wrong, e.g. HTTP/2 before it is decoded).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};
use serde_json::Value;

fn root() -> anyhow::Result<PathBuf> {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent directory")
}

/// Builds `sniff` (debug) and returns its path, as cargo reports it.
fn build_sniff(root: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "collector",
            "--bin",
            "sniff",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("building sniff failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "sniff")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo built no sniff executable")
}

/// Re-record the named scenarios (all when `names` is empty), then write
/// their goldens.
pub fn record(names: &[String]) -> anyhow::Result<()> {
    let root = root()?;
    let sniff = build_sniff(&root)?;
    let script = root.join("fixtures/record/record-all.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(names)
        .env("SNIFF", &sniff)
        .current_dir(&root)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its messages above say what is missing or which recording failed",
            script.display()
        );
    }
    write_goldens(&root, &sniff, names)
}

/// Write the goldens of the named recordings (all when `names` is empty).
pub fn golden(names: &[String]) -> anyhow::Result<()> {
    let root = root()?;
    let sniff = build_sniff(&root)?;
    write_goldens(&root, &sniff, names)
}

fn write_goldens(root: &Path, sniff: &Path, names: &[String]) -> anyhow::Result<()> {
    let data = root.join("fixtures/data");
    let mut all = Vec::new();
    for e in fs::read_dir(&data).with_context(|| format!("reading {}", data.display()))? {
        let f = e?.file_name().to_string_lossy().into_owned();
        if let Some(name) = f.strip_suffix(".json")
            && !name.ends_with(".tshark")
        {
            all.push(name.to_string());
        }
    }
    all.sort();
    for n in names {
        if !all.contains(n) {
            bail!("no recording named {n:?}; known: {}", all.join(" "));
        }
    }
    let mut refused = Vec::new();
    for name in all.iter().filter(|n| names.is_empty() || names.contains(n)) {
        let meta: Value = serde_json::from_slice(&fs::read(data.join(format!("{name}.json")))?)
            .with_context(|| format!("fixtures/data/{name}.json"))?;
        let client = meta["exchanges"].as_array().map_or(0, Vec::len);
        // An h2c upgrade may be shown as its own HTTP/1.1 exchange (the
        // 101) besides the HTTP/2 stream that carries the response.
        let upgrades = meta["exchanges"].as_array().map_or(0, |ex| {
            ex.iter()
                .filter(|e| {
                    e["interim"]
                        .as_array()
                        .is_some_and(|i| i.iter().any(|c| c == 101))
                })
                .count()
        });
        let mut views = vec![(
            meta["file"]
                .as_str()
                .context("no capture file")?
                .to_string(),
            format!("{name}.golden.jsonl"),
        )];
        let sniff_golden = format!("{name}.sniff.golden.jsonl");
        match meta["sniff"].as_str() {
            Some(f) => views.push((f.to_string(), sniff_golden)),
            None => {
                let _ = fs::remove_file(data.join(sniff_golden));
            }
        }
        for (file, golden) in views {
            let out = Command::new(sniff)
                .args(["replay", "--json"])
                .arg(data.join(&file))
                .stderr(Stdio::piped())
                .output()
                .with_context(|| format!("running {} replay", sniff.display()))?;
            if !out.status.success() {
                bail!(
                    "sniff replay fixtures/data/{file} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let shown = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("\"type\":\"exchange\""))
                .count();
            if !(client..=client + upgrades).contains(&shown) {
                eprintln!(
                    "xtask: NOT writing fixtures/data/{golden}: sniff shows {shown} exchanges, \
                     the client made {client}"
                );
                refused.push(golden);
                continue;
            }
            fs::write(data.join(&golden), &out.stdout)?;
            eprintln!("xtask: wrote fixtures/data/{golden} ({shown} exchanges)");
        }
    }
    if !refused.is_empty() {
        bail!(
            "{} golden file(s) not written: {}",
            refused.len(),
            refused.join(" ")
        );
    }
    eprintln!(
        "xtask: now run `cargo test -p collector --test replay_fixtures -- --include-ignored` \
         to check the goldens against each client's account"
    );
    Ok(())
}
