#!/bin/bash
# Installs the Debian 12 packages gattnc needs, only those that are missing,
# so running it again is a no-op. Needs root (or sudo) only when something
# is missing.
set -euo pipefail
# libopenblas0-pthread: without it Debian's python3-torch multiplies matrices with
# the reference BLAS (libblas3, ~0.4 GFLOP/s), which makes bench/run.py's PyTorch
# column meaningless; installing it switches the libblas.so.3 alternative.
# libfuzzer-14-dev: libFuzzer for clang 14, used by tests/fuzz (make test-fuzz).
PKGS=(gcc g++ make cmake pkg-config flex bison llvm-dev libffi-dev libgtest-dev
      libcjson-dev clang libfuzzer-14-dev python3 python3-torch python3-numpy libopenblas0-pthread)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
