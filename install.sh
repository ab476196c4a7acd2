#!/bin/sh
# tidegate installer. POSIX sh; run `sh install.sh --help` for the options. Two modes:
#
#   checkout  (inside a checkout, or --from-source): as root on Debian, installs what building needs
#             (Debian packages, Bun from npm at a pinned version, the npm dependencies from the
#             lockfile), builds dist/tidegate and installs it as PREFIX/bin/tidegate.
#   download  (curl -fsSL .../install.sh | sh, or --download): fetches the release binary for this
#             machine's architecture and SHA256SUMS from the base URL, installs the binary only if
#             its SHA-256 is the published one. Needs no root when PREFIX/bin is writable.
#
# Both then write a systemd unit (unless --no-unit) and enable it only with --enable where systemd
# runs. Guaranteed: a failure at any step leaves nothing in PREFIX (the binary is staged under a
# temporary name in PREFIX/bin and renamed over the old one only once it is verified and runs) and
# no temporary folder. Safe to run again; running it again is also how to upgrade.
set -eu
unset CDPATH

BUN_VERSION="1.4.5"
DEFAULT_DOWNLOAD_URL="https://github.com/tidegate/tidegate/releases/latest/download"
# openssl: interop tests and benchmarks; util-linux: taskset for benchmarks; git: the build stamps
# the commit; ca-certificates: TLS to the registries. eBPF: libbpf1, libelf1 and zlib1g are embedded
# in the binary; clang-14, llvm-14 (llvm-strip-14), libbpf-dev and make rebuild bpf/ byte for byte
# (CI checks it); bpftool reads the objects' BTF in tests and shows what is attached. curl, socat
# and python3 are the real clients the capture tests run as workloads; stunnel4 stands in for either
# end of an mTLS hop in the interop tests; iproute2 makes the test network namespaces and nftables
# fences a test host's server off from the others. npm is the only route to Bun
# here: Debian's nodejs and npm are added only when no npm is on PATH (an image's own Node.js
# already has one).
DEB_PACKAGES="ca-certificates git openssl util-linux libbpf1 libelf1 zlib1g clang-14 llvm-14 libbpf-dev make bpftool curl socat python3 stunnel4 iproute2 nftables"

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install: error: %s (try --help)\n' "$*" >&2; exit 2; }

usage() {
  cat <<'EOF'
usage: sh install.sh [OPTIONS]
       curl -fsSL .../install.sh | sh -s -- [OPTIONS]

Installs tidegate as PREFIX/bin/tidegate and writes a systemd unit for it.

Inside a checkout (this script's folder holds package.json, src/ and bpf/) it builds from source:
as root, on Debian, it installs the Debian packages and Bun it needs, builds dist/tidegate and
installs that. Anywhere else (or with --download) it downloads the release binary for this
machine's architecture, checks its SHA-256 against the published SHA256SUMS and installs it only
if they match; no root is needed when PREFIX/bin is writable.

options:
  --prefix DIR     install the binary as DIR/bin/tidegate (default /usr/local)
  --from-source    build from the checkout (the script's folder, else the current one)
  --download       download the release binary even inside a checkout
  --unit-dir DIR   write the systemd unit DIR/tidegate.service (default /etc/systemd/system);
                   skipped with a notice in download mode when DIR is not writable
  --no-unit        write no systemd unit
  --enable         after writing the unit, systemctl daemon-reload and enable --now tidegate;
                   where systemd does not run, says so and leaves the unit written, not enabled
  -h, --help       this text

environment:
  TIDEGATE_DOWNLOAD_URL   base URL of the release files (default
                          https://github.com/tidegate/tidegate/releases/latest/download);
                          the script fetches BASE/SHA256SUMS and BASE/tidegate-linux-ARCH,
                          ARCH x64 or arm64
  TMPDIR                  where the private download folder is made (default /tmp)

Exit status: 0 installed; 1 failed, the error line says why (a failed download, check or
build installs nothing); 2 bad options.
EOF
}

PREFIX=/usr/local
UNIT_DIR=/etc/systemd/system
MODE=""
WRITE_UNIT=1
ENABLE=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --prefix)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--prefix needs a directory"; fi
      PREFIX=$2; shift ;;
    --prefix=?*) PREFIX=${1#--prefix=} ;;
    --unit-dir)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--unit-dir needs a directory"; fi
      UNIT_DIR=$2; shift ;;
    --unit-dir=?*) UNIT_DIR=${1#--unit-dir=} ;;
    --from-source) [ "$MODE" != download ] || usage_error "--from-source and --download exclude each other"; MODE=source ;;
    --download) [ "$MODE" != source ] || usage_error "--from-source and --download exclude each other"; MODE=download ;;
    --no-unit) WRITE_UNIT=0 ;;
    --enable) ENABLE=1 ;;
    *) usage_error "unknown option '$1'" ;;
  esac
  shift
done
[ "$WRITE_UNIT" = 1 ] || [ "$ENABLE" = 0 ] || usage_error "--enable needs the unit that --no-unit skips"

# Absolute paths: the unit's ExecStart must be one, and checkout mode changes directory.
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd)" "$1" ;; esac; }
PREFIX=$(absolute "$PREFIX")
UNIT_DIR=$(absolute "$UNIT_DIR")
while [ "${PREFIX%/}" != "$PREFIX" ]; do PREFIX=${PREFIX%/}; done
BIN_DIR="$PREFIX/bin"
UNIT_FILE="${UNIT_DIR%/}/tidegate.service"
# systemd reads %, quotes, backslashes and spaces in ExecStart as specifiers and separators.
if [ "$WRITE_UNIT" = 1 ]; then
  case "$PREFIX" in
    *[!A-Za-z0-9._/+@-]*) usage_error "--prefix '$PREFIX' holds characters a systemd ExecStart cannot carry as they are: pick a plain path, or pass --no-unit" ;;
  esac
fi

# DIR can be written, or created, by this user: it exists and is writable, or its nearest existing
# parent is. Checked before anything is downloaded or built; creates nothing.
can_write() {
  d=$1
  while [ ! -e "$d" ]; do d=$(dirname "$d"); done
  [ -d "$d" ] && [ -w "$d" ]
}

# What a failure must undo: the staged file, the download folder, and the folders install_binary
# made for PREFIX/bin (up to made_dir, the first that did not exist; rmdir removes only empty ones).
staged=""
workdir=""
made_dir=""
cleanup() {
  if [ -n "$staged" ]; then rm -f "$staged"; fi
  if [ -n "$workdir" ]; then rm -rf "$workdir"; fi
  if [ -n "$made_dir" ]; then
    d=$BIN_DIR
    while rmdir "$d" 2>/dev/null && [ "$d" != "$made_dir" ]; do d=$(dirname "$d"); done
  fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Installs file $1 as BIN_DIR/tidegate: copied to a temporary name in BIN_DIR (same file system),
# made 0755, run once with --version, then renamed over the old binary, which a running tidegate
# keeps using until it restarts. A copy that does not run is removed and the old binary stays.
install_binary() {
  d=$BIN_DIR
  while [ ! -e "$d" ]; do made_dir=$d; d=$(dirname "$d"); done
  mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
  # mktemp makes the file exclusively (O_EXCL, 0600): a name planted in BIN_DIR, a symlink say,
  # is never written through.
  staged=$(mktemp "$BIN_DIR/.tidegate.new.XXXXXX") || die "cannot create a file in $BIN_DIR: not installed"
  cat "$1" >"$staged" || die "cannot write $staged: not installed"
  chmod 0755 "$staged" || die "cannot chmod $staged: not installed"
  if ! out=$("$staged" --version 2>&1); then
    die "the new binary does not run here (--version said: $(printf '%s\n' "$out" | head -n 1)): not installed"
  fi
  installed_version=$(printf '%s\n' "$out" | head -n 1)
  mv -f "$staged" "$BIN_DIR/tidegate" || die "cannot rename $staged to $BIN_DIR/tidegate: not installed"
  staged=""
  made_dir=""
  say "installed $BIN_DIR/tidegate: $installed_version"
}

# Writes UNIT_FILE the same way: a temporary name in UNIT_DIR, then a rename.
write_unit() {
  mkdir -p "$UNIT_DIR" || die "cannot create $UNIT_DIR"
  staged=$(mktemp "$UNIT_DIR/.tidegate.service.new.XXXXXX") || die "cannot create a file in $UNIT_DIR"
  cat >"$staged" <<EOF || die "cannot write $staged"
# Written by tidegate's install.sh; running it again rewrites this file.
[Unit]
Description=tidegate: workload identity, capture, mTLS and MCP policy
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$BIN_DIR/tidegate up --foreground
ExecReload=/bin/kill -HUP \$MAINPID
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
  chmod 0644 "$staged" || die "cannot chmod $staged"
  mv -f "$staged" "$UNIT_FILE" || die "cannot rename $staged to $UNIT_FILE"
  staged=""
  say "wrote $UNIT_FILE"
}

unit_and_enable() {
  [ "$WRITE_UNIT" = 1 ] || { say "no systemd unit written (--no-unit)"; return 0; }
  write_unit
  if [ -d /run/systemd/system ]; then
    if [ "$ENABLE" = 1 ]; then
      say "enabling and starting tidegate (systemctl daemon-reload && systemctl enable --now tidegate)"
      systemctl daemon-reload || die "systemctl daemon-reload failed"
      systemctl enable --now tidegate || die "systemctl enable --now tidegate failed (see: systemctl status tidegate)"
      say "tidegate is enabled and running (systemctl status tidegate)"
    else
      say "to start it now and at boot: systemctl daemon-reload && systemctl enable --now tidegate"
    fi
  elif [ "$ENABLE" = 1 ]; then
    say "systemd is not running on this machine: $UNIT_FILE was written but not enabled; start tidegate without it with: $BIN_DIR/tidegate up"
  else
    say "systemd is not running on this machine; start tidegate with: $BIN_DIR/tidegate up"
  fi
}

# ---- checkout mode ----------------------------------------------------------------------------

is_checkout() { [ -f "$1/package.json" ] && [ -d "$1/src" ] && [ -d "$1/bpf" ] && [ -f "$1/install.sh" ]; }

# Where this script lives, if it is a file: piped into sh, $0 is the shell's name, not a path.
script_dir=""
if [ -f "$0" ]; then script_dir=$(cd "$(dirname "$0")" && pwd); fi

# Runs "$@" with its output shown when stderr is a terminal (progress); otherwise its stdout is
# discarded and its stderr (errors) kept.
quiet_unless_tty() {
  if [ -t 2 ]; then "$@" >&2; else "$@" >/dev/null; fi
}

from_source() {
  here=""
  if [ -n "$script_dir" ] && is_checkout "$script_dir"; then here=$script_dir
  elif is_checkout "$(pwd)"; then here=$(pwd)
  else die "--from-source needs a tidegate checkout: run install.sh from one (git clone, then sh install.sh)"
  fi
  [ "$(id -u)" = "0" ] || die "building from source needs root (these machines have no sudo): packages are installed with apt-get; without root use --download --prefix DIR"
  can_write "$BIN_DIR" || die "cannot write $BIN_DIR"
  cd "$here"
  say "building from the checkout $here"

  missing=""
  for p in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
  if [ -n "$missing" ]; then
    say "installing Debian packages:$missing (a few minutes on a fresh machine)"
    export DEBIAN_FRONTEND=noninteractive
    quiet_unless_tty apt-get update -q || die "apt-get update failed"
    # shellcheck disable=SC2086
    quiet_unless_tty apt-get install -y -q --no-install-recommends $missing || die "apt-get install failed for:$missing"
  else
    say "Debian packages present"
  fi

  have_bun=$(bun --version 2>/dev/null || true)
  if [ "$have_bun" != "$BUN_VERSION" ]; then
    say "installing Bun $BUN_VERSION from npm (found: ${have_bun:-none})"
    quiet_unless_tty npm install -g --no-fund --no-audit "bun@$BUN_VERSION" || die "npm install -g bun@$BUN_VERSION failed"
    hash -r 2>/dev/null || true
    have_bun=$(bun --version 2>/dev/null || true)
    [ "$have_bun" = "$BUN_VERSION" ] || die "bun $BUN_VERSION not on PATH after install (found: ${have_bun:-none})"
  else
    say "Bun $BUN_VERSION present"
  fi

  say "installing npm dependencies from bun.lock"
  quiet_unless_tty bun install --frozen-lockfile || die "bun install --frozen-lockfile failed"

  say "building dist/tidegate (about 30 s)"
  bun run build || die "build failed"

  say "installing dist/tidegate as $BIN_DIR/tidegate"
  install_binary "$here/dist/tidegate"
  unit_and_enable
}

# ---- download mode ----------------------------------------------------------------------------

# Bun's names for the architectures release binaries are built for.
release_arch() {
  os=$(uname -s)
  [ "$os" = Linux ] || die "unsupported operating system '$os': release binaries are built for Linux only"
  m=$(uname -m)
  case "$m" in
    x86_64|amd64) echo x64 ;;
    aarch64|arm64) echo arm64 ;;
    *) die "unsupported architecture '$m': release binaries exist for x86_64 (x64) and aarch64 (arm64) only" ;;
  esac
}

# fetch NAME [progress]: BASE_URL/NAME into $workdir/NAME, or exits with a line naming the URL.
# Unreachable (no HTTP answer) and HTTP errors (404: the file is not there) are told apart.
fetch() {
  name=$1
  url="$BASE_URL/$name"
  out="$workdir/$name"
  err="$workdir/fetch.err"
  : >"$err"
  rc=0
  code=""
  say "downloading $name from $url"
  # With curl a redirect is followed only to https (a plain http base URL stays the operator's own
  # choice); wget has no such switch and follows any redirect (docs/operations.md says so).
  if [ "$FETCHER" = curl ]; then
    if [ "${2:-}" = progress ] && [ -t 2 ]; then
      code=$(curl -fL -# --proto-redir =https --connect-timeout 30 --retry 2 -w '%{http_code}' -o "$out" "$url") || rc=$?
    else
      code=$(curl -fsSL --proto-redir =https --connect-timeout 30 --retry 2 -w '%{http_code}' -o "$out" "$url" 2>"$err") || rc=$?
    fi
    [ "$rc" = 0 ] && return 0
    detail=$(tail -n 1 "$err" | sed 's/^curl: ([0-9]*) //')
    case "$rc" in
      5|6|7|28) die "cannot reach $BASE_URL to download $name (${detail:-curl exit $rc}); TIDEGATE_DOWNLOAD_URL sets another base URL" ;;
      22) if [ "$code" = 404 ]; then die "$name not found: $url answered HTTP 404"; fi
          die "downloading $name failed: $url answered HTTP $code" ;;
      *) die "downloading $name from $url failed: ${detail:-curl exit $rc}" ;;
    esac
  else
    if [ "${2:-}" = progress ] && [ -t 2 ]; then
      wget -T 30 -O "$out" "$url" || rc=$?
    else
      wget -q -T 30 -O "$out" "$url" 2>"$err" || rc=$?
    fi
    [ "$rc" = 0 ] && return 0
    # GNU wget: 4 network failure, 8 the server answered with an error (busybox says 1 for all).
    case "$rc" in
      4) die "cannot reach $BASE_URL to download $name (wget: network failure); TIDEGATE_DOWNLOAD_URL sets another base URL" ;;
      8) die "$name not downloaded: $url answered an HTTP error, 404 when the file is not there (wget exit 8)" ;;
      *) die "downloading $name from $url failed (wget exit $rc)" ;;
    esac
  fi
}

sha256_of() {
  case "$HASHER" in
    sha256sum) sha256sum "$1" | awk '{ print tolower($1) }' ;;
    shasum) shasum -a 256 "$1" | awk '{ print tolower($1) }' ;;
    openssl) openssl dgst -sha256 "$1" | awk '{ print tolower($NF) }' ;;
  esac
}

download() {
  arch=$(release_arch)
  ARTIFACT="tidegate-linux-$arch"
  BASE_URL=${TIDEGATE_DOWNLOAD_URL:-$DEFAULT_DOWNLOAD_URL}
  while [ "${BASE_URL%/}" != "$BASE_URL" ]; do BASE_URL=${BASE_URL%/}; done
  case "$BASE_URL" in
    https://?*) ;;
    http://?*) say "note: $BASE_URL is plain http: the checksum then catches a damaged download, not a tampered one" ;;
    *) die "TIDEGATE_DOWNLOAD_URL '$BASE_URL' is not an http(s) URL" ;;
  esac

  can_write "$BIN_DIR" || die "cannot write $BIN_DIR as $(id -un 2>/dev/null || id -u): run as root, or pick a writable --prefix DIR (the binary goes to DIR/bin/tidegate)"
  if [ "$WRITE_UNIT" = 1 ] && ! can_write "$UNIT_DIR"; then
    [ "$ENABLE" = 0 ] || die "--enable needs the unit, but $UNIT_DIR is not writable by this user: run as root"
    say "$UNIT_DIR is not writable by this user: no systemd unit will be written (run as root for one, or pass --no-unit)"
    WRITE_UNIT=0
  fi

  if command -v curl >/dev/null 2>&1; then FETCHER=curl
  elif command -v wget >/dev/null 2>&1; then FETCHER=wget
  else die "neither curl nor wget is installed: install one of them (apt-get install curl) and run this again"
  fi
  if command -v sha256sum >/dev/null 2>&1; then HASHER=sha256sum
  elif command -v shasum >/dev/null 2>&1; then HASHER=shasum
  elif command -v openssl >/dev/null 2>&1; then HASHER=openssl
  else die "none of sha256sum, shasum or openssl is installed: the download cannot be verified"
  fi

  say "downloading the release for linux-$arch from $BASE_URL (with $FETCHER)"
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/tidegate-install.XXXXXX") || die "cannot make a temporary folder in ${TMPDIR:-/tmp}"

  fetch SHA256SUMS
  # sha256sum's format: "<hex>  <name>", or "<hex> *<name>" for binary mode.
  expected=$(awk -v f="$ARTIFACT" '{ sub(/\r$/, "") } $2 == f || $2 == "*" f { print tolower($1); exit }' "$workdir/SHA256SUMS")
  [ -n "$expected" ] || die "$BASE_URL/SHA256SUMS has no line for $ARTIFACT: not installed"
  case "$expected" in
    *[!0-9a-f]*) die "$BASE_URL/SHA256SUMS has a malformed hash for $ARTIFACT: not installed" ;;
  esac
  [ "${#expected}" = 64 ] || die "$BASE_URL/SHA256SUMS has a malformed hash for $ARTIFACT: not installed"

  fetch "$ARTIFACT" progress
  actual=$(sha256_of "$workdir/$ARTIFACT")
  [ -n "$actual" ] || die "$HASHER could not hash the downloaded $ARTIFACT: not installed"
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $ARTIFACT from $BASE_URL/$ARTIFACT: expected sha256 $expected (SHA256SUMS), got $actual; not installed"
  fi
  say "verified $ARTIFACT: sha256 $actual matches SHA256SUMS ($HASHER)"

  install_binary "$workdir/$ARTIFACT"
  rm -rf "$workdir"
  workdir=""
  unit_and_enable
}

if [ -z "$MODE" ]; then
  if [ -n "$script_dir" ] && is_checkout "$script_dir"; then
    MODE=source
    say "run from a checkout: building from source (--download installs the release binary instead)"
  else
    MODE=download
  fi
fi
if [ "$MODE" = source ]; then from_source; else download; fi
say "done"
