#!/usr/bin/env bash
# Runs every test, first installing what the tests need on a fresh machine:
# the musl C toolchain and Rust target (static release builds), and a Python venv with
# moto_server (the local AWS endpoint). Safe to re-run; installed pieces are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v musl-gcc >/dev/null 2>&1; then
  echo "tests/run.sh: installing musl-tools" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi

venv=.venv
# Rebuild the venv whenever tests/requirements.txt changes (a stamp holds its digest).
want="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "tests/run.sh: installing tests/requirements.txt into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$venv/.requirements.sha256"
fi
export PATH="$PWD/$venv/bin:$PATH"
export CACHECTL_MOTO_SERVER="$PWD/$venv/bin/moto_server"

cargo test --locked --all-targets "$@"
