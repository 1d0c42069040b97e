#!/usr/bin/env bash
# A real, throw-away, single-node Ceph 16.2 (Debian 12's packages) for the suite's fleet and object
# storage scenarios: a monitor, a minimal mgr, one OSD keeping its data in RAM (memstore), an MDS
# with a CephFS, radosgw (S3) with one user, and two ceph-fuse mounts of the same CephFS (A and B,
# two clients: two machines sharing a folder; CEPH_UP_CLIENTS=4 makes four, A to D). No systemd;
# everything under one folder; listens on 127.0.0.1 only. Adapted from a recipe measured on the
# project's 2-core machines (36 cold cycles: up in ~2 s, down in ~4 s, ~260 MiB RSS idle).
#
#   ceph-up.sh up DIR     start it all in DIR (must not exist or be empty); writes DIR/env.sh
#   ceph-up.sh down DIR   unmount, stop the daemons by their recorded PIDs, delete DIR
#   ceph-up.sh status DIR the recorded daemons and whether they run
#
# DIR/env.sh exports CEPH_CONF, CEPHFS_MNT_A/B (C, D, ... with more clients), S3_ENDPOINT_URL,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (made by radosgw for this run, never on a command
# line), AWS_DEFAULT_REGION and RGW_LOG (radosgw's log: one line per request with its status and
# bytes sent, and at CEPH_UP_RGW_DEBUG=20 every request's headers).
#
# Two runs on one machine do not clash: each has its own DIR, the monitor's and radosgw's ports are
# picked free at start (CEPH_UP_MON_PORT / CEPH_UP_RGW_PORT fix them), and the other daemons take
# free ports from Ceph's own range. CEPH_UP_WATCH_PID=PID starts a watcher that runs `down` once
# PID has gone, so a test killed on a timeout (its EXIT trap never runs) leaves nothing behind.
# Other knobs: CEPH_UP_OSD_MB (memstore size, default 1024), CEPH_UP_STOP_GRACE (seconds before
# SIGKILL at down, default 3), CEPH_UP_RGW_DEBUG (default 1), CEPH_UP_CLIENTS (ceph-fuse mounts,
# each its own client, 1 to 8, default 2). Needs root (FUSE) and the packages ceph-mon ceph-osd
# ceph-mds ceph-mgr radosgw ceph-fuse python3-boto3 curl (scripts/deps).
set -euo pipefail

cmd=${1:-}
D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || { echo "usage: $0 up|down|status DIR" >&2; exit 2; }
D=$(realpath -m "$D")
OSD_MB=${CEPH_UP_OSD_MB:-1024}
NCLIENTS=${CEPH_UP_CLIENTS:-2}
GRACE=${CEPH_UP_STOP_GRACE:-3}
CONF=$D/ceph.conf
KEYRING=$D/ceph.keyring
PY=/usr/bin/python3 # the Debian python (has rados and boto3); a pyenv python3 may not
SELF=$(realpath "$0")

T0=$(date +%s.%N)
# float arithmetic with awk (bc is not always installed)
calc() { awk "BEGIN { printf \"%.2f\", ($*) }"; }
say() { printf '[%6.2fs] %s\n' "$(calc "$(date +%s.%N) - $T0")" "$*"; }
die() {
	echo "ceph-up: $*" >&2
	local f
	for f in "$D"/log/*.out "$D"/log/mon.a.log "$D"/log/osd.0.log "$D"/log/mds.a.log "$D"/log/client.rgw.a.log; do
		[ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 5 "$f" >&2; }
	done
	exit 1
}

# ---------------------------------------------------------------- helpers
# Starts a daemon in the foreground of its own session and records its PID (written by the
# process itself just before exec, so it is right even where setsid has to fork). Its own session:
# it must outlive this script, which returns once everything is up.
start_daemon() { # name cmd...
	local name=$1 pf=$D/run/$1.pid i
	shift
	rm -f "$pf"
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" >>"$D/log/$name.out" 2>&1 </dev/null &
	disown $! 2>/dev/null || true
	for i in $(seq 1 250); do
		[ -s "$pf" ] && return 0
		sleep 0.02
	done
	die "could not start $name"
}

# alive = exists and is not a zombie (daemons whose parent has gone are reaped by PID 1, which may
# take a while; a zombie must not count as running)
pid_alive() {
	local st
	[ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_for SECONDS LABEL CMD...: polls CMD until it succeeds; fails after SECONDS
wait_for() {
	local to=$1 what=$2 end
	shift 2
	end=$(calc "$(date +%s.%N) + $to")
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(calc "$(date +%s.%N) > $end")" != 0.00 ]; then
			echo "timeout ($to s) waiting for $what" >&2
			return 1
		fi
		sleep 0.1
	done
	say "$what"
}

# Prints two free loopback ports: MON (MON+1 free too: msgr1) and RGW. A port could be taken
# between this and the daemon's bind; the daemon then fails to start and `up` says so.
pick_ports() {
	$PY - "${CEPH_UP_MON_PORT:-0}" "${CEPH_UP_RGW_PORT:-0}" <<'EOF'
import socket, sys
def grab(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    return s
mon, rgw = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(50):
    try:
        a = grab(mon)
        held.append(a)
        held.append(grab(a.getsockname()[1] + 1))
        mon = a.getsockname()[1]
        break
    except OSError:
        if mon:
            sys.exit("127.0.0.1:%d or the next port is busy" % mon)
else:
    sys.exit("no two adjacent free ports")
r = grab(rgw)
print(mon, r.getsockname()[1])
EOF
}

write_conf() { # fsid mon-port rgw-port
	cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = [v2:127.0.0.1:$2,v1:127.0.0.1:$(($2 + 1))]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $KEYRING
run dir = $D/run
crash dir = $D/crash
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.daemon.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon osd full ratio = 0.97
mon osd nearfull ratio = 0.95
mon osd backfillfull ratio = 0.96
osd failsafe full ratio = 0.99
# start-up speed: commit mon (paxos) updates after 50 ms instead of 1 s (14 s start-up became 2 s
# with this and pools made after the OSD is up)
paxos propose interval = 0.05
# df/statfs numbers travel osd -> mgr -> mon; refresh them every second (default 5 s)
mgr stats period = 1
mon mgr digest period = 1

[mon]
mon data = $D/mon/\$cluster-\$id

[osd]
osd data = $D/osd/\$cluster-\$id
# data in RAM: nothing to clean on disk, capped at CEPH_UP_OSD_MB
osd objectstore = memstore
memstore device bytes = $((OSD_MB * 1024 * 1024))
osd op num shards = 1
osd op num threads per shard = 2

[mds]
mds data = $D/mds/\$cluster-\$id
mds cache memory limit = 268435456
# without this, a lookup/stat from client B of a name that client A just created/renamed waits
# for the MDS journal flush on the next tick (up to 5 s)
mds early reply = false
# some cross-client lock hand-overs (rename vs. lookup from the other mount) only progress on the
# MDS tick (default 5 s); a 0.2 s tick bounds those stalls
mds tick interval = 0.2
mds beacon interval = 1

[mgr]
mgr data = $D/mgr/\$cluster-\$id
mgr initial modules = iostat
# only the C++ part of the mgr (PG/df stats): without a mgr statfs says 0 bytes free, and a cache
# that checks free space sees a full disk; the python modules would cost ~200 MiB and 4 s of CPU
mgr module path = $D/mgr-modules

[client]
admin socket = $D/run/\$name.\$pid.asok
log file = $D/log/\$name.\$pid.log

[client.rgw.a]
rgw data = $D/rgw
rgw frontends = beast endpoint=127.0.0.1:$3
rgw thread pool size = 32
# level 1 logs one line per request (status, bytes sent, Range); 20 adds its headers
debug rgw = ${CEPH_UP_RGW_DEBUG:-1}
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
EOF
}

# one python/librados session per step (each `ceph` CLI call would cost ~0.4 s)
write_boot_py() {
	cat <<'PYEOF'
import json, sys, time, rados
conf, what, args = sys.argv[1], sys.argv[2], sys.argv[3:]
c = rados.Rados(conffile=conf, name='client.admin')
c.conf_set('client_mount_timeout', '30')
t0 = time.time()
while True:
    try:
        c.connect(timeout=5); break
    except Exception as e:
        if time.time() - t0 > 60: raise SystemExit('mon never answered: %s' % e)
        time.sleep(0.1)
def mc(**kw):
    r, out, err = c.mon_command(json.dumps(dict(kw, format='json')), b'', timeout=30)
    if r != 0:
        raise SystemExit('mon_command %r -> %d %s' % (kw, r, err))
    return json.loads(out) if out else None
def wait(label, pred, timeout=90):
    t = time.time()
    while not pred():
        if time.time() - t > timeout: raise SystemExit('timeout waiting for ' + label)
        time.sleep(0.05)
if what == 'osd-new':
    mc(prefix='osd new', uuid=args[0], id=0)
elif what == 'pools':
    wait('osd.0 up', lambda: mc(prefix='osd dump')['osds'][0]['up'] == 1)
    mc(prefix='osd pool create', pool='cephfs_metadata', pg_num=8, pgp_num=8)
    mc(prefix='osd pool create', pool='cephfs_data', pg_num=8, pgp_num=8)
    mc(prefix='fs new', fs_name='cephfs', metadata='cephfs_metadata', data='cephfs_data')
    # a client that dies holding caps/locks is evicted after session_autoclose (default 300 s);
    # 30 s is the smallest session_timeout the mon accepts
    mc(prefix='fs set', fs_name='cephfs', var='session_timeout', val='30')
    mc(prefix='fs set', fs_name='cephfs', var='session_autoclose', val='30')
    # the mgr's always-on python modules are absent on purpose
    mc(prefix='health mute', code='MGR_MODULE_ERROR', sticky=True)
    # what radosgw would otherwise create one by one (at start-up, at the first bucket)
    for p in ('.rgw.root', 'default.rgw.control', 'default.rgw.meta', 'default.rgw.log',
              'default.rgw.buckets.index', 'default.rgw.buckets.data', 'default.rgw.buckets.non-ec'):
        mc(prefix='osd pool create', pool=p, pg_num=8, pgp_num=8)
        mc(prefix='osd pool application enable', pool=p, app='rgw')
elif what == 'wait-mds':
    def active():
        d = mc(prefix='fs dump')
        return 'up:active' in [i['state'] for f in d.get('filesystems', []) for i in f['mdsmap']['info'].values()]
    wait('mds up:active', active)
c.shutdown()
PYEOF
}

# ---------------------------------------------------------------- up
cmd_up() {
	[ -z "$(ls -A "$D" 2>/dev/null)" ] || die "$D is not empty (a cluster running there? '$0 down $D')"
	local b
	for b in ceph-mon ceph-osd ceph-mds ceph-mgr radosgw radosgw-admin ceph-fuse ceph-authtool \
		monmaptool fusermount3 curl; do
		command -v "$b" >/dev/null || die "$b is not installed (scripts/deps installs Ceph)"
	done
	$PY -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("rados") and u.find_spec("boto3")))' || die "$PY lacks rados or boto3 (scripts/deps)"
	[ -e /dev/fuse ] || die "/dev/fuse is missing: ceph-fuse cannot mount"
	[[ $NCLIENTS =~ ^[1-8]$ ]] || die "CEPH_UP_CLIENTS=$NCLIENTS: 1 to 8"
	local clients
	clients=$(echo {a..h} | cut -d' ' -f1-"$NCLIENTS")
	mkdir -p "$D"/{run,log,crash,mon,osd/ceph-0,mds/ceph-a,mgr/ceph-x,rgw,bin,mgr-modules}
	for m in $clients; do mkdir -p "$D/mnt/$m"; done
	local ports mon_port rgw_port fsid osd_uuid
	ports=$(pick_ports) || die "no free ports"
	read -r mon_port rgw_port <<<"$ports"
	say "start in $D (mon 127.0.0.1:$mon_port, rgw 127.0.0.1:$rgw_port)"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	write_conf "$fsid" "$mon_port" "$rgw_port"
	ln -sf /usr/share/ceph/mgr/mgr_module.py /usr/share/ceph/mgr/mgr_util.py "$D/mgr-modules/"
	if [ -n "${CEPH_UP_WATCH_PID:-}" ]; then
		# tail --pid returns once that process is gone; then the cluster goes too
		setsid bash -c 'echo $$ >"$0/run/watch.pid"; tail --pid="$1" -f /dev/null &
			echo $! >"$0/run/watch-tail.pid"; wait $! && exec "$2" down "$0"' \
			"$D" "$CEPH_UP_WATCH_PID" "$SELF" >>"$D/log/watch.out" 2>&1 </dev/null &
		disown $! 2>/dev/null || true
	fi

	# every key up front, so the mon knows all entities (with caps) from mkfs on
	ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool "$KEYRING" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
		--cap mds 'allow *' --cap mgr 'allow *' >/dev/null
	ceph-authtool "$KEYRING" --gen-key -n osd.0 --cap mon 'allow profile osd' \
		--cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
	ceph-authtool "$KEYRING" --gen-key -n mds.a --cap mon 'allow profile mds' \
		--cap mgr 'allow profile mds' --cap osd 'allow rwx' --cap mds 'allow' >/dev/null
	ceph-authtool "$KEYRING" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' \
		--cap mds 'allow *' >/dev/null
	ceph-authtool "$KEYRING" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' \
		--cap mgr 'allow rw' >/dev/null
	for m in $clients; do # one CephFS client per machine
		ceph-authtool "$KEYRING" --gen-key -n "client.fs$m" --cap mon 'allow r' --cap mds 'allow rw' \
			--cap osd 'allow rw tag cephfs data=cephfs' >/dev/null
	done
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$((mon_port + 1))]" \
		"$D/monmap" >/dev/null
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$KEYRING" >>"$D/log/mkfs.out" 2>&1 ||
		die "mon mkfs failed"
	start_daemon mon.a ceph-mon -c "$CONF" -i a -f
	# OSD mkfs does not need the mon (--no-mon-config): overlap it with mon start-up
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" --no-mon-config >>"$D/log/mkfs.out" 2>&1 ||
		die "osd mkfs failed"
	write_boot_py >"$D/bin/boot.py"
	timeout 90 $PY "$D/bin/boot.py" "$CONF" osd-new "$osd_uuid" || die "osd new failed"
	say "mon up, osd.0 registered"
	start_daemon osd.0 ceph-osd -c "$CONF" -i 0 -f
	start_daemon mgr.x ceph-mgr -c "$CONF" -i x -f
	# pools are made once the OSD is up: pools made before any OSD is up only get their PGs on a
	# later mon tick (radosgw then stalls ~5 s on its first read)
	timeout 120 $PY "$D/bin/boot.py" "$CONF" pools || die "pool/fs creation failed"
	say "osd.0 up; pools and cephfs made"
	start_daemon mds.a ceph-mds -c "$CONF" -i a -f
	start_daemon rgw.a radosgw -c "$CONF" -n client.rgw.a -f
	timeout 120 $PY "$D/bin/boot.py" "$CONF" wait-mds || die "the mds did not become active"
	say "mds active"
	wait_for 90 "rgw answers on 127.0.0.1:$rgw_port" curl -sf -o /dev/null "http://127.0.0.1:$rgw_port/" ||
		die "radosgw did not answer"
	# radosgw makes the keys: no secret on a command line
	timeout 60 radosgw-admin -c "$CONF" -n client.admin user create --uid=afs --display-name=afs \
		>"$D/rgw-user.json" 2>>"$D/log/radosgw-admin.out" || die "radosgw-admin user create failed"
	chmod 600 "$D/rgw-user.json"
	local keys
	keys=$($PY -c 'import json, sys; k = json.load(open(sys.argv[1]))["keys"][0]
print(k["access_key"], k["secret_key"])' "$D/rgw-user.json") || die "no S3 keys in rgw-user.json"
	say "rgw user made"
	for m in $clients; do
		start_daemon "fuse.$m" ceph-fuse -c "$CONF" -n "client.fs$m" -f "$D/mnt/$m"
	done
	for m in $clients; do
		wait_for 60 "ceph-fuse mounted $D/mnt/$m" mountpoint -q "$D/mnt/$m" || die "mount $m failed"
	done
	# statfs is 0 until the mgr has stats
	wait_for 30 "statfs reports the OSD's size" \
		$PY -c "import os, sys; sys.exit(os.statvfs('$D/mnt/a').f_blocks == 0)" ||
		echo "warning: statfs still reports 0 bytes" >&2
	(
		umask 077
		read -r ak sk <<<"$keys"
		cat >"$D/env.sh" <<EOF
export CEPH_CONF=$CONF
$(for m in $clients; do echo "export CEPHFS_MNT_${m^^}=$D/mnt/$m"; done)
export S3_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_DEFAULT_REGION=us-east-1
export RGW_LOG=$D/log/client.rgw.a.log
EOF
	)
	say "up; source $D/env.sh"
}

# ---------------------------------------------------------------- down
# SIGTERM to a recorded daemon if its PID still is the program we started
term_recorded() { # name expected-comm
	local f=$D/run/$1.pid pid comm
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if pid_alive "$pid"; then
		comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
		if [ "$comm" != "$2" ]; then
			echo "  $1: pid $pid is '$comm', not '$2'; left alone"
			rm -f "$f"
			return 0
		fi
		kill -TERM "$pid" 2>/dev/null || true
	fi
}

# waits (up to GRACE s in all) for the recorded daemons to exit, then SIGKILLs the rest
reap_recorded() { # grace names...
	local grace=$1 n f pid left t0
	shift
	t0=$(date +%s.%N)
	while :; do
		left=""
		for n in "$@"; do
			f=$D/run/$n.pid
			[ -f "$f" ] || continue
			pid=$(cat "$f")
			if pid_alive "$pid"; then left="$left $n"; else rm -f "$f"; fi
		done
		[ -z "$left" ] && break
		if [ "$(calc "$(date +%s.%N) - $t0 > $grace")" != 0.00 ]; then
			for n in $left; do
				pid=$(cat "$D/run/$n.pid")
				echo "  $n: still running after ${grace}s, SIGKILL $pid"
				kill -KILL "$pid" 2>/dev/null || true
				rm -f "$D/run/$n.pid"
			done
			break
		fi
		sleep 0.1
	done
}

cmd_down() {
	[ -d "$D" ] || return 0
	[ -f "$CONF" ] || [ -d "$D/run" ] || die "$D holds no cluster of ours; left alone"
	local m pid clients="" fuses=""
	# the clients that were started (mnt/a, mnt/b, ...), whatever CEPH_UP_CLIENTS says now
	for m in "$D"/mnt/?; do
		[ -d "$m" ] && clients="$clients ${m##*/}"
	done
	for m in $clients; do fuses="$fuses fuse.$m"; done
	# the watcher, unless this is it: first its shell (so it cannot start a second `down`), then
	# its tail
	if [ -f "$D/run/watch.pid" ] && [ "$(cat "$D/run/watch.pid")" != "$$" ]; then
		term_recorded watch bash
		term_recorded watch-tail tail
		reap_recorded "$GRACE" watch watch-tail
	fi
	rm -f "$D/run/watch.pid" "$D/run/watch-tail.pid"
	# 1. clients first: unmount (ceph-fuse exits by itself after the unmount)
	for m in $clients; do
		if mountpoint -q "$D/mnt/$m" 2>/dev/null; then
			fusermount3 -u "$D/mnt/$m" 2>/dev/null || {
				echo "  $D/mnt/$m busy, lazy unmount"
				fusermount3 -uz "$D/mnt/$m" || true
			}
		fi
	done
	# shellcheck disable=SC2086
	reap_recorded 10 $fuses
	# 2. daemons, in three steps: rgw+mds+mgr (they still talk to the OSD while stopping), the
	#    OSD (it waits up to 5 s for the mon's ack), the mon. SIGKILL whatever still runs after
	#    GRACE s (the data is thrown away anyway; an MDS takes 5-7 s to stop by itself)
	term_recorded rgw.a radosgw
	term_recorded mds.a ceph-mds
	term_recorded mgr.x ceph-mgr
	reap_recorded "$GRACE" rgw.a mds.a mgr.x
	term_recorded osd.0 ceph-osd
	reap_recorded "$GRACE" osd.0
	term_recorded mon.a ceph-mon
	reap_recorded "$GRACE" mon.a
	for m in $clients; do
		mountpoint -q "$D/mnt/$m" 2>/dev/null && fusermount3 -uz "$D/mnt/$m" 2>/dev/null
	done
	if [ "${CEPH_UP_KEEP_LOGS:-0}" = 1 ]; then
		find "$D" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
	else
		rm -rf "$D"
	fi
	say "down: daemons stopped, $D removed"
}

cmd_status() {
	local f pid
	[ -f "$CONF" ] || { echo "no cluster in $D"; return 1; }
	for f in "$D"/run/*.pid; do
		case $f in *.daemon.pid) continue ;; esac
		pid=$(cat "$f")
		printf '%-8s %-7s %s\n' "$(basename "$f" .pid)" "$pid" "$(pid_alive "$pid" && echo alive || echo DEAD)"
	done
}

case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|status DIR" >&2
	exit 2
	;;
esac
