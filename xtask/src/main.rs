//! Project tasks: `cargo xtask <command>` (or `./x <command>`, which sets the
//! machine up first).

mod bench;
mod fixtures;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "sniff's project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every test: unit, replay and kernel tests (the latter need root;
    /// under CI=true they fail instead of skipping without it).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks; figures go to BENCHMARKS.md by hand.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// Re-record the real-peer fixtures (all, or the named ones) on loopback,
    /// with tcpdump and `sniff record` at once, then write their goldens.
    /// Needs root.
    Fixtures {
        /// Only rewrite the golden outputs (`sniff replay FILE --json`) of the
        /// recordings as they are; needs no root.
        #[arg(long)]
        golden: bool,
        names: Vec<String>,
    },
    /// Print the Go struct offsets table (collector/src/golang/offsets.rs
    /// `TABLE`) from the DWARF of Go test programs built with this
    /// machine's Go and Go libraries.
    GoOffsets,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Test { args } => test(&args),
        Cmd::Bench { which } => bench::run(which),
        Cmd::Fixtures {
            golden: false,
            names,
        } => fixtures::record(&names),
        Cmd::Fixtures {
            golden: true,
            names,
        } => fixtures::golden(&names),
        Cmd::GoOffsets => go_offsets(),
    }
}

/// The table is printed by an ignored test of the collector, which has the
/// DWARF reader and the test programs' build helper.
fn go_offsets() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO"))
        .args(["test", "-q", "-p", "collector", "--bin", "sniff", "--"])
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "golang::tests::print_offsets_table",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo test")?;
    if !out.status.success() {
        bail!("printing the offsets table failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("    TableEntry {"))
        .take_while(|l| l.starts_with("    "))
        .collect();
    if table.is_empty() {
        bail!("no table printed (is `go` installed? ./x setup)");
    }
    println!("{}", table.join("\n").trim_end());
    Ok(())
}

fn test(args: &[String]) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["test", "--workspace"])
        .args(args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}
