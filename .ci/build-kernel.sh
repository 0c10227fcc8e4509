#!/usr/bin/env bash
# Build Debian's linux-source-6.1 for the guest suite: tinyconfig + minimal.config into
# build/min, and with --debug also + debug.config into build/debug. Prints each bzImage
# path on stdout (minimal first), progress on stderr.
#
# Everything that can survive between CI runs is reused: the unpacked tree in build/src
# (re-unpacked only when the Debian package changes), the build directories (incremental
# rebuilds), and ccache in ~/.cache/ccache. From scratch on 2 cores it takes minutes;
# a warm rebuild, seconds.
#
# Usage: .ci/build-kernel.sh [--debug]   (as root it installs the build dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."

debug=0
for arg in "$@"; do
  case "$arg" in
    --debug) debug=1 ;;
    *) echo "usage: $0 [--debug]" >&2; exit 2 ;;
  esac
done

deps=(linux-source-6.1 make gcc libc6-dev flex bison bc libelf-dev libssl-dev dwarves cpio
      ccache kmod patch xz-utils)
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${deps[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${deps[@]}" >&2; }
fi

# The tree lives at a fixed path: ccache hits depend on the same paths as last time.
# UFFD_KERNEL_SRC=DIR builds an existing tree instead (the unit tests read it too).
src=${UFFD_KERNEL_SRC:-build/src/linux-source-6.1}
if [ -z "${UFFD_KERNEL_SRC:-}" ]; then
  tarball=/usr/src/linux-source-6.1.tar.xz
  [ -f "$tarball" ] || { echo "ci: $tarball missing: apt-get install linux-source-6.1" >&2; exit 1; }
  stamp=build/src/.unpacked-from
  want="$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %Y "$tarball")"
  if [ ! -f "$src/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "ci: unpacking $tarball ($want) into $src" >&2
    rm -rf "$src" "$stamp"
    mkdir -p build/src
    tar -C build/src -xJf "$tarball"
    echo "$want" > "$stamp"
    # tar keeps the sources' old mtimes, so make would trust stale objects: start over.
    rm -rf build/min build/debug
  fi
fi

# The harness of the Quick start's venv when none is on PATH (an activated venv wins).
harness=$(command -v uffd-harness || true)
[ -n "$harness" ] || [ ! -x .venv/bin/uffd-harness ] || harness=.venv/bin/uffd-harness
if [ -z "$harness" ]; then
  echo "ci: uffd-harness not found on PATH nor in .venv/bin: install the project first (README)" >&2
  exit 1
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-2G}"
command -v ccache >/dev/null && ccache --zero-stats >/dev/null

build() {  # build OUT FRAGMENT...
  local out=$1
  shift
  local args=()
  for frag in "$@"; do args+=(--config "kernel-configs/$frag"); done
  "$harness" kernel build --src "$src" --base tinyconfig "${args[@]}" --out "$out"
}

start=$SECONDS
build build/min minimal.config
"$harness" kernel info build/min/arch/x86/boot/bzImage >&2
if [ "$debug" -eq 1 ]; then
  build build/debug minimal.config debug.config
  "$harness" kernel info build/debug/arch/x86/boot/bzImage >&2
fi
echo "ci: kernels built in $((SECONDS - start)) s" >&2
command -v ccache >/dev/null && ccache --show-stats 2>/dev/null | grep -iE 'hits|misses' >&2 || true
