#!/usr/bin/env bash
# One error line per failed operation (issue 13 "Logs"): a cat of a member while the server
# answers 500 writes exactly one line, naming the path, the call and the status, however many
# retries, blocks, kernel read requests and background fetches it took; a second failing file
# writes one more; a lookup failing with EIO one line; ENOENT nothing at error or warning.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
log=$T/afs.log
# lines at error or warning level
loud() { grep -E '^[^ ]+ artifactfs\[[0-9]+\]: (error|warning): ' "$log"; }
nloud() { loud | wc -l; }

start_sim
(cd "$T" && unzip -p "$T/sim-state/job-1101.zip" data/big.bin >"$T/sim-ref-big") || die "no reference"
mount_fs "$mnt" --log-file "$log" --retry-for 1
job="$mnt/$app/-/jobs/1101"
ls "$job/data" >/dev/null || die "cannot list job 1101" # its index is cached from now on
check_eq "a clean start logs nothing loud" 0 "$(nloud)"

# big.bin's first bytes are read before the server fails, so its open works and its reads fail
head -c 1 "$job/data/big.bin" >/dev/null || die "cannot read big.bin's first byte"
sim_admin faults "rate=1,kinds=500,paths=/jobs/1101/artifacts"
check "cat of a 3 MiB member under HTTP 500 fails" bash -c "! cat '$job/data/big.bin' >/dev/null"
check "the simulator answered 500 more than once (retries)" \
	test "$(simlog count --path '/jobs/1101/artifacts' --status 500)" -ge 2
check_eq "one failed cat writes exactly one line" 1 "$(nloud)"
line=$(loud | tail -n1)
check "it is an error line naming the path" \
	grep -q ": error: /$app/-/jobs/1101/data/big.bin: read failed: " <<<"$line"
check "the call" grep -qF "GET /api/v4/projects/$app/jobs/1101/artifacts" <<<"$line"
check "and the status" grep -q "HTTP 500" <<<"$line"
# stored.bin was never read: its open fails already (it reads the member's local header)
check_eq "a second failing file" EIO "$(sys read "$job/data/stored.bin")"
check_eq "writes one line more" 2 "$(nloud)"
check "naming its own path and the status" \
	bash -c "tail -n1 '$log' | grep -E ': error: /$app/-/jobs/1101/data/stored.bin: .*HTTP 500'"

# a lookup that fails with EIO: one line, with the path and the status
sim_admin faults "rate=1,kinds=500,paths=/repository/(branches|tags)|/pipelines"
check_eq "a lookup under HTTP 500 fails with EIO" EIO "$(sys stat "$mnt/$app/feature%2Flogin")"
check_eq "and writes one line" 3 "$(nloud)"
check "naming the path and the status" \
	bash -c "tail -n1 '$log' | grep -E ': error: /$app/feature%2Flogin: .*HTTP 500'"

sim_admin faults ""
check_eq "a member that does not exist" ENOENT "$(sys stat "$job/no/such/member")"
check_eq "a job that does not exist" ENOENT "$(sys stat "$mnt/$app/-/jobs/999999")"
check_eq "a project that does not exist" ENOENT "$(sys stat "$mnt/no%2Fsuch")"
check_eq "write nothing at error or warning" 3 "$(nloud)"
check "no line ends in a bare status" bash -c "! grep -E 'HTTP [0-9]+\$' '$log'"
check "nothing went to stderr but start-up" \
	bash -c "! grep -vE 'artifactfs: info: ' '$T/daemon.log' | grep -q ."
unmount_fs "$mnt"

# a cache too small for a member: a read that fails says why (the cache is full) in its one
# line; one that reads past the cache says nothing loud
log=$T/afs-small.log
mount_fs "$mnt" --log-file "$log" --cache-dir "$T/cache-small" --cache-size 1M
if cat "$job/data/big.bin" >"$T/big.out" 2>/dev/null; then
	check "a 3 MiB member read past a 1M cache is exact" cmp "$T/big.out" "$T/sim-ref-big"
	check_eq "and logs nothing loud" 0 "$(nloud)"
else
	check_eq "a 3 MiB member failing in a 1M cache writes one line" 1 "$(nloud)"
	check "saying the cache is full" \
		bash -c "grep -q ': error: /$app/-/jobs/1101/data/big.bin: .*cache full' '$log'"
fi
unmount_fs "$mnt"
finish
