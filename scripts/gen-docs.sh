#!/usr/bin/env bash
# Generates the man pages and shell completions of ftserver and ftclient from their clap
# definitions (the xtask crate), into target/docs unless a directory is given:
#   scripts/gen-docs.sh [DIR]   ->  DIR/man/man1/{ftserver,ftclient}.1
#                                   DIR/completions/{ftserver,ftclient}.bash, _NAME (zsh), NAME.fish, ...
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/docs}
command -v cargo >/dev/null || { echo "gen-docs: cargo not found on PATH: install Rust (https://rustup.rs)" >&2; exit 1; }
cargo run --quiet --locked -p xtask -- docs "$out"
