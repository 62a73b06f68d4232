#!/usr/bin/env bash
# The bench's llama.cpp peer: node-llama-cpp, whose npm package ships llama.cpp's prebuilt
# binaries (~700 MB). It is a peer of the bench, not a dependency of the app, so it is installed
# beside the project in .cache/peers/llama (gitignored), never into package.json. The version is
# pinned: later releases break `npm ci` here. Idempotent; needs the npm registry, not root.
#
#   scripts/install-bench-peers.sh      then  npm run bench -- --cases generate-124M,prefill-124M
#   scripts/install-bench-peers.sh --cpu-only
#       llama.cpp's CPU binaries for this platform alone (~85 MB instead of ~700 MB, no CUDA or
#       Vulkan builds): what CI installs for test/engine/checkpoint/gguf-llama.test.ts.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.21.1
DIR=${GPT_STUDIO_LLAMA_PEER:-.cache/peers/llama}
INSTALLED="$DIR/node_modules/node-llama-cpp/package.json"

if [ -f "$INSTALLED" ] && node -e '
  const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version;
  process.exit(v === process.argv[2] ? 0 : 1);' "$INSTALLED" "$VERSION"; then
  echo "install-bench-peers: node-llama-cpp $VERSION already installed in $DIR"
  exit 0
fi

mkdir -p "$DIR"
if [ ! -f "$DIR/package.json" ]; then
  echo '{ "private": true, "description": "the bench peers of GPT Studio (scripts/install-bench-peers.sh)" }' \
    >"$DIR/package.json"
fi
# The prebuilt binaries come with the package; never fall back to downloading and building
# llama.cpp's sources in the postinstall step.
PACKAGES=("node-llama-cpp@$VERSION")
OMIT=()
if [ "${1:-}" = "--cpu-only" ]; then
  # node-llama-cpp's prebuilt binaries are optional dependencies, one package per platform
  BINARIES=$(node -p '({ linux: "linux-" + process.arch, darwin: process.arch === "arm64" ?
    "mac-arm64-metal" : "mac-x64", win32: "win-" + process.arch })[process.platform]')
  PACKAGES+=("@node-llama-cpp/$BINARIES@$VERSION")
  OMIT=(--omit=optional)
fi
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
  npm install --save-exact --no-audit --no-fund "${OMIT[@]}" --prefix "$DIR" "${PACKAGES[@]}"
echo "install-bench-peers: installed node-llama-cpp $VERSION in $DIR"
