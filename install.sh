#!/bin/sh
# tidegate installer (first form): run as root inside a checkout on Debian. It installs what a fresh
# machine lacks -- Debian packages and Bun from npm at a pinned version -- then the project's npm
# dependencies from the lockfile, and builds dist/tidegate. Safe to run again. POSIX sh.
#
#   sh install.sh            install and build
#   sh install.sh --help
set -eu

BUN_VERSION="1.4.5"
# openssl: interop tests and benchmarks; util-linux: taskset for benchmarks; git: the build stamps
# the commit; ca-certificates: TLS to the registries. eBPF: libbpf1, libelf1 and zlib1g are embedded
# in the binary; clang-14, llvm-14 (llvm-strip-14), libbpf-dev and make rebuild bpf/ byte for byte
# (CI checks it); bpftool reads the objects' BTF in tests and shows what is attached. curl, socat
# and python3 are the real clients the capture tests run as workloads; stunnel4 stands in for either
# end of an mTLS hop in the interop tests; iproute2 makes the test network namespaces. npm is the only route to Bun
# here: Debian's nodejs and npm are added only when no npm is on PATH (an image's own Node.js
# already has one).
DEB_PACKAGES="ca-certificates git openssl util-linux libbpf1 libelf1 zlib1g clang-14 llvm-14 libbpf-dev make bpftool curl socat python3 stunnel4 iproute2"

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  -h|--help)
    sed -n '2,8p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
    exit 0 ;;
  "") ;;
  *) die "unknown option '$1' (try --help)" ;;
esac

[ "$(id -u)" = "0" ] || die "run as root (these machines have no sudo): packages are installed with apt-get"

here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)
if [ -z "$here" ] || [ ! -f "$here/package.json" ] || [ ! -d "$here/src" ]; then
  die "run install.sh from a tidegate checkout (downloading a release binary comes with the packaging work)"
fi
cd "$here"

missing=""
for p in $DEB_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing >/dev/null || die "apt-get install failed for:$missing"
else
  say "Debian packages present"
fi

have_bun=$(bun --version 2>/dev/null || true)
if [ "$have_bun" != "$BUN_VERSION" ]; then
  say "installing Bun $BUN_VERSION from npm (found: ${have_bun:-none})"
  npm install -g --no-fund --no-audit "bun@$BUN_VERSION" >/dev/null 2>&1 || die "npm install -g bun@$BUN_VERSION failed"
  hash -r 2>/dev/null || true
  have_bun=$(bun --version 2>/dev/null || true)
  [ "$have_bun" = "$BUN_VERSION" ] || die "bun $BUN_VERSION not on PATH after install (found: ${have_bun:-none})"
else
  say "Bun $BUN_VERSION present"
fi

say "installing npm dependencies from bun.lock"
bun install --frozen-lockfile >/dev/null || die "bun install --frozen-lockfile failed"

say "building dist/tidegate"
bun run build || die "build failed"
say "done: $(./dist/tidegate --version)"
