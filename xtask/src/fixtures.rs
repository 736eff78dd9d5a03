//! `cargo xtask fixtures [NAME...]`: re-record the real-peer fixtures.
//!
//! Runs `fixtures/record/record-all.sh`, which checks for the peers and
//! capture tools (installing nothing), records each scenario on loopback and
//! writes `fixtures/data/<name>.{pcap,pcapng,json,tshark.json}`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// Record the named scenarios, or all of them when `names` is empty.
pub fn record(names: &[String]) -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent directory")?;
    let script = root.join("fixtures/record/record-all.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(names)
        .current_dir(&root)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its messages above say what is missing or which recording failed",
            script.display()
        );
    }
    Ok(())
}
