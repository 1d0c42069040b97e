#!/usr/bin/env bash
# Job logs (<job>.log, -/jobs/<id>.log; issue 18): ls -l, find and stat of a folder of logs ask
# for no trace at all (a log's size is 0, unknown, until read to its end, then exact); a log
# larger than --cache-size and than the daemon's in-memory window reads byte for byte; an erased
# job's log (GitLab's remedy for a secret leaked in it) is ENOENT after the TTL and leaves the
# cache folder, in this mount and in the next. The fixture is written here.
source "$(dirname "$0")/lib.sh"

FIXTURE=$T/joblogs.json
"$PYTHON" - "$FIXTURE" <<'PY'
import json, sys
small = {"members": [{"path": "out.txt", "text": "artifact\n"}]}
# 12 MiB: more than the 1M cache below and the 8 MiB window a streamed log keeps in memory
big = "".join("line %08d of a long build log\n" % i for i in range(12 * 1024 * 1024 // 32))
jobs = [{"id": 5101, "name": "build", "trace": "building\n" * 100},
        {"id": 5102, "name": "big", "trace": big},
        {"id": 5103, "name": "leak", "trace": "TOKEN=s3cr3t-leaked-5103\n"},
        {"id": 5104, "name": "leak2", "trace": "TOKEN=s3cr3t-leaked-5104\n"}]
for j in jobs:
    j["archive"] = "small"
json.dump({
    "users": {"maria": {"id": 1}},
    "tokens": [{"value": "glpat-sim-logs-5e2f", "kind": "personal", "user": "maria",
                "scopes": ["api"], "role": "maintainer"}],
    "archives": {"small": small},
    "projects": [{"id": 501, "path": "acme/logs", "visibility": "private",
                  "default_branch": "main", "members": {"maria": "maintainer"},
                  "branches": {"main": "d0c5000000000000000000000000000000000501"}, "tags": {},
                  "pipelines": [{"id": 910, "ref": "main", "status": "success",
                                 "sha": "d0c5000000000000000000000000000000000501",
                                 "jobs": jobs}]}],
}, open(sys.argv[1], "w"))
PY
start_sim
export GITLAB_TOKEN=glpat-sim-logs-5e2f
mnt=$T/mnt
p="$mnt/acme%2Flogs"
traces() { simlog count --path '/jobs/[0-9]+/trace$'; }
cache_files() { find "$T/cache" -name "l*-$1.afs" | wc -l; }
api() { curl -sf -H "PRIVATE-TOKEN: $GITLAB_TOKEN" "$@"; }
api "$URL/api/v4/projects/501/jobs/5102/trace" >"$T/big.ref" || die "cannot get the big trace"
api "$URL/api/v4/projects/501/jobs/5101/trace" >"$T/build.ref" || die "cannot get a trace"

mount_fs "$mnt" --ttl 0 --cache-size 1M
sim_admin log/reset
ls -l "$p/main" >/dev/null || die "cannot list main"
find "$p/main" "$p/-/jobs" -maxdepth 1 -name '*.log' -printf '%s\n' >/dev/null
stat "$p/-/jobs/5102.log" "$p/main/build.log" >/dev/null
check_eq "ls -l, find and stat of logs ask for no trace" 0 "$(traces)"
check_eq "a log not read yet says size 0 (unknown)" 0 "$(stat -c %s "$p/main/build.log")"
check "it reads whole all the same" cmp "$p/main/build.log" "$T/build.ref"
check_eq "in one request" 1 "$(traces)"
check_eq "read to its end, its size is exact" "$(stat -c %s "$T/build.ref")" \
	"$(stat -c %s "$p/main/build.log")"
check "read again, from the cache" cmp "$p/-/jobs/5101.log" "$T/build.ref"
check_eq "without a request" 1 "$(traces)"

check "a 12 MiB log reads byte for byte past a 1M cache" cmp "$p/main/big.log" "$T/big.ref"
check_eq "in one request" 2 "$(traces)"
check "and again" cmp "$p/-/jobs/5102.log" "$T/big.ref"

# a reader that leaves a streamed log early is not held by a server stalled mid-body: its GET
# stops (without the question on the GET's thread, closing waited out the low-speed timeout).
# The reader takes all the server sent (half the log) before closing: the GET waits on the
# server, not on the reader, when the file is closed.
held() { grep -q "gitlab_sim: stalling" "$T/sim.out"; }
stopped() { grep "stopped: its reader was interrupted" "$T/daemon.log" | grep -q trace; }
export -f stopped
sim_admin faults 'nth=1:hold,stall_s=120,paths=/jobs/5102/trace$'
exec 7<"$p/-/jobs/5102.log"
half=$(($(stat -c %s "$T/big.ref") / 2)) # where the simulator's write_body holds
head -c "$half" <&7 >"$T/half" || die "cannot read the first half of the big log"
check "the half read is the log's" cmp "$T/half" "$T/big.ref" --bytes "$half"
wait_for 60 held || die "the read never reached the server's hold"
exec 7<&-
check "closed early, the log's GET stops while the server still holds it" wait_for 30 stopped
check "the server held it all along" bash -c "! grep -q 'gitlab_sim: hold of' '$T/sim.out'"
sim_admin release
sim_admin faults ""

# an erased job: its log goes from the mount and from the cache within the TTL (0 here)
check "a log to be erased reads" grep -q s3cr3t-leaked-5103 "$p/-/jobs/5103.log"
check_eq "and is in the cache" 1 "$(cache_files 5103)"
api -X POST "$URL/api/v4/projects/501/jobs/5103/erase" >/dev/null || die "cannot erase 5103"
check_eq "erased, it is ENOENT" ENOENT "$(sys stat "$p/-/jobs/5103.log")"
check_eq "and no file of it stays in the cache" 0 "$(cache_files 5103)"
check_eq "nor is it under the ref" ENOENT "$(sys stat "$p/main/leak.log")"
check "no cache file holds the secret" bash -c "! grep -rq s3cr3t-leaked-5103 '$T/cache'"

# erased while no mount runs: the next mount neither serves it nor keeps it
check "another log reads" grep -q s3cr3t-leaked-5104 "$p/-/jobs/5104.log"
unmount_fs "$mnt"
api -X POST "$URL/api/v4/projects/501/jobs/5104/erase" >/dev/null || die "cannot erase 5104"
check_eq "it is in the cache folder while unmounted" 1 "$(cache_files 5104)"
mount_fs "$mnt" --ttl 0 --cache-size 1M
check_eq "the next mount says ENOENT" ENOENT "$(sys stat "$p/-/jobs/5104.log")"
check_eq "and removes it from the cache" 0 "$(cache_files 5104)"
unmount_fs "$mnt"
finish
