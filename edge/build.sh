#!/usr/bin/env bash
# Builds the Worker into edge/build/ (index.js + index_bg.wasm) with no
# network: worker-build with the wasm-bindgen CLI from `cargo install`
# (WASM_BINDGEN_BIN), esbuild from edge/node_modules (ESBUILD_BIN) and no
# wasm-opt (--no-opt). Install those once with scripts/edge-toolchain.
#
# This is wrangler.toml's [build] command; scripts/edge-dev runs it before
# `wrangler dev`. Any failure exits non-zero with the reason on stderr.
set -euo pipefail
edge="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$edge")"

"$root/scripts/edge-toolchain" --check >&2

# Smaller code: the Worker's upload is limited (3 MB gzip on the free plan).
# Set here rather than in the workspace's [profile.release], which the
# native binaries share; wasm32 artifacts live in their own target folder.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-z}"
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}"

WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
ESBUILD_BIN="$edge/node_modules/.bin/esbuild"
export WASM_BINDGEN_BIN ESBUILD_BIN

cd "$edge"
# worker-build prints its progress on stdout; keep stdout for callers.
worker-build --release --no-opt >&2
ls -l "$edge/build/index.js" "$edge/build/index_bg.wasm" >&2
