#!/usr/bin/env bash
# meshpay's whole test suite, from a fresh clone on Debian with Rust.
#
#   tests/run.sh          all suites: the fast ones, then the slow ones
#   tests/run.sh --fast   only the fast suites (unit, property, ABI, single node)
#
# Slow suites (network namespaces, the 802.11s VM) are `#[ignore = "slow: ..."]`
# tests, run here with `-- --ignored` on the same build. Run one alone with
# `cargo test -p meshpay-tests --test <name> -- --ignored`.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
[ "${1:-}" = "--fast" ] && fast=1

if [ $fast -eq 1 ]; then
  tests/setup-system.sh
else
  tests/setup-system.sh --slow
fi

# One build for everything: the system tests run the `meshpay` binary and
# load the plugin libraries from the target directory.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked

if [ $fast -eq 0 ]; then
  cargo test --workspace --locked -- --ignored
fi
