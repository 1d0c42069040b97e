#!/usr/bin/env bash
# Big members: a member 8x larger than --cache-size reads exactly, past the cache, with one log
# line saying so, while the cache folder stays within its size; parallel and seeking readers of
# it get exact bytes too, also under faults.
source "$(dirname "$0")/lib.sh"

MIB=$((1 << 20))
FIXTURE=$T/fixture.json
"$PYTHON" - "$FIXTURE" <<'PY'
import json, sys
json.dump({
    "users": {"bob": {"id": 1}},
    "tokens": [{"value": "glpat-big-0000", "kind": "personal", "user": "bob", "scopes": ["api"],
                "role": "maintainer"}],
    "projects": [{"id": 1, "path": "big/app", "visibility": "private", "members": {"bob": 40},
                  "branches": {"main": "0" * 40},
                  "pipelines": [{"id": 1, "ref": "main", "jobs": [
                      {"id": 21, "name": "big", "archive": {"members": [
                          {"path": "big.bin", "random": 64 << 20, "seed": 1, "compress": "stored"},
                          {"path": "packed.bin", "text": "0123456789abcdef\n", "repeat": 1 << 20},
                          {"path": "small.txt", "text": "a small member\n"}]}}]}]}]},
    open(sys.argv[1], "w"))
PY
export GITLAB_TOKEN=glpat-big-0000
mnt=$T/mnt
job="$mnt/big%2Fapp/-/jobs/21"

start_sim
md5_of() { unzip -p "$T/sim-state/job-21.zip" "$1" | md5sum | cut -d' ' -f1; }

mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 8M
ls "$job" >/dev/null || die "cannot list job 21"
big_md5=$(md5_of big.bin)
packed_md5=$(md5_of packed.bin)
check_eq "a 64 MiB member reads exactly with an 8 MiB cache" "$big_md5" \
	"$(md5sum <"$job/big.bin" | cut -d' ' -f1)"
# the kernel's read-ahead on the mount, raised from its 128 KiB default at the first open, lets
# it send the 1 MiB requests libfuse takes (root only: these tests run as root)
check_eq "the mount's kernel read-ahead is 1 MiB" 1024 \
	"$(cat "/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb")"
check_eq "one log line says it was not cached" 1 "$(grep -c 'read without being cached' "$T/daemon.log")"
check "no read failed, nothing said ENOSPC" \
	bash -c "! grep -E 'failed|No space left' '$T/daemon.log'"
# the files in it, not the folders themselves (which the limit does not count)
cache_kib() { find "$T/cache" -type f -print0 | du -ck --files0-from=- | tail -1 | cut -f1; }
check "the cache folder's files stay within 8 MiB ($(cache_kib) KiB)" test "$(cache_kib)" -le 8192

# Two readers at once, of the big stored member and of a deflated one 16 MiB long.
md5sum <"$job/big.bin" >"$T/r1" &
p1=$!
md5sum <"$job/packed.bin" >"$T/r2" &
p2=$!
md5sum <"$mnt/big%2Fapp/main/big/big.bin" >"$T/r3" &
p3=$!
wait $p1 $p2 $p3
check_eq "parallel readers: the first is exact" "$big_md5" "$(cut -d' ' -f1 "$T/r1")"
check_eq "parallel readers: the deflated member is exact" "$packed_md5" "$(cut -d' ' -f1 "$T/r2")"
check_eq "parallel readers: the same member by ref is exact" "$big_md5" "$(cut -d' ' -f1 "$T/r3")"
check "and they still stay within 8 MiB ($(cache_kib) KiB)" test "$(cache_kib)" -le 8192

# A seeking reader: 1 MiB pieces in a shuffled order, each compared with the original.
"$PYTHON" - "$job/big.bin" "$T/sim-state/job-21.zip" >"$T/seek.out" <<'PY'
import random, sys, zipfile
want = zipfile.ZipFile(sys.argv[2]).open("big.bin").read()
order = list(range(64))
random.Random(5).shuffle(order)
bad = 0
with open(sys.argv[1], "rb", buffering=0) as f:
    for i in order[:24]:
        f.seek(i << 20)
        got = b""
        while len(got) < 1 << 20:
            b = f.read((1 << 20) - len(got))
            if not b:
                break
            got += b
        bad += got != want[i << 20:(i + 1) << 20]
print(bad)
PY
check_eq "a seeking reader gets exact bytes" 0 "$(cat "$T/seek.out")"
unmount_fs "$mnt"

# Under faults (resets, truncated bodies, 5xx) with a small cache: exact bytes or EIO, never
# wrong ones; the retries make it through here.
sim_admin faults "rate=0.1,kinds=500+502+503+reset+truncate,seed=3,paths=/artifacts,retry_after=0"
rm -rf "$T/cache"
mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 8M --connections 4
md5sum <"$job/big.bin" >"$T/f1" &
p1=$!
md5sum <"$job/packed.bin" >"$T/f2" &
p2=$!
wait $p1 $p2
check_eq "under faults: the big member is exact" "$big_md5" "$(cut -d' ' -f1 "$T/f1")"
check_eq "under faults: the deflated member is exact" "$packed_md5" "$(cut -d' ' -f1 "$T/f2")"
check "faults were injected" bash -c "simlog count >/dev/null && grep -q '\"fault\": \"' '$T/sim.log'"
unmount_fs "$mnt"

# Parallel ranged fetches on a slow link (2 MiB/s per connection): a sequential reader has
# several requests in flight at once; the stats count bytes as they arrive; a reader that
# closes stops its fetches; user.artifactfs.cached counts a member's cached bytes.
stat_of() { getfattr --only-values -n user.artifactfs.stats "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
export -f stat_of
export mnt
sim_admin faults ""
rm -rf "$T/cache"
mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 1G --connections 4
ls "$job" >/dev/null || die "cannot list job 21"
check "a member not read yet has no cached bytes but its header's block" \
	test "$(getfattr --only-values -n user.artifactfs.cached "$job/big.bin")" -lt 16384
sim_admin link "rate=2M"
sim_admin log/reset
"$PYTHON" - "$job/big.bin" <<'PY'
import sys
with open(sys.argv[1], "rb", buffering=0) as f:  # 6 MiB not cached yet, then close
    f.seek(40 << 20)
    for _ in range(48):
        f.read(128 << 10)
PY
check "after the close, its transfers end" wait_for 60 bash -c '[ "$(stat_of transfers_active)" -eq 0 ]'
# Fetches under way at the close stop at their next bytes (the simulator logs them short of
# their range), and the read-ahead stays near the reads (it grows as the reader keeps pace).
simlog count >/dev/null
cut_short=$("$PYTHON" - "$T/sim.log" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "/artifacts" in r["path"] and (r.get("range") or "").startswith("bytes="):
        a, b = r["range"][6:].split("-")
        n += r["bytes"] < int(b) - int(a) + 1
print(n)
PY
)
check "a reader that closes stops its fetches ($cut_short cut short)" test "$cut_short" -ge 1
fetched=$(simlog bytes --path /artifacts)
check "and its read-ahead stays near where it read ($((fetched / MIB)) MiB fetched for 6 MiB)" \
	test "$fetched" -lt $((16 * MIB))
head -c $((48 * MIB)) "$job/big.bin" >/dev/null &
reader=$!
check "a sequential reader has several ranged fetches in flight at once" \
	wait_for 60 bash -c '[ "$(stat_of transfers_active)" -ge 2 ]'
# seen: the rest of the 48 MiB at 2 MiB/s a connection would only be waited out
kill $reader 2>/dev/null
wait $reader
wait_for 60 bash -c '[ "$(stat_of transfers_active)" -eq 0 ]' || die "transfers went on"
sim_admin link ""
cat "$job/small.txt" >/dev/null
check_eq "a member read whole is all cached" "$(unzip -Zv "$T/sim-state/job-21.zip" small.txt | awk '/compressed size:/ && !/un/ {print $3; exit}')" \
	"$(getfattr --only-values -n user.artifactfs.cached "$job/small.txt")"
# A transfer stalled halfway: its bytes so far are counted already. The stall is a hold,
# released once seen, not waited out.
sim_admin faults "nth=1:hold,stall_s=30,paths=/artifacts"
before=$(stat_of archive_bytes_arrived)
head -c 4096 "$job/packed.bin" >/dev/null 2>&1 &
stalled=$!
check "the stats count bytes as they arrive (a stalled transfer's half is counted)" \
	wait_for 30 bash -c "[ \"\$(stat_of transfers_active)\" -ge 1 ] && [ \"\$(stat_of archive_bytes_arrived)\" -gt $before ]"
sim_admin release
wait $stalled
unmount_fs "$mnt"
sim_admin faults ""

# Harsh faults: most fetches fail, their retries spent within a 1 s budget. Each read is exact
# or fails with EIO; a window slice that failed never hands out its (unfilled) bytes. No resets
# here: after one, the client fails every request at once for a moment (server down). Each
# reader starts without faults, so that it is past the cache (8 MiB full of this very file)
# before they begin. (With a 2 s budget a reader got through tens of MiB, 10-25 s, before its
# EIO; the slices that fail are what this is about.)
rm -rf "$T/cache"
mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 8M --timeout 2 --retry-for 1
"$PYTHON" - "$job/big.bin" "$T/sim-state/job-21.zip" "$URL" >"$T/harsh.out" <<'PY'
import errno, sys, urllib.request, zipfile
want = zipfile.ZipFile(sys.argv[2]).open("big.bin").read()
def faults(spec):
    urllib.request.urlopen(urllib.request.Request(sys.argv[3] + "/-/sim/faults", spec.encode(),
                                                  method="POST")).read()
wrong = failed = 0
for seed in (5, 6):
    faults("")
    with open(sys.argv[1], "rb", buffering=0) as f:
        got = bytearray()
        while len(got) < 12 << 20:
            got += f.read(128 << 10)
        faults("rate=0.8,kinds=500+503,seed=%d,paths=/artifacts,retry_after=0" % seed)
        try:
            while b := f.read(128 << 10):
                got += b
            wrong += got != want
        except OSError as e:
            failed += 1
            wrong += e.errno != errno.EIO or got != want[:len(got)]
print(wrong, failed)
PY
read -r wrong failed <"$T/harsh.out"
check_eq "harsh faults, past the cache: no read has wrong bytes ($failed of 2 failed with EIO)" \
	0 "$wrong"
unmount_fs "$mnt"

# A window slice fetches on a pool thread, where the failure's reason is told (reasons are per
# thread), yet the reader's one error line carries it: past the cache under HTTP 500, it says so.
sim_admin faults ""
rm -rf "$T/cache"
mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 8M --retry-for 1
loud0=$(grep -c ': error: ' "$T/daemon.log")
"$PYTHON" - "$job/big.bin" "$URL" >"$T/past500.out" <<'PY'
import sys, urllib.request
with open(sys.argv[1], "rb", buffering=0) as f:
    n = 0
    while n < 12 << 20:
        n += len(f.read(128 << 10))
    urllib.request.urlopen(urllib.request.Request(sys.argv[2] + "/-/sim/faults",
                                                  b"rate=1,kinds=500,paths=/artifacts",
                                                  method="POST")).read()
    try:
        while f.read(128 << 10):
            pass
        print("read")
    except OSError as e:
        print(e.errno)
PY
check_eq "past the cache under HTTP 500, the read fails with EIO" 5 "$(cat "$T/past500.out")"
check_eq "with one error line" $((loud0 + 1)) "$(grep -c ': error: ' "$T/daemon.log")"
check "which has the status a pool thread got" \
	bash -c "grep ': error: ' '$T/daemon.log' | tail -n1 | grep -E 'big.bin: .*HTTP 500'"
unmount_fs "$mnt"
sim_admin faults ""
finish
