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
    }
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
