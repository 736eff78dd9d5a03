#!/usr/bin/env bash
# Installs whatever this machine lacks to build, run and test sniff, and
# nothing else: Debian packages (scripts/apt-packages.txt), the pinned Rust
# toolchain (rust-toolchain.toml), bpf-linker built against Debian's LLVM 22,
# and the tracefs mount. Idempotent; takes well under a second when all is
# already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "$1 needs root: run this again with sudo"
        exit 1
    fi
}

# --- Debian packages --------------------------------------------------------
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$root/scripts/apt-packages.txt" | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root "installing ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust toolchain -----------------------------------------------------------
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v rustup >/dev/null 2>&1; then
    say "installing rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none >/dev/null
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1 ||
    ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
    say "installing Rust $toolchain (with rust-src, rustfmt, clippy)"
    rustup toolchain install "$toolchain" --profile minimal --component rust-src,rustfmt,clippy >/dev/null
fi

# --- bpf-linker (links the eBPF programs; must use the same LLVM as rustc) ---
linker_version="0.13"
if ! bpf-linker --version 2>/dev/null | grep -q "bpf-linker $linker_version"; then
    say "building bpf-linker $linker_version against Debian's LLVM 22 (about a minute)"
    LLVM_PREFIX=/usr/lib/llvm-22 cargo "+$toolchain" install --quiet --locked \
        bpf-linker --version "~$linker_version" --no-default-features --features llvm-22
fi

# --- tracefs (syscall tracepoints live there) ---------------------------------
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    need_root "mounting tracefs"
    say "mounting tracefs on /sys/kernel/tracing"
    mount -t tracefs nodev /sys/kernel/tracing
fi
