#!/usr/bin/env bash
# A reader's signal stops the work done for it (issue 18 item 7): kill -9 of a process stuck on a
# lookup of a stalled server ends it while the server still holds the transfer, whether it made
# the request or waited for another reader's; nothing of the interrupted load is remembered.
# No timing: the simulator's "hold" ends only when the test releases it, after the killed
# process is gone, so a kill that does not work fails the wait's deadline instead of passing.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
jobs="$mnt/$app/-/jobs"

# gone PID: the process has exited (a zombie until reaped, or reaped already).
gone() {
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -z "$s" ] || [ "$s" = Z ]
}
# waiting PID: the process sleeps (on its FUSE request, here).
waiting() {
	case "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" in S | D) ;; *) return 1 ;; esac
}
held() { grep -q "gitlab_sim: stalling" "$T/sim.out"; }
hold_ended() { grep -q "gitlab_sim: hold of" "$T/sim.out"; }
export -f waiting hold_ended

# --timeout and --retry-for far beyond the deadlines below: only the interrupt can end the call
start_sim --faults "nth=1:hold,stall_s=120,paths=/artifacts$"
mount_fs "$mnt" --timeout 300 --retry-for 600
mkdir -p "$T/ref" && (cd "$T/ref" && unzip -q "$T/sim-state/job-1101.zip") || die "no reference"

# 1. One reader: its lookup loads the job's index, and the server holds that transfer.
cat "$jobs/1101/data/big.bin" >/dev/null 2>&1 &
pid=$!
wait_for 60 held || die "the lookup never reached the server's hold"
kill -9 "$pid"
if wait_for 30 gone "$pid"; then
	ok "kill -9 ends a reader whose lookup waits on a stalled transfer"
else
	not_ok "kill -9 ends a reader whose lookup waits on a stalled transfer"
fi
check "the server still held the transfer when the reader was gone" bash -c "! hold_ended"
check "the daemon stopped the request for it" \
	grep -q "artifacts: stopped: its reader was interrupted" "$T/daemon.log"
sim_admin release
wait "$pid" 2>/dev/null
wait_for 60 hold_ended || die "the simulator never ended its hold"
check "the interrupted load is not remembered: the file reads right afterwards" \
	cmp "$jobs/1101/data/big.bin" "$T/ref/data/big.bin"
unmount_fs "$mnt"
stop_sim

# 2. Two readers of one job: the second waits for the first's index load (single flight). Killing
# the waiter ends it alone; the loader goes on and, once released, reads the right bytes.
start_sim --faults "nth=1:hold,stall_s=120,paths=/artifacts$"
mount_fs "$mnt" --timeout 300 --retry-for 600 --cache-dir "$T/cache2" -d
cat "$jobs/1101/data/big.bin" >"$T/loader.out" 2>"$T/loader.err" &
loader=$!
wait_for 60 held || die "the first lookup never reached the server's hold"
# another folder naming the same job: lookups in one folder are serialised by the kernel on a
# mutex no signal breaks, as libfuse before 3.16 never grants parallel directory operations
stat "$mnt/$app/main/build/data/big.bin" >/dev/null 2>&1 &
waiter=$!
wait_for 30 grep -q "LOOKUP /$app/main/build/data\$" "$T/daemon.log" ||
	die "the second reader's lookup never reached the daemon"
kill -9 "$waiter"
if wait_for 30 gone "$waiter"; then
	ok "kill -9 ends a reader waiting for another reader's load"
else
	not_ok "kill -9 ends a reader waiting for another reader's load"
fi
check "the loader still waits, the server still holding its transfer" \
	bash -c "! hold_ended && waiting $loader"
check "the waiter sent no request of its own: it waited for the loader's" \
	bash -c "! grep -q 'artifacts: HTTP' '$T/daemon.log'"
sim_admin release
wait "$waiter" 2>/dev/null
wait "$loader"
check_eq "the loader's read ends well once released" 0 $?
check "and its bytes are right" cmp "$T/loader.out" "$T/ref/data/big.bin"
unmount_fs "$mnt"
finish
