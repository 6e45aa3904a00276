#!/usr/bin/env bash
# Builds cachectl and runs its main job on the embedded default store (a local directory under
# $XDG_CACHE_HOME or ~/.cache; no AWS account): saves this repository's src/ and docs/ under a
# key made from Cargo.lock, restores them into a fresh directory, and compares the trees.
# A second run shows the key is immutable: the save is skipped, the restore still hits.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
bin="$PWD/target/release/cachectl"
key="demo-$(uname -s)-$(uname -m)-$("$bin" hash-files Cargo.lock 'src/**' | cut -c1-16)"

"$bin" save --key "$key" --path src --path docs
work="$(mktemp -d)"
(cd "$work" && "$bin" restore --key "$key" --restore-key "demo-$(uname -s)-" --path src --path docs)
diff -r src "$work/src" && diff -r docs "$work/docs"
echo "demo: src/ and docs/ restored into $work, identical to the originals"
