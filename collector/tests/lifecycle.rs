//! sniff's life around its programs: clear errors without privileges, and
//! nothing of ours left loaded after it exits, however it exits.

mod common;

use std::{collections::HashSet, process::Command, time::Duration};

use common::{SNIFF, Sniff, can_load_ebpf, serial};

fn loaded_program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .collect()
}

fn assert_cleans_up(stop: impl FnOnce(Sniff) -> std::process::ExitStatus, how: &str) {
    assert_cleans_up_with(&["--raw", "--json", "--comm", "no-such-comm"], stop, how);
}

fn assert_cleans_up_with(
    args: &[&str],
    stop: impl FnOnce(Sniff) -> std::process::ExitStatus,
    how: &str,
) {
    let before = loaded_program_ids();
    let sniff = Sniff::start(args);
    let during = loaded_program_ids();
    let ours: HashSet<u32> = during.difference(&before).copied().collect();
    assert!(
        ours.len() >= 31,
        "{how}: expected our programs loaded, saw {}",
        ours.len()
    );
    let status = stop(sniff);
    // Program release is asynchronous in the kernel (RCU): give it a moment.
    let mut left = ours.clone();
    for _ in 0..50 {
        let now = loaded_program_ids();
        left = ours.intersection(&now).copied().collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        left.is_empty(),
        "{how}: programs still loaded: {left:?} (exit {status:?})"
    );
}

#[test]
fn nothing_stays_loaded_after_exit() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    assert_cleans_up(
        |s| {
            let out = s.stop_with(libc::SIGINT);
            assert!(out.status.success(), "{}", out.stderr);
            assert!(out.stderr.contains("stopped"), "{}", out.stderr);
            out.status
        },
        "Ctrl-C",
    );
    assert_cleans_up(
        |s| {
            let out = s.stop_with(libc::SIGTERM);
            assert!(out.status.success(), "{}", out.stderr);
            out.status
        },
        "SIGTERM",
    );
    assert_cleans_up(|s| s.stop_with(libc::SIGKILL).status, "SIGKILL");

    // --duration ends it by itself. Only the programs this sniff loaded
    // are checked: other programs may come and go meanwhile.
    assert_cleans_up_with(
        &[
            "--raw",
            "--json",
            "--duration",
            "2",
            "--comm",
            "no-such-comm",
        ],
        |s| {
            let out = s.finish();
            assert!(out.status.success(), "{}", out.stderr);
            out.status
        },
        "--duration",
    );
}

#[test]
fn without_privileges_says_what_is_missing() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: run it directly.
        let out = Command::new(SNIFF).arg("--raw").output().unwrap();
        assert_eq!(out.status.code(), Some(77));
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(SNIFF)
        .arg("--raw")
        .output()
        .expect("setpriv (util-linux) runs sniff as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(
        stderr.contains("CAP_BPF") && stderr.contains("CAP_PERFMON"),
        "{stderr}"
    );
    assert!(
        stderr.lines().count() <= 3,
        "a message, not a stack of errors: {stderr}"
    );
}

#[test]
fn help_teaches() {
    let out = Command::new(SNIFF).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "--raw",
        "--json",
        "--pid",
        "--port",
        "--comm",
        "--duration",
        "Examples",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
