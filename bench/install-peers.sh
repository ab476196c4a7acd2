#!/bin/sh
# Installs what bench/mtls.ts needs besides tidegate itself, as root on Debian: the peer tunnels
# (nginx with the stream module, haproxy, stunnel), the load generator (wrk), openssl for the peers'
# certificates, taskset and ps. Safe to run again.
#
# No service is started: these machines have no systemd, and a package's postinst would start
# nginx on port 80 (and haproxy) through invoke-rc.d. While installing, /usr/sbin/policy-rc.d
# answers 101 ("action forbidden"); a policy-rc.d that was there before is put back afterwards,
# one this script wrote is removed. POSIX sh.
#
#   sh bench/install-peers.sh
set -eu

PACKAGES="nginx-light libnginx-mod-stream haproxy stunnel4 wrk openssl util-linux procps"
POLICY=/usr/sbin/policy-rc.d
SAVED=/usr/sbin/policy-rc.d.tidegate-bench-saved

say() { printf 'install-peers: %s\n' "$*" >&2; }
die() { printf 'install-peers: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown option '$1' (try --help)" ;;
esac
[ "$(id -u)" = "0" ] || die "run as root: packages are installed with apt-get"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  say "all present:$(printf ' %s' $PACKAGES)"
  exit 0
fi

# A leftover of an interrupted run is the original: put it back first.
[ -e "$SAVED" ] && mv -f "$SAVED" "$POLICY"
had_policy=no
if [ -e "$POLICY" ]; then
  had_policy=yes
  mv "$POLICY" "$SAVED"
fi
restore() {
  rm -f "$POLICY"
  [ "$had_policy" = yes ] && mv -f "$SAVED" "$POLICY"
  return 0
}
trap restore EXIT
trap 'exit 130' INT TERM
printf '#!/bin/sh\n# written by tidegate bench/install-peers.sh while it installs; removed afterwards\nexit 101\n' > "$POLICY"
chmod 0755 "$POLICY"

say "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || die "apt-get update failed"
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null || die "apt-get install failed for:$missing"

# Nothing may be left running from the packages (a policy-rc.d that allowed starts, an old install).
for name in nginx haproxy; do
  pidfile=/run/$name.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "warning: a system $name is running (pid $(cat "$pidfile")); the benchmark does not need it"
  fi
done
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || die "libnginx-mod-stream installed but ngx_stream_module.so is missing"
say "done: $(nginx -v 2>&1), $(haproxy -v | head -1), $(stunnel -version 2>&1 | grep -m1 "^stunnel"), $(wrk -v 2>&1 | head -1)"
