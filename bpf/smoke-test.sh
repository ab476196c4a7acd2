#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Smoke test of bpf/tidegate.bpf.o with bpftool and python3 only (no agent): loads the object,
# attaches the four connect and sendmsg programs to a test cgroup, writes settings and policies by
# hand (bpf/README.md, bpf/tidegate.h), and checks from processes moved into child cgroups that
# denies fail with EPERM, directs connect, redirects arrive at the proxy with a record keyed by the
# client socket's cookie (SO_COOKIE, the value of bpf_get_socket_cookie), UDP follows its default deny, IPv6 and IPv4-mapped follow the same policy, processes outside
# are untouched, and the counters and ring buffer events are exactly what was done.
#
# Root only. Everything it makes is named tidegate-test-bpf-smoke-<pid> and removed on exit (also
# leftovers of earlier runs whose process is gone). Exit 0 on success, else 1 with a message.
set -euo pipefail

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
say() { echo "smoke: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"
for tool in bpftool setpriv mountpoint; do command -v "$tool" >/dev/null || fail "missing $tool"; done
PY=/usr/bin/python3 # not a per-user shim: a client runs as nobody
[ -x "$PY" ] || fail "missing $PY"
HERE=$(cd -- "$(dirname -- "$0")" && pwd)
OBJ=${TG_OBJ:-$HERE/tidegate.bpf.o}
[ -f "$OBJ" ] || fail "no object $OBJ (run make -C bpf)"
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG2" ] || fail "no cgroup2 mount"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

PREFIX=tidegate-test-bpf-smoke-
NAME=$PREFIX$$
ROOT=$CG2/$NAME
PIN=/sys/fs/bpf/$NAME
HOOKS="cgroup_inet4_connect:tg_connect4 cgroup_inet6_connect:tg_connect6 cgroup_udp4_sendmsg:tg_sendmsg4 cgroup_udp6_sendmsg:tg_sendmsg6"
TMP=""
LISTENER=""

remove_instance() { # $1: instance name; idempotent
	local root=$CG2/$1 pin=/sys/fs/bpf/$1 h i
	if [ -d "$root" ]; then
		for h in $HOOKS; do
			bpftool cgroup detach "$root" "${h%%:*}" pinned "$pin/progs/${h#*:}" 2>/dev/null || true
		done
		echo 1 >"$root/cgroup.kill" 2>/dev/null || true
		for i in $(seq 50); do grep -q "populated 0" "$root/cgroup.events" && break; sleep 0.1; done
		find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[ ! -d "$root" ] || echo "smoke: warning: could not remove $root" >&2
	fi
	rm -rf "$pin"
}

cleanup() {
	local rc=$?
	if [ -n "$LISTENER" ]; then kill "$LISTENER" 2>/dev/null || true; wait "$LISTENER" 2>/dev/null || true; fi
	remove_instance "$NAME"
	[ -z "$TMP" ] || rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for old in "$CG2/$PREFIX"* "/sys/fs/bpf/$PREFIX"* "/tmp/$PREFIX"*; do
	[ -e "$old" ] || continue
	base=${old##*/} pid=${old##*-} pid=${pid%%.*}
	kill -0 "$pid" 2>/dev/null && continue
	say "removing leftover $old"
	case $old in /tmp/*) rm -rf "$old" ;; *) remove_instance "${base%%.*}" ;; esac
done

TMP=$(mktemp -d "/tmp/$NAME.XXXXXX")
chmod 755 "$TMP"
cat >"$TMP/tg.py" <<'PYEOF'
# Helpers of bpf/smoke-test.sh: listeners, clients, byte encoders for bpftool, decoders.
import ctypes, errno, json, mmap, os, selectors, socket, struct, sys

A4, A6 = socket.AF_INET, socket.AF_INET6
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
HOOKS = {1: "connect4", 2: "connect6", 3: "sendmsg4", 4: "sendmsg6"}
REASONS = {1: "rule", 2: "no_rule", 3: "unknown_cgroup", 4: "no_proxy"}
COUNTERS = ["CONNECT", "DENY", "DIRECT", "REDIRECT", "SENDMSG", "UNKNOWN_CGROUP", "RECORD_FAIL", "EVENT_DROP", "RECORD_LIMIT"]
SO_COOKIE = 57

def hexs(b): return " ".join(f"{x:02x}" for x in b)
def addr16(fam, a): return socket.inet_pton(A4, a) + bytes(12) if fam == 4 else socket.inet_pton(A6, a)
def show(fam, raw): return socket.inet_ntop(A4, raw[:4]) if fam == 4 else socket.inet_ntop(A6, raw)

def listen(portfile, logfile):
    libc.prctl(1, 15)  # PR_SET_PDEATHSIG SIGTERM: never outlive the script, even one killed with -9
    if os.getppid() == 1: sys.exit("parent gone")
    sel, log, ports = selectors.DefaultSelector(), open(logfile, "a", buffering=1), {}
    def open_one(name, fam, addr, port, kind, reply=b""):
        s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == A6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            if kind == "tcp": s.listen(64)
        except OSError:
            s.close(); raise
        ports[name] = s.getsockname()[1]
        sel.register(s, selectors.EVENT_READ, (kind, name, reply))
        return s
    for p in range(1000, 1024):  # the proxy: one privileged port free on 127.0.0.1 and ::1
        try:
            a = open_one("proxy", A4, "127.0.0.1", p, "tcp", b"PROXY\n")
        except OSError:
            continue
        try:
            open_one("proxy", A6, "::1", p, "tcp", b"PROXY\n"); break
        except OSError:
            sel.unregister(a); a.close()
    else:
        sys.exit("no free proxy port in 1000..1023")
    for name, fam, addr, reply in [("direct4", A4, "127.0.0.2", b"DIRECT4\n"), ("deny4", A4, "127.0.0.3", b"DENY4\n"),
                                   ("orig4", A4, "127.0.0.4", b"ORIG4\n"), ("direct6", A6, "::1", b"DIRECT6\n"),
                                   ("deny6", A6, "::1", b"DENY6\n"), ("orig6", A6, "::1", b"ORIG6\n")]:
        open_one(name, fam, addr, 0, "tcp", reply)
    for name, fam, addr in [("udpdirect4", A4, "127.0.0.2"), ("udpother4", A4, "127.0.0.4"),
                            ("udpdirect6", A6, "::1"), ("udpother6", A6, "::1")]:
        open_one(name, fam, addr, 0, "udp")
    with open(portfile + ".tmp", "w") as f: json.dump(ports, f)
    os.rename(portfile + ".tmp", portfile)
    while True:
        for key, _ in sel.select():
            kind, name, reply = key.data
            if kind == "tcp":
                c, peer = key.fileobj.accept()
                log.write(f"{name} {peer[0]} {peer[1]}\n"); c.sendall(reply); c.close()
            else:
                data, peer = key.fileobj.recvfrom(2048)
                log.write(f"{name} {peer[0]} {peer[1]} {data.decode()}\n")

def result(s, reply):
    host, port = s.getsockname()[:2]
    cookie = struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
    print("ok", reply or "-", host, port, cookie, os.getpid())

def oserr(e): print("err", errno.errorcode.get(e.errno, e.errno), os.getpid())

def tcp(fam, addr, port):
    s = socket.socket(A4 if fam == "4" else A6, socket.SOCK_STREAM); s.settimeout(3)
    try:
        s.connect((addr, int(port))); result(s, s.recv(64).decode().strip())
    except socket.timeout:
        print("err TIMEOUT", os.getpid())
    except OSError as e:
        oserr(e)

def udp(mode, fam, addr, port):
    s = socket.socket(A4 if fam == "4" else A6, socket.SOCK_DGRAM)
    try:
        if mode == "connect": s.connect((addr, int(port))); s.send(b"hello-connected")
        else: s.sendto(b"hello-sendto", (addr, int(port)))
        result(s, "")
    except OSError as e:
        oserr(e)

def enc(kind, *a):
    if kind == "settings":  # port proxy4 proxy6; max_open 0: no bound (sock_release is not attached here)
        b = struct.pack("<IHH", 1, int(a[0]), 0) + socket.inet_pton(A4, a[1]) + socket.inet_pton(A6, a[2]) + struct.pack("<I", 0)
    elif kind in ("key4", "key6"):  # cgroup_id prefix-bits addr
        cg = int(a[0])
        b = struct.pack("<III", 64 + int(a[1]), cg >> 32, cg & 0xffffffff) + socket.inet_pton(A4 if kind == "key4" else A6, a[2])
    elif kind == "value":  # proto:lo:hi:action:rule ...
        rules = [struct.pack("<HHBBH", int(lo), int(hi), int(p), int(act), int(r)) for p, lo, hi, act, r in (x.split(":") for x in a)]
        b = struct.pack("<II", len(rules), 0) + b"".join(rules) + bytes(8 * (16 - len(rules)))
    elif kind == "cookie":  # a socket cookie, the key of tg_rec_cookie
        b = struct.pack("<Q", int(a[0]))
    else:
        sys.exit(f"enc: unknown {kind}")
    print(hexs(b))

def raw(vals): return bytes(int(x, 16) for x in vals)

def record():
    v = raw(json.load(sys.stdin)["value"])
    a, port, fam, proto, pid, tgid, uid, gid, pad, cg, cookie, t, st = struct.unpack("<16sHBBIIIIIQQQQ", v)
    print(f"family={fam} orig={show(fam, a)}:{port} proto={proto} pid={pid} tgid={tgid} uid={uid} gid={gid} "
          f"cgroup={cg} cookie={cookie} pad={pad} time={'set' if t else 0} start={'set' if st else 0}")

def counters():
    sums = {}
    for e in json.load(sys.stdin):
        idx = struct.unpack("<I", raw(e["key"]))[0]
        sums[idx] = sum(struct.unpack("<Q", raw(c["value"]))[0] for c in e["values"])
    print(" ".join(f"{n}={sums.get(i, 0)}" for i, n in enumerate(COUNTERS)))

def bpf(cmd, attr):
    r = libc.syscall(ctypes.c_long(321), ctypes.c_long(cmd), ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)))
    if r < 0: sys.exit(f"bpf({cmd}): {os.strerror(ctypes.get_errno())}")
    return r

def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    attr = (ctypes.c_uint8 * 128)()
    struct.pack_into("<Q", attr, 0, ctypes.addressof(p))
    return bpf(7, attr)  # BPF_OBJ_GET

def events(path, size):
    size, page = int(size), mmap.PAGESIZE
    fd = obj_get(path)
    cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
    c, p = struct.unpack_from("<Q", cons, 0)[0], struct.unpack_from("<Q", prod, 0)[0]
    while c < p:
        off = page + (c & (size - 1))
        ln, _ = struct.unpack_from("<II", prod, off)
        if ln & (1 << 31): break  # still being written
        n = ln & ~((1 << 31) | (1 << 30))
        if not ln & (1 << 30):
            e = struct.unpack_from("<QQIIII16sHHBBBB", prod, off + 8)
            t, cg, pid, tgid, uid, gid, a, port, rule, fam, proto, reason, hook = e
            print(HOOKS.get(hook, hook), REASONS.get(reason, reason), fam, show(fam, a), port, proto,
                  "none" if rule == 0xffff else rule, cg, pid, "n=" + str(n))
        c += (n + 8 + 7) & ~7
    struct.pack_into("<Q", cons, 0, c)

def proginfo(*paths):
    for path in paths:
        fd = obj_get(path)
        info = (ctypes.c_uint8 * 256)()
        attr = (ctypes.c_uint8 * 16)()
        struct.pack_into("<IIQ", attr, 0, fd, 256, ctypes.addressof(info))
        bpf(15, attr)  # BPF_OBJ_GET_INFO_BY_FD
        xlated = struct.unpack_from("<I", info, 20)[0]
        name = bytes(info[64:80]).split(b"\0")[0].decode()
        verified = struct.unpack_from("<I", info, 216)[0]
        print(f"{name}: {xlated // 8} insns after load, {verified} insns processed by the verifier")

if __name__ == "__main__":
    {"listen": listen, "tcp": tcp, "udp": udp, "enc": enc, "record": record, "counters": counters,
     "events": events, "proginfo": proginfo}[sys.argv[1]](*sys.argv[2:])
PYEOF
chmod 644 "$TMP/tg.py"
py() { "$PY" "$TMP/tg.py" "$@"; }
in_cg() { local cg=$1; shift; bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }

# Expected counters and events, updated by each scenario.
declare -A CNT=([CONNECT]=0 [DENY]=0 [DIRECT]=0 [REDIRECT]=0 [SENDMSG]=0 [UNKNOWN_CGROUP]=0 [RECORD_FAIL]=0 [EVENT_DROP]=0 [RECORD_LIMIT]=0)
count() { local c; for c in "$@"; do CNT[$c]=$((CNT[$c] + 1)); done; }
EVENTS=()
OUT=""

# expect DESCRIPTION GLOB COMMAND...: the command's one-line output must match GLOB.
expect() {
	local desc=$1 want=$2; shift 2
	OUT=$("$@" 2>&1) || true
	# shellcheck disable=SC2053
	[[ $OUT == $want ]] || fail "$desc: expected '$want', got '$OUT'"
	say "ok  $desc -> $OUT"
}
field() { echo "$OUT" | awk -v n="$1" '{ print $n }'; }
pid_of() { echo "$OUT" | awk '{ print $NF }'; }

# deny_event HOOK REASON FAMILY ADDR PORT PROTO RULE CGROUP-ID: the event the last denied client ($OUT) caused.
deny_event() { EVENTS+=("$1 $2 $3 $4 $5 $6 $7 $8 $(pid_of)"); }

wait_log() { # pattern: the listener logged it (poll with a deadline)
	local i
	for i in $(seq 50); do grep -q -- "$1" "$TMP/listen.log" && return 0; sleep 0.1; done
	fail "listener never logged '$1'"
}

check_record() { # desc expected-glob socket-cookie
	local hex
	hex=$(py enc cookie "$3") || fail "encoding the cookie key $3"
	expect "$1" "$2" sh -c "bpftool -j map lookup pinned '$PIN/maps/tg_rec_cookie' key hex $hex | '$PY' '$TMP/tg.py' record"
}

# --- load and attach --------------------------------------------------------------------------
mkdir -p "$PIN"
bpftool prog loadall "$OBJ" "$PIN/progs" pinmaps "$PIN/maps" || fail "bpftool prog loadall $OBJ"
mkdir -p "$ROOT/workloads/w1" "$ROOT/workloads/w2" "$ROOT/workloads/nopolicy"
W=$ROOT/workloads/w1 W2=$ROOT/workloads/w2 NP=$ROOT/workloads/nopolicy
for h in $HOOKS; do
	bpftool cgroup attach "$ROOT" "${h%%:*}" pinned "$PIN/progs/${h#*:}" || fail "attach ${h#*:}"
done
say "loaded and attached to $ROOT:"
py proginfo "$PIN"/progs/tg_connect4 "$PIN"/progs/tg_connect6 "$PIN"/progs/tg_sendmsg4 "$PIN"/progs/tg_sendmsg6 | sed 's/^/smoke:   /'
mapshape() { bpftool -j map show pinned "$PIN/maps/$1" | "$PY" -c 'import json,sys; m=json.load(sys.stdin); print(m["type"], m["name"], "flags", m["flags"], "key", m["bytes_key"], "value", m["bytes_value"], "max", m["max_entries"])'; }
expect "tg_policy4 shape" "lpm_trie tg_policy4 flags 1 key 16 value 136 max 16384" mapshape tg_policy4
expect "tg_policy6 shape" "lpm_trie tg_policy6 flags 1 key 28 value 136 max 16384" mapshape tg_policy6
expect "tg_rec_cookie shape" "hash tg_rec_cookie flags 0 key 8 value 72 max 65536" mapshape tg_rec_cookie
expect "tg_counters shape" "percpu_array tg_counters flags 0 key 4 value 8 max 9" mapshape tg_counters
expect "tg_events shape" "ringbuf tg_events flags 0 key 0 value 0 max 262144" mapshape tg_events
expect "tg_settings shape" "array tg_settings flags 0 key 4 value 32 max 1" mapshape tg_settings
WID=$(stat -c %i "$W") W2ID=$(stat -c %i "$W2") NPID=$(stat -c %i "$NP")

"$PY" "$TMP/tg.py" listen "$TMP/ports.json" "$TMP/listen.log" 2>"$TMP/listen.err" &
LISTENER=$!
for i in $(seq 50); do [ -f "$TMP/ports.json" ] && break; sleep 0.1; done
[ -f "$TMP/ports.json" ] || fail "listeners did not start: $(cat "$TMP/listen.err")"
port() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/ports.json" "$1"; }
PROXY=$(port proxy) D4=$(port direct4) X4=$(port deny4) O4=$(port orig4) D6=$(port direct6) X6=$(port deny6) O6=$(port orig6)
U4=$(port udpdirect4) UO4=$(port udpother4) U6=$(port udpdirect6) UO6=$(port udpother6)
say "proxy on 127.0.0.1:$PROXY and [::1]:$PROXY; cgroups w1=$WID w2=$W2ID nopolicy=$NPID"

# --- settings and policy (rule ids: 3 deny4, 4 direct4, 5 udp direct4, 6 direct6, 7 deny6, 8 udp direct6, 9 w2 deny /8)
mapupd() { bpftool map update pinned "$PIN/maps/$1" key hex $2 value hex $3 || fail "map update $1"; }
mapupd tg_settings "00 00 00 00" "$(py enc settings "$PROXY" 127.0.0.1 ::1)"
mapupd tg_policy4 "$(py enc key4 "$WID" 0 0.0.0.0)" "$(py enc value)"
mapupd tg_policy4 "$(py enc key4 "$WID" 32 127.0.0.2)" "$(py enc value "6:$D4:$D4:2:4" "17:$U4:$U4:2:5")"
mapupd tg_policy4 "$(py enc key4 "$WID" 32 127.0.0.3)" "$(py enc value "6:1:65535:1:3")"
mapupd tg_policy6 "$(py enc key6 "$WID" 0 ::)" "$(py enc value)"
mapupd tg_policy6 "$(py enc key6 "$WID" 128 ::1)" "$(py enc value "6:$D6:$D6:2:6" "6:$X6:$X6:1:7" "17:$U6:$U6:2:8")"
mapupd tg_policy4 "$(py enc key4 "$W2ID" 0 0.0.0.0)" "$(py enc value)"
mapupd tg_policy4 "$(py enc key4 "$W2ID" 8 127.0.0.0)" "$(py enc value "6:1:65535:1:9")"
mapupd tg_policy6 "$(py enc key6 "$W2ID" 0 ::)" "$(py enc value)"

# --- w1: TCP over IPv4 --------------------------------------------------------------------------
expect "w1 tcp 127.0.0.3 (deny rule 3) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 4 127.0.0.3 "$X4"
count CONNECT DENY; deny_event connect4 rule 4 127.0.0.3 "$X4" 6 3 "$WID"
expect "w1 tcp 127.0.0.2 (direct rule 4) connects" "ok DIRECT4 127.0.0.1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 4 127.0.0.2 "$D4"
count CONNECT DIRECT
expect "w1 tcp 127.0.0.4 (no rule) arrives at the proxy, as nobody" "ok PROXY 127.0.0.1 *" \
	in_cg "$W" setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" "$TMP/tg.py" tcp 4 127.0.0.4 "$O4"
count CONNECT REDIRECT
P=$(pid_of) LP=$(field 4) CK=$(field 5)
wait_log "proxy 127.0.0.1 $LP"
check_record "tg_rec_cookie[$CK] (from 127.0.0.1:$LP) holds the original destination" \
	"family=4 orig=127.0.0.4:$O4 proto=6 pid=$P tgid=$P uid=65534 gid=65534 cgroup=$WID cookie=$CK pad=0 time=set start=set" "$CK"

# --- w1: TCP over IPv6 and IPv4-mapped ----------------------------------------------------------
expect "w1 tcp [::1]:deny6 (deny rule 7) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::1 "$X6"
count CONNECT DENY; deny_event connect6 rule 6 ::1 "$X6" 6 7 "$WID"
expect "w1 tcp [::1]:direct6 (direct rule 6) connects" "ok DIRECT6 ::1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::1 "$D6"
count CONNECT DIRECT
expect "w1 tcp [::1]:orig6 (no rule) arrives at the proxy" "ok PROXY ::1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::1 "$O6"
count CONNECT REDIRECT
P=$(pid_of) LP=$(field 4) CK=$(field 5)
wait_log "proxy ::1 $LP"
check_record "tg_rec_cookie[$CK] (from [::1]:$LP) holds the original destination" \
	"family=6 orig=::1:$O6 proto=6 pid=$P tgid=$P uid=0 gid=0 cgroup=$WID cookie=$CK pad=0 time=set start=set" "$CK"
expect "w1 tcp6 ::ffff:127.0.0.3 (deny rule 3) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::ffff:127.0.0.3 "$X4"
count CONNECT DENY; deny_event connect6 rule 4 127.0.0.3 "$X4" 6 3 "$WID"
expect "w1 tcp6 ::ffff:127.0.0.2 (direct rule 4) connects" "ok DIRECT4 ::ffff:127.0.0.1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::ffff:127.0.0.2 "$D4"
count CONNECT DIRECT
expect "w1 tcp6 ::ffff:127.0.0.4 (no rule) arrives at the IPv4 proxy" "ok PROXY ::ffff:127.0.0.1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::ffff:127.0.0.4 "$O4"
count CONNECT REDIRECT
P=$(pid_of) LP=$(field 4) CK=$(field 5)
wait_log "proxy 127.0.0.1 $LP"
check_record "tg_rec_cookie[$CK] (v4-mapped client, from 127.0.0.1:$LP) holds the original destination" \
	"family=4 orig=127.0.0.4:$O4 proto=6 pid=$P tgid=$P uid=0 gid=0 cgroup=$WID cookie=$CK pad=0 time=set start=set" "$CK"

# --- w1: UDP --------------------------------------------------------------------------------------
expect "w1 udp sendto 127.0.0.2 (direct rule 5) is sent" "ok - 0.0.0.0 *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 4 127.0.0.2 "$U4"
count SENDMSG DIRECT; wait_log "udpdirect4 127.0.0.1 $(field 4) hello-sendto"
expect "w1 udp sendto 127.0.0.4 (no rule) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 4 127.0.0.4 "$UO4"
count SENDMSG DENY; deny_event sendmsg4 no_rule 4 127.0.0.4 "$UO4" 17 none "$WID"
expect "w1 udp connect 127.0.0.2 (direct rule 5) is sent" "ok - 127.0.0.1 *" in_cg "$W" "$PY" "$TMP/tg.py" udp connect 4 127.0.0.2 "$U4"
count CONNECT DIRECT; wait_log "udpdirect4 127.0.0.1 $(field 4) hello-connected"
expect "w1 udp connect 127.0.0.4 (no rule) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" udp connect 4 127.0.0.4 "$UO4"
count CONNECT DENY; deny_event connect4 no_rule 4 127.0.0.4 "$UO4" 17 none "$WID"
expect "w1 udp6 sendto ::1 (direct rule 8) is sent" "ok - :: *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 6 ::1 "$U6"
count SENDMSG DIRECT; wait_log "udpdirect6 ::1 $(field 4) hello-sendto"
expect "w1 udp6 sendto ::1 other port (no rule) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 6 ::1 "$UO6"
count SENDMSG DENY; deny_event sendmsg6 no_rule 6 ::1 "$UO6" 17 none "$WID"
# The kernel hands a v4-mapped datagram to udp_sendmsg, so sendmsg4 judges it.
expect "w1 udp6 sendto ::ffff:127.0.0.2 (direct rule 5) is sent" "ok - :: *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 6 ::ffff:127.0.0.2 "$U4"
count SENDMSG DIRECT; wait_log "udpdirect4 127.0.0.1 $(field 4) hello-sendto"
expect "w1 udp6 sendto ::ffff:127.0.0.4 (no rule) fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" udp sendto 6 ::ffff:127.0.0.4 "$UO4"
count SENDMSG DENY; deny_event sendmsg4 no_rule 4 127.0.0.4 "$UO4" 17 none "$WID"

# --- another cgroup, and one the policy does not know ----------------------------------------------
expect "w2 tcp 127.0.0.2 (w2's /8 deny rule 9) fails with EPERM" "err EPERM *" in_cg "$W2" "$PY" "$TMP/tg.py" tcp 4 127.0.0.2 "$D4"
count CONNECT DENY; deny_event connect4 rule 4 127.0.0.2 "$D4" 6 9 "$W2ID"
expect "w2 tcp [::1]:direct6 (w2 has no v6 rule) arrives at the proxy" "ok PROXY ::1 *" in_cg "$W2" "$PY" "$TMP/tg.py" tcp 6 ::1 "$D6"
count CONNECT REDIRECT
expect "nopolicy tcp 127.0.0.2 is redirected to the proxy" "ok PROXY 127.0.0.1 *" in_cg "$NP" "$PY" "$TMP/tg.py" tcp 4 127.0.0.2 "$D4"
count CONNECT UNKNOWN_CGROUP REDIRECT
P=$(pid_of) LP=$(field 4) CK=$(field 5)
check_record "tg_rec_cookie[$CK] (from 127.0.0.1:$LP) names the unknown cgroup" \
	"family=4 orig=127.0.0.2:$D4 proto=6 pid=$P tgid=$P uid=0 gid=0 cgroup=$NPID cookie=$CK pad=0 time=set start=set" "$CK"
expect "nopolicy udp sendto 127.0.0.2 fails with EPERM" "err EPERM *" in_cg "$NP" "$PY" "$TMP/tg.py" udp sendto 4 127.0.0.2 "$U4"
count SENDMSG UNKNOWN_CGROUP DENY; deny_event sendmsg4 unknown_cgroup 4 127.0.0.2 "$U4" 17 none "$NPID"

# --- no proxy configured ----------------------------------------------------------------------------
mapupd tg_settings "00 00 00 00" "$(py enc settings 0 127.0.0.1 ::1)"
expect "w1 tcp 127.0.0.4 with proxy_port 0 fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 4 127.0.0.4 "$O4"
count CONNECT DENY; deny_event connect4 no_proxy 4 127.0.0.4 "$O4" 6 none "$WID"
mapupd tg_settings "00 00 00 00" "$(py enc settings "$PROXY" 127.0.0.1 ::)"
expect "w1 tcp [::1]:orig6 with no IPv6 proxy address fails with EPERM" "err EPERM *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 6 ::1 "$O6"
count CONNECT DENY; deny_event connect6 no_proxy 6 ::1 "$O6" 6 none "$WID"
expect "w1 tcp 127.0.0.4 still reaches the IPv4 proxy" "ok PROXY 127.0.0.1 *" in_cg "$W" "$PY" "$TMP/tg.py" tcp 4 127.0.0.4 "$O4"
count CONNECT REDIRECT

# --- outside the cgroup: untouched ------------------------------------------------------------------
expect "outside tcp 127.0.0.3 reaches its listener" "ok DENY4 *" py tcp 4 127.0.0.3 "$X4"
expect "outside tcp 127.0.0.4 reaches the original destination" "ok ORIG4 *" py tcp 4 127.0.0.4 "$O4"
expect "outside udp sendto 127.0.0.4 is sent" "ok - *" py udp sendto 4 127.0.0.4 "$UO4"
wait_log "udpother4 127.0.0.1 $(field 4) hello-sendto"

# --- counters, records, events ---------------------------------------------------------------------
want=""
for c in CONNECT DENY DIRECT REDIRECT SENDMSG UNKNOWN_CGROUP RECORD_FAIL EVENT_DROP RECORD_LIMIT; do want="$want $c=${CNT[$c]}"; done
expect "tg_counters (summed over CPUs) count exactly what was done" "${want# }" \
	sh -c "bpftool -j map dump pinned '$PIN/maps/tg_counters' | '$PY' '$TMP/tg.py' counters"
expect "tg_rec_cookie holds one record per redirect (nothing here consumes them)" "${CNT[REDIRECT]}" \
	sh -c "bpftool -j map dump pinned '$PIN/maps/tg_rec_cookie' | '$PY' -c 'import json,sys; print(len(json.load(sys.stdin)))'"
RB=$(bpftool -j map show pinned "$PIN/maps/tg_events" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["max_entries"])')
py events "$PIN/maps/tg_events" "$RB" >"$TMP/events.txt" || fail "reading tg_events"
printf '%s n=56\n' "${EVENTS[@]}" >"$TMP/events.want"
if ! diff -u "$TMP/events.want" "$TMP/events.txt"; then fail "tg_events differ from the denies (above: - expected, + read)"; fi
say "ok  tg_events holds the ${#EVENTS[@]} deny events, in order:"
sed 's/^/smoke:   /' "$TMP/events.txt"
say "PASS"
