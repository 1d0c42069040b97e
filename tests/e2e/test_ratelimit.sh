#!/usr/bin/env bash
# Rate limits are waited out, not turned into EIO (GitLab issue 9, item 5): a read that meets a
# rate-limit window returns exact bytes once the window ends, whether the 429s are bare (GitLab's
# application limits send neither Retry-After nor RateLimit-Reset) or say how long (Rack::Attack).
# The window is RATELIMIT_WINDOW seconds (default 8: longer than the ~5 s the old retries lasted;
# the README's 40 s was run by hand with RATELIMIT_WINDOW=40). The budget is --retry-for.
source "$(dirname "$0")/lib.sh"

window=${RATELIMIT_WINDOW:-8}
start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"
"$PYTHON" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("lib/hello.c"))' \
	"$T/sim-state/job-1101.zip" >"$T/hello.c" || die "cannot read the fixture's archive"
# the archive reads only (by id or by ref), not the listings or /tree
archive_paths='/jobs/[0-9]+/artifacts([?]|$)|/jobs/artifacts/[^?]*/download[?]'

# read_in_window NAME FAULTS: mounts with an empty cache, lists the job (its index is cached),
# opens a rate-limit window on the archive reads, then reads one member through it.
read_in_window() {
	local name=$1 faults=$2
	mount_fs "$mnt" --cache-dir "$T/cache-$name" --retry-for $((window * 3 + 30))
	ls "$app/-/jobs/1101/lib" >/dev/null || die "cannot list the job before the window"
	sim_admin faults "$faults,paths=$archive_paths" || die "cannot set the faults"
	local t0=$SECONDS
	cp "$app/-/jobs/1101/lib/hello.c" "$T/got-$name" 2>"$T/cp-$name.err"
	local rc=$? took=$((SECONDS - t0))
	check "$name: the read returns exact bytes (rc=$rc, $(cat "$T/cp-$name.err"))" \
		cmp "$T/got-$name" "$T/hello.c"
	check "$name: it waited the window out (${took}s >= $((window - 1))s)" \
		test "$took" -ge $((window - 1))
	sim_admin faults ""
	check "$name: the server really answered 429" \
		bash -c "[ \"\$(simlog count --status 429)\" -gt 0 ]"
	unmount_fs "$mnt"
}

read_in_window bare "ratelimit=$window,ratelimit_headers=0"
sim_admin log/reset
read_in_window throttled "ratelimit=$window,ratelimit_headers=1"

# A budget shorter than the window: EIO within the budget, not a hang.
mount_fs "$mnt" --cache-dir "$T/cache-short" --retry-for 2
ls "$app/-/jobs/1101/lib" >/dev/null || die "cannot list the job"
sim_admin faults "ratelimit=60,ratelimit_headers=1,paths=$archive_paths"
t0=$SECONDS
check_eq "a window past --retry-for fails with EIO" EIO "$(sys read "$app/-/jobs/1101/lib/hello.c")"
check "within the budget, not after the window (took $((SECONDS - t0))s)" test $((SECONDS - t0)) -le 10
sim_admin faults ""
unmount_fs "$mnt"
finish
