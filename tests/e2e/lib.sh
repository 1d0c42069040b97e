# Sourced by every tests/e2e/test_*.sh: starts the GitLab simulator on loopback, mounts the
# daemon against it, and counts checks. Everything it starts is stopped on exit, and every wait
# is for a condition with a deadline, never a fixed sleep.
set -uo pipefail
: "${ARTIFACTFS_BIN:?set by ctest}" "${ARTIFACTFS_SIM:?set by ctest}"
PYTHON=${PYTHON:-/usr/bin/python3}
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURE=${FIXTURE:-$(dirname "$ARTIFACTFS_SIM")/fixtures/default.json}
T=$(mktemp -d /tmp/afs-e2e.XXXXXX)
PASS=0
FAIL=0
SIM_PID=
URL=
CEPH_DIR=
declare -a DAEMON_PIDS=() MOUNTS=()
declare -A PID_OF=()

cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u -z "$m" 2>/dev/null
	done
	for p in "${DAEMON_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
	wait 2>/dev/null
	stop_ceph # after the daemons: their cache folders may be on its mounts
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# wait_for SECONDS CMD...: polls CMD until it succeeds or the deadline passes.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" 2>/dev/null; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

die() {
	echo "fatal: $*"
	[ -f "$T/daemon.log" ] && sed 's/^/    daemon: /' "$T/daemon.log" | tail -30
	[ -f "$T/sim.out" ] && sed 's/^/    sim: /' "$T/sim.out" | tail -30
	echo "$PASS passed, $((FAIL + 1)) failed"
	exit 1
}

# start_sim [simulator options...]: sets URL. The simulator plays GitLab $GITLAB_VERSION (a key
# of its PROFILES; default newest).
start_sim() {
	rm -f "$T/ready"
	"$PYTHON" "$ARTIFACTFS_SIM" --fixture "$FIXTURE" --port 0 --ready-file "$T/ready" \
		--log "$T/sim.log" --lifetime 900 --state-dir "$T/sim-state" \
		--gitlab-version "${GITLAB_VERSION:-newest}" "$@" >"$T/sim.out" 2>&1 &
	SIM_PID=$!
	wait_for 120 sim_started || die "the simulator did not start"
	[ -s "$T/ready" ] || die "the simulator exited at start"
	URL=$(head -n1 "$T/ready")
}

sim_started() {
	[ -s "$T/ready" ] || ! kill -0 "$SIM_PID" 2>/dev/null
}

stop_sim() {
	kill "$SIM_PID" 2>/dev/null
	wait "$SIM_PID" 2>/dev/null
	SIM_PID=
}

# mount_fs MOUNTPOINT [artifactfs options...]: runs the daemon in the foreground (logging to
# $T/daemon.log) and returns once MOUNTPOINT is mounted. Credentials come from the environment.
mount_fs() {
	local mnt=$1
	shift
	mkdir -p "$mnt"
	# ARTIFACTFS_WRAP runs the daemon under a tool, e.g. valgrind (word-split on purpose)
	${ARTIFACTFS_WRAP:-} "$ARTIFACTFS_BIN" "$URL" "$mnt" -f --cache-dir "$T/cache" "$@" \
		2>>"$T/daemon.log" &
	local pid=$!
	DAEMON_PIDS+=("$pid")
	MOUNTS+=("$mnt")
	wait_for 30 mountpoint -q "$mnt" || die "artifactfs did not mount $mnt"
	LAST_PID=$pid
	PID_OF[$mnt]=$pid
}

# unmount_fs MOUNTPOINT: unmounts and waits for that daemon to exit.
unmount_fs() {
	fusermount3 -u "$1" || die "cannot unmount $1"
	wait "${PID_OF[$1]}"
	local rc=$?
	[ "$rc" -eq 0 ] || not_ok "the daemon of $1 exited cleanly (rc=$rc)"
}

ok() {
	PASS=$((PASS + 1))
	echo "ok $((PASS + FAIL)) - $1"
}

not_ok() {
	FAIL=$((FAIL + 1))
	echo "not ok $((PASS + FAIL)) - $1"
}

# check DESCRIPTION CMD...: CMD must succeed.
check() {
	local desc=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc"
		sed 's/^/    /' "$T/check.out" | head -20
	fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" == "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		echo "    expected: $2"
		echo "    actual:   $3"
	fi
}

# sys OP PATH [ARG]: performs one syscall and prints OK (and a result) or the errno's name.
sys() {
	"$PYTHON" "$E2E_DIR/sys.py" "$@"
}

# simlog ARGS...: queries the simulator's request log (see simlog.py).
simlog() {
	# a response can be out before its log line: let the simulator finish writing (if it runs)
	curl -s -m 10 -X POST "$URL/-/sim/settle" >/dev/null 2>&1
	"$PYTHON" "$E2E_DIR/simlog.py" "$T/sim.log" "$@"
}

# sim_admin PATH [BODY]: POSTs to the simulator's admin endpoints.
sim_admin() {
	curl -sf -X POST --data-binary "${2:-}" "$URL/-/sim/$1" >/dev/null
}

# start_ceph: a real, throw-away single-node Ceph in $T/ceph (tests/ceph/ceph-up.sh: CephFS with
# two ceph-fuse mounts, $CEPHFS_MNT_A and $CEPHFS_MNT_B, standing for two machines; radosgw as S3
# at $S3_ENDPOINT_URL, its keys in AWS_*; its log in $RGW_LOG with every request's headers).
# Stopped on exit, and by a watcher should this script be killed. A scenario that needs it FAILS
# when it cannot start: it never skips.
start_ceph() {
	CEPH_DIR=$T/ceph
	CEPH_UP_WATCH_PID=$$ CEPH_UP_RGW_DEBUG=20 bash "$E2E_DIR/../ceph/ceph-up.sh" up "$CEPH_DIR" \
		>"$T/ceph-up.out" 2>&1 || {
		sed 's/^/    ceph: /' "$T/ceph-up.out" | tail -30
		die "Ceph did not start (tests/ceph/ceph-up.sh; scripts/deps installs it)"
	}
	# shellcheck disable=SC1091
	source "$CEPH_DIR/env.sh"
	echo "# Ceph up: $(tail -n1 "$T/ceph-up.out")"
}

stop_ceph() {
	[ -n "$CEPH_DIR" ] || return 0
	bash "$E2E_DIR/../ceph/ceph-up.sh" down "$CEPH_DIR" >>"$T/ceph-down.out" 2>&1 ||
		echo "# ceph-up.sh down failed: $(tail -n3 "$T/ceph-down.out")"
	CEPH_DIR=
}

# rgwlog ARGS...: queries radosgw's log (see rgwlog.py), after radosgw wrote out what it holds.
rgwlog() {
	ceph --admin-daemon "$CEPH_DIR/run/client.rgw.a.asok" log flush >/dev/null 2>&1
	"$PYTHON" "$E2E_DIR/rgwlog.py" "$RGW_LOG" "$@"
}

# rgwlog_mark: the length of radosgw's log once written out, for rgwlog --from.
rgwlog_mark() {
	ceph --admin-daemon "$CEPH_DIR/run/client.rgw.a.asok" log flush >/dev/null 2>&1
	stat -c %s "$RGW_LOG"
}

# The helpers are used inside "bash -c" checks too.
export T PYTHON E2E_DIR FIXTURE URL CEPH_DIR
export -f sys simlog rgwlog

finish() {
	# valgrind -q writes "==PID== ..." lines only for errors and leaks
	local report="Sanitizer|runtime error:|^==[0-9]+== "
	if grep -qE "$report" "$T/daemon.log" 2>/dev/null; then
		not_ok "the daemon ran without sanitizer or valgrind reports"
		grep -B5 -A30 -E "$report" "$T/daemon.log" | head -80 | sed 's/^/    /'
	fi
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# sim_profile KEY: the simulator's PROFILES[$GITLAB_VERSION][KEY] as Python prints it (True,
# False, None, a number): what the GitLab release the test runs against does.
sim_profile() {
	"$PYTHON" -c 'import importlib.util, sys
spec = importlib.util.spec_from_file_location("gitlab_sim", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
print(m.PROFILES[sys.argv[2]][sys.argv[3]])' "$ARTIFACTFS_SIM" "${GITLAB_VERSION:-newest}" "$1"
}

# fixture_token ROLE: the value of the fixture's token with that role (maintainer, reporter,
# oauth, expired, job).
fixture_token() {
	"$PYTHON" -c 'import json,sys
f = json.load(open(sys.argv[1], encoding="utf-8"))
print(next(t["value"] for t in f["tokens"] if t.get("role") == sys.argv[2]))' "$FIXTURE" "$1"
}
