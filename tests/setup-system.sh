#!/usr/bin/env bash
# Installs the Debian packages meshpay's tests need, if any are missing.
# CI starts from a bare machine with only Rust and the package registries,
# so nothing may be installed by hand. Safe to run again: it only installs
# what is absent.
#
# Usage: tests/setup-system.sh [--slow]   (--slow adds the slow suites' needs)
set -euo pipefail

# command -> Debian package, for the fast suites.
need=(
  "cc:gcc"
  "nm:binutils"
  "ip:iproute2"
  "make:make"
  "shellcheck:shellcheck"
  "busybox:busybox"
)
if [ "${1:-}" = "--slow" ]; then
  need+=()
fi

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup-system: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "setup-system: need root to install: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
