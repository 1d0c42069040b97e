#!/usr/bin/env bash
# A bad day: flaky server, stalls, a dead server, kill -9 mid-download, a full cache, parallel
# readers, paging links to another host. Files are exactly right or fail with a clean error.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
# ref_unzip ID: the simulator's own archive of job ID, unzipped into $T/ref-ID.
ref_unzip() {
	[ -d "$T/ref-$1" ] && return
	mkdir -p "$T/ref-$1" && (cd "$T/ref-$1" && unzip -q "$T/sim-state/job-$1.zip" 2>/dev/null)
}
# compare_tree MOUNTED REFERENCE: prints "right wrong failed" counts over the reference's files.
compare_tree() {
	local right=0 wrong=0 failed=0 f
	while IFS= read -r -d '' f; do
		if cat "$1/$f" >"$T/one" 2>"$T/one.err"; then
			if cmp -s "$T/one" "$2/$f"; then right=$((right + 1)); else wrong=$((wrong + 1)); fi
		else
			grep -q "Input/output error" "$T/one.err" && failed=$((failed + 1)) || wrong=$((wrong + 1))
		fi
	done < <(cd "$2" && find . -type f -print0)
	echo "$right $wrong $failed"
}

# 1. Chaos: 20% of archive requests fail (429, 5xx, resets, truncated bodies).
start_sim --faults "rate=0.2,kinds=429+500+502+503+reset+truncate,seed=11,paths=/artifacts,retry_after=0"
mount_fs "$mnt" --cache-dir "$T/cache-chaos"
for id in 1101 1103 1111; do ref_unzip $id; done
read -r r1 w1 f1 <<<"$(compare_tree "$mnt/$app/-/jobs/1101" "$T/ref-1101")"
read -r r2 w2 f2 <<<"$(compare_tree "$mnt/$app/main/build: [linux, amd64]" "$T/ref-1103")"
read -r r3 w3 f3 <<<"$(compare_tree "$mnt/$app/main/package" "$T/ref-1111")"
check_eq "chaos: no file has wrong bytes" 0 $((w1 + w2 + w3))
check "chaos: most files read right through the retries ($((r1 + r2 + r3)) right, $((f1 + f2 + f3)) EIO)" \
	test $((r1 + r2 + r3)) -gt $((f1 + f2 + f3))
check "chaos: faults were really injected" \
	bash -c "simlog count >/dev/null && grep -q '\"fault\": \"' '$T/sim.log'"
check "chaos: each failed read has an error line in the log" \
	bash -c "[ \"\$(grep -c ' artifactfs: error: ' '$T/daemon.log')\" -ge $((f1 + f2 + f3)) ]"
unmount_fs "$mnt"
stop_sim

# 2. A stalled transfer is abandoned after --timeout and retried (retries are told with -d only).
# curl averages the speed over about 5 s, so the burst before the stall adds that to --timeout.
start_sim --faults "nth=2:stall,stall_s=60,paths=/artifacts"
mount_fs "$mnt" --cache-dir "$T/cache-stall" --timeout 1 -d
ref_unzip 1101
check "a stalled transfer is retried and the bytes are right" \
	cmp "$mnt/$app/-/jobs/1101/data/big.bin" "$T/ref-1101/data/big.bin"
check "the stall was logged" grep -qE "Operation too slow|timed out|Timeout" "$T/daemon.log"
unmount_fs "$mnt"
stop_sim

# 2b. A server trickling faster than the low-speed limit still meets the attempt's ceiling
# (4 x --timeout plus the range at 32 KiB/s), and the retry brings the right bytes.
start_sim
mount_fs "$mnt" --cache-dir "$T/cache-drip" --timeout 1 -d
ls "$mnt/$app/-/jobs/1101/data" >/dev/null || die "cannot list job 1101"
sim_admin faults 'nth=1:drip,paths=/artifacts$'
check "a dripping transfer is cut off and retried, and the bytes are right" \
	cmp "$mnt/$app/-/jobs/1101/data/big.bin" "$T/ref-1101/data/big.bin"
check "the server did drip" grep -q "dripping" "$T/sim.out"
check "the cut-off was logged as a timeout" grep -q "timed out after" "$T/daemon.log"
unmount_fs "$mnt"
stop_sim

# 3. The server dies: what is cached is still served, the rest fails with EIO.
start_sim
mount_fs "$mnt" --cache-dir "$T/cache-dead" --timeout 2 --retry-for 1
cp -r "$mnt/$app/main/build" "$T/before" || die "cannot read before the server died"
ls "$mnt/$app/main" >/dev/null
stop_sim
check "with the server gone, a cached job is still listed" bash -c "ls '$mnt/$app/main/build' | grep -qx bin"
check "and its files still read right" diff -r "$T/before" "$mnt/$app/main/build"
check_eq "an uncached job's file fails with EIO" EIO "$(sys read "$mnt/$app/main/package/dist/app-1.0.tar")"
unmount_fs "$mnt"

# 3b. A server that accepts but never answers: after one request has given up, the next fail
# at once instead of each waiting out its own timeouts.
start_sim --faults "rate=1,kinds=hang,stall_s=60,paths=/artifacts"
mount_fs "$mnt" --cache-dir "$T/cache-hang" --timeout 1 --retry-for 2
check_eq "a hanging server gives EIO once the retries are spent" EIO \
	"$(sys read "$mnt/$app/-/jobs/1101/my report.txt")"
before=$(getfattr --only-values -n user.artifactfs.stats "$mnt" | awk '/^http_requests/ {print $2}')
check_eq "right after, another job fails at once" EIO "$(sys read "$mnt/$app/-/jobs/1103/out/app")"
after=$(getfattr --only-values -n user.artifactfs.stats "$mnt" | awk '/^http_requests/ {print $2}')
check_eq "without sending a request" "$before" "$after"
check "the log says why" grep -q "could not be reached moments ago" "$T/daemon.log"
unmount_fs "$mnt"
stop_sim

# 3c. SIGTERM while a read waits on a stalled transfer (with --timeout long enough to wait a
# minute): the transfer is stopped and the daemon exits at once, cleanly.
start_sim --faults "nth=3:stall,stall_s=120,paths=/artifacts"
mount_fs "$mnt" --cache-dir "$T/cache-term" --timeout 60
cat "$mnt/$app/-/jobs/1101/data/big.bin" >/dev/null 2>&1 &
reader=$!
wait_for 60 grep -q "stalling" "$T/sim.out" || die "the download never stalled"
pid=${PID_OF[$mnt]}
kill -TERM "$pid"
check "SIGTERM during a stalled transfer: the daemon is gone within 20 s, not after --timeout" \
	wait_for 20 bash -c "! kill -0 $pid 2>/dev/null"
wait "$pid"
check_eq "and it exited 0" 0 "$?"
wait "$reader" 2>/dev/null
check "the stopped transfer was logged as such" grep -q "the mount is going away" "$T/daemon.log"
mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"
stop_sim

# 4. kill -9 in the middle of a download; the next mount serves no half-written byte.
start_sim --faults "nth=3:stall,stall_s=120,paths=/artifacts"
mount_fs "$mnt" --cache-dir "$T/cache-kill"
cat "$mnt/$app/-/jobs/1101/data/big.bin" >/dev/null 2>&1 &
reader=$!
wait_for 60 grep -q "stalling" "$T/sim.out" || die "the download never stalled"
kill -9 "${PID_OF[$mnt]}"
wait "${PID_OF[$mnt]}" 2>/dev/null
fusermount3 -u -z "$mnt"
wait "$reader" 2>/dev/null
sim_admin faults ""
mount_fs "$mnt" --cache-dir "$T/cache-kill"
check "after kill -9 mid-download, the next mount reads exact bytes" \
	cmp "$mnt/$app/-/jobs/1101/data/big.bin" "$T/ref-1101/data/big.bin"
check "and the whole job matches" diff -r "$mnt/$app/-/jobs/1101" "$T/ref-1101"
unmount_fs "$mnt"
stop_sim

# 5. A cache too small for what is in use: read past the cache, exact; it stays within its size.
start_sim
mount_fs "$mnt" --cache-dir "$T/cache-small" --cache-size 1M
check "small files read in a 1M cache" cmp "$mnt/$app/main/build/my report.txt" "$T/ref-1101/my report.txt"
check "a 3 MiB member in a 1M cache reads exactly, past the cache" \
	cmp "$mnt/$app/main/build/data/big.bin" "$T/ref-1101/data/big.bin"
check "the cache folder stays near its size" \
	bash -c "[ \"\$(du -sk '$T/cache-small' | cut -f1)\" -le 1400 ]"
unmount_fs "$mnt"

# 5b. A full disk (a 2 MiB tmpfs as cache): clean errors, and what was kept stays right.
tiny=$T/tiny
mkdir -p "$tiny"
if mount -t tmpfs -o size=2m tmpfs "$tiny" 2>/dev/null; then
	mount_fs "$mnt" --cache-dir "$tiny/cache"
	check "before the disk fills, a small file reads right" \
		cmp "$mnt/$app/main/build/lib/hello.c" "$T/ref-1101/lib/hello.c"
	check "a read that fills the disk reads exactly, past the cache" \
		cmp "$mnt/$app/main/build/data/big.bin" "$T/ref-1101/data/big.bin"
	check "what was cached still reads right on the full disk" \
		cmp "$mnt/$app/main/build/lib/hello.c" "$T/ref-1101/lib/hello.c"
	unmount_fs "$mnt"
	mount_fs "$mnt" --cache-dir "$tiny/cache"
	check "and after a remount" cmp "$mnt/$app/main/build/lib/hello.c" "$T/ref-1101/lib/hello.c"
	unmount_fs "$mnt"
	umount "$tiny"
else
	echo "# skipped: cannot mount a tmpfs here"
fi

# 6. 16 readers over an uncached archive of several MiB (job 1101: data/big.bin alone is 3 MiB,
# far more than the 64 KiB tail a first look fetches), by both of its paths at once: each byte
# is fetched at most once. Then 4 small jobs read in parallel, every file right.
sim_admin log/reset
mount_fs "$mnt" --cache-dir "$T/cache-par"
ref_unzip 1101
size=$(stat -c %s "$T/sim-state/job-1101.zip")
[ "$size" -gt $((2 * 1024 * 1024)) ] || die "job 1101's archive is only $size bytes"
pids=()
for f in data/big.bin data/stored.bin logs/build.log lib/hello.c; do
	for dir in "$mnt/$app/main/build" "$mnt/$app/-/jobs/1101"; do
		for _ in 1 2; do cat "$dir/$f" >"$(mktemp "$T/par.XXXXXX")" & pids+=($!); done
	done
done
for p in "${pids[@]}"; do wait "$p" || die "a parallel read failed"; done
got=$(simlog bytes --path "/jobs/1101/artifacts")
check "16 parallel readers fetched the $size-byte archive at most once ($got bytes)" \
	test "$got" -le "$size"
check "and read it right" diff -r "$mnt/$app/-/jobs/1101/data" "$T/ref-1101/data"
declare -A jobs=([1102]="test 1%2F3" [1103]="build: [linux, amd64]" [1111]=package)
pids=()
for id in "${!jobs[@]}"; do
	ref_unzip "$id"
	for _ in 1 2 3 4; do diff -r "$mnt/$app/main/${jobs[$id]}" "$T/ref-$id" >/dev/null & pids+=($!); done
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
check_eq "parallel readers of small jobs read every file right" 0 "$bad"
unmount_fs "$mnt"
stop_sim

# 7. Paging links that name another host are followed on ours, with the token kept home.
start_sim --external-url "http://gitlab.example.invalid:9" --max-per-page 1
mount_fs "$mnt" --cache-dir "$T/cache-pages"
check_eq "every page of a one-per-page listing is read" \
	"acme%2Finternal-app acme%2Fold acme%2Fplatform%2Fapp acme%2Fsecret" "$(ls "$mnt" | tr '\n' ' ' | sed 's/ $//')"
check "refs over many pages" bash -c "[ \"\$(ls '$mnt/$app' | wc -l)\" -eq 4 ]"
unmount_fs "$mnt"
finish
