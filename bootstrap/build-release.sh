#!/usr/bin/env bash
# Builds the static release binaries CodeBuild runs (x86_64 and aarch64 musl) and lays them out
# as install.sh expects them (buildspecs/README.md, "Bucket layout"):
#   target/dist/<version>/cachectl-<target> and cachectl-<target>.sha256, target/dist/latest
# Upload with: aws s3 cp --recursive target/dist s3://BUCKET/cachectl/bin/
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need_apt() { dpkg -s "$1" >/dev/null 2>&1 || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }; }

# x86_64: musl-gcc compiles the C in zstd, ring and mimalloc.
need_apt musl-tools
# aarch64: Debian's cross gcc compiles that C and links; Rust's musl target brings its own libc.
need_apt gcc-aarch64-linux-gnu
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl

export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
out="target/dist/$version"
mkdir -p "$out"
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  cargo build --release --locked --target "$t"
  cp "target/$t/release/cachectl" "$out/cachectl-$t"
  (cd "$out" && sha256sum "cachectl-$t" > "cachectl-$t.sha256")
  echo "built $out/cachectl-$t ($(stat -c %s "$out/cachectl-$t") bytes)"
done
echo "$version" > target/dist/latest
