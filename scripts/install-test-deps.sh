#!/usr/bin/env bash
# System packages the test suite and the bench use beyond Node, installed from Debian:
#   - Mesa 25's software Vulkan (bookworm-backports), so the webgpu backend has an adapter;
#   - PyTorch 1.13 + OpenBLAS + numpy, for the independent GPT-2 reference and the bench's peer;
#   - chromium (and a small CJK font for the zh-CN screenshots), for the renderer's e2e tests.
# Idempotent; needs root for apt. Without root it only reports what is missing (those tests skip).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: not root; skipping apt (webgpu and PyTorch cross-checks will be skipped)"
  exit 0
fi
bash scripts/install-webgpu-deps.sh
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  echo "install-test-deps: python3-torch already installed"
else
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3-torch python3-numpy libopenblas0-pthread >/dev/null
  echo "install-test-deps: installed python3-torch"
fi
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi 'wqy'; then
  echo "install-test-deps: chromium already installed"
else
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  echo "install-test-deps: installed chromium"
fi
