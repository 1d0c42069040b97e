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
check_eq "one log line says it was not cached" 1 "$(grep -c 'read without being cached' "$T/daemon.log")"
check "no read failed, nothing said ENOSPC" \
	bash -c "! grep -E 'failed|No space left' '$T/daemon.log'"
check "the cache folder stays within 8 MiB ($(du -sk "$T/cache" | cut -f1) KiB)" \
	test "$(du -sk "$T/cache" | cut -f1)" -le 8192

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
check "and the cache folder still stays within 8 MiB" \
	test "$(du -sk "$T/cache" | cut -f1)" -le 8192

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

# Harsh faults: most fetches fail even after their retries. Each read is exact or fails with
# EIO; a window slice that failed never hands out its (unfilled) bytes. No resets here: after
# one, the client fails every request at once for a moment (server down). Each reader starts
# without faults, so that it is past the cache (8 MiB full of this very file) before they begin.
rm -rf "$T/cache"
mount_fs "$mnt" --cache-dir "$T/cache" --cache-size 8M --timeout 2 --retry-for 2
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
finish
