#!/usr/bin/env bash
# A fleet of runners sharing one cache folder on CephFS (issue 20), on a real throw-away Ceph: two
# mounts of artifactfs, each with --cache-dir in the same CephFS folder but through its own
# ceph-fuse mount (two machines), against the simulator keeping its archives in radosgw (S3).
# One machine after the other reads a 32 MiB member exactly, and radosgw serves its bytes about
# once; both at once too (a fetch in progress is claimed by a lock the other machine sees). A
# byte flipped in the shared folder by one machine is not served by the one that wrote it. Two
# machines with a small --cache-size keep the folder within it. Two tokens: what a Developer's
# mount cached, a Reporter's mount on the other machine is refused (artifacts:access: developer),
# and another Developer's mount there reads it from the folder, its metrics counting it as
# fetched by another mount. A machine killed mid-read (its daemon and its ceph-fuse client, then
# evicted) leaves the other reading exactly. Fails, never skips, when Ceph cannot start.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
MEMBER=$((32 << 20))
start_ceph
start_sim --storage s3 --s3-endpoint "$S3_ENDPOINT_URL" --s3-bucket "fleet-$$"

# job ID SEED: a new pipeline whose job ID holds big.bin, MEMBER random bytes (SEED) stored as
# they are; the simulator puts its archive in the bucket
job() {
	sim_admin pipeline "{\"project\": 101, \"ref\": \"main\", \"jobs\": [{\"id\": $1,
		\"name\": \"fleet-$1\", \"archive\": {\"members\": [{\"path\": \"big.bin\",
		\"random\": $MEMBER, \"seed\": $2, \"compress\": \"stored\"}]}}]}" || die "no job $1"
}
member_sum() { # the sha256 of member $2 (big.bin) in the simulator's archive of job $1
	"$PYTHON" -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])).hexdigest())' \
		"$T/sim-state/job-$1.zip" "${2:-big.bin}"
}
read_sum() { # the sha256 of what a read of $1 returns, bounded
	timeout 60 sha256sum <"$1" | cut -c1-64
}
served() { # bytes radosgw sent of job $1's archive since $2
	rgwlog bytes --from "$2" --method GET --path "^/fleet-$$/job-$1\.zip$"
}
served_at_least() { # job from bytes: radosgw's log has caught up with what the reads received
	[ "$(served "$1" "$2")" -ge "$3" ]
}
metric() { # FILE NAME: the value of the sample NAME (labels included) of a metrics file
	awk -v n="$2" '$1 == n { print $2 }' "$1"
}
read_by() { # FILE WHO: bytes a mount read from cache blocks fetched by WHO (its metrics FILE)
	metric "$1" "artifactfs_cache_read_bytes_total{fetched_by=\"$2\"}"
}
ratio() { # bytes archive-bytes
	awk -v b="$1" -v a="$2" 'BEGIN { printf "%.2f", b / a }'
}

mkdir -p "$CEPHFS_MNT_A/cache" || die "cannot make the cache folder on CephFS"
mount_fs "$T/mnt-a" --cache-dir "$CEPHFS_MNT_A/cache"
mount_fs "$T/mnt-b" --cache-dir "$CEPHFS_MNT_B/cache"
jobs_a="$T/mnt-a/acme%2Fplatform%2Fapp/-/jobs"
jobs_b="$T/mnt-b/acme%2Fplatform%2Fapp/-/jobs"

# one machine after the other
job 1960 1
size=$(stat -c %s "$T/sim-state/job-1960.zip")
want=$(member_sum 1960)
from=$(rgwlog_mark)
check_eq "machine A reads the member exactly" "$want" "$(read_sum "$jobs_a/1960/big.bin")"
wait_for 20 served_at_least 1960 "$from" "$MEMBER" || not_ok "radosgw served machine A's read"
check_eq "then machine B reads it exactly" "$want" "$(read_sum "$jobs_b/1960/big.bin")"
bytes=$(served 1960 "$from")
echo "# info: one after the other, radosgw sent $bytes bytes of a $size-byte archive ($(ratio "$bytes" "$size") x)"
check "radosgw served the archive about once (< 1.2 x) for both machines" \
	awk -v b="$bytes" -v a="$size" 'BEGIN { exit !(b < 1.2 * a) }'

# both at once
job 1961 2
size=$(stat -c %s "$T/sim-state/job-1961.zip")
want=$(member_sum 1961)
from=$(rgwlog_mark)
read_sum "$jobs_a/1961/big.bin" >"$T/sum-a" &
pa=$!
read_sum "$jobs_b/1961/big.bin" >"$T/sum-b" &
pb=$!
wait "$pa" "$pb"
check_eq "machines A and B at once: A reads exactly" "$want" "$(cat "$T/sum-a")"
check_eq "machines A and B at once: B reads exactly" "$want" "$(cat "$T/sum-b")"
wait_for 20 served_at_least 1961 "$from" "$MEMBER"
bytes=$(served 1961 "$from")
echo "# info: both at once, radosgw sent $bytes bytes of a $size-byte archive ($(ratio "$bytes" "$size") x)"
check "radosgw served the archive about once (< 1.2 x) for both machines at once" \
	awk -v b="$bytes" -v a="$size" 'BEGIN { exit !(b < 1.2 * a) }'

# a byte flipped by machine B in the file machine A wrote (and checked) is never served by A
file=$(ls -S "$CEPHFS_MNT_B"/cache/v2/*.afs | head -n1) # the largest: one of the 32 MiB archives
whose=1960
case $file in *1961*) whose=1961 ;; esac
at=$(($(stat -c %s "$file") - $(stat -c %s "$T/sim-state/job-$whose.zip") + (4 << 20)))
"$PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); at = int(sys.argv[2])
b = os.pread(fd, 1, at); os.pwrite(fd, bytes([b[0] ^ 0xff]), at); os.close(fd)' "$file" "$at"
# A's kernel keeps the member's pages: drop them, so that the read reaches A's cache
"$PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' \
	"$jobs_a/$whose/big.bin"
check_eq "machine A reads exactly after machine B flipped a byte of the cache" \
	"$(member_sum $whose)" "$(read_sum "$jobs_a/$whose/big.bin")"
check "machine A found the flipped byte" grep -q "failed their checksum" "$T/daemon.log"

# two machines with a small --cache-size reading more than it: after each read the folder
# holds at most that much (st_blocks: CephFS counts a file's whole length)
LIMIT=$((24 << 20))
MEMBER=$((8 << 20))
mount_fs "$T/mnt-a2" --cache-dir "$CEPHFS_MNT_A/small" --cache-size 24M
mount_fs "$T/mnt-b2" --cache-dir "$CEPHFS_MNT_B/small" --cache-size 24M
peak=0
for i in 0 1 2 3 4; do
	job $((1970 + i)) $((10 + i))
	m=$T/mnt-a2
	[ $((i % 2)) -eq 1 ] && m=$T/mnt-b2
	check_eq "small cache: read $i exact" "$(member_sum $((1970 + i)))" \
		"$(read_sum "$m/acme%2Fplatform%2Fapp/-/jobs/$((1970 + i))/big.bin")"
	used=$(find "$CEPHFS_MNT_A/small" -type f -printf '%b\n' | awk '{ s += $1 * 512 } END { print s + 0 }')
	[ "$used" -gt "$peak" ] && peak=$used
done
echo "# info: small cache: the folder peaked at $peak bytes (limit $LIMIT)"
check "the shared folder never held more than --cache-size" [ "$peak" -le "$LIMIT" ]
unmount_fs "$T/mnt-a2"
unmount_fs "$T/mnt-b2"

# two tokens, one folder: a Developer's mount on machine A caches a job whose artifacts only
# Developers may download (`artifacts:access: developer`); on machine B a Reporter's mount,
# which sees the job, is refused its member although its bytes are in the folder, and a second
# Developer's mount reads them from the folder, fetching nothing: its metrics count them as
# fetched by another mount, where machine A's count them as its own
sim_admin pipeline "{\"project\": 101, \"ref\": \"hidden\", \"jobs\": [{\"id\": 1990,
	\"name\": \"fleet-dev\", \"artifacts_access\": \"developer\", \"archive\": {\"members\":
	[{\"path\": \"dev.bin\", \"random\": $((1 << 20)), \"seed\": 30,
	\"compress\": \"stored\"}]}}]}" || die "no job 1990"
prom=$T/prom
mkdir -m 700 "$prom"
dev=$(fixture_token developer)
GITLAB_TOKEN=$dev mount_fs "$T/dev-a" --cache-dir "$CEPHFS_MNT_A/cache" \
	--metrics-file "$prom/dev-a.prom"
GITLAB_TOKEN=$(fixture_token reporter) mount_fs "$T/rep-b" --cache-dir "$CEPHFS_MNT_B/cache" \
	--metrics-file "$prom/rep-b.prom"
GITLAB_TOKEN=$dev mount_fs "$T/dev-b" --cache-dir "$CEPHFS_MNT_B/cache" \
	--metrics-file "$prom/dev-b.prom"
member=acme%2Fplatform%2Fapp/-/jobs/1990/dev.bin
check_eq "a Developer on machine A reads the member exactly" "$(member_sum 1990 dev.bin)" \
	"$(read_sum "$T/dev-a/$member")"
from=$(rgwlog_mark)
sim_admin log/reset
check_eq "a Reporter on machine B is refused it, though it is in the shared folder" EACCES \
	"$(sys read "$T/rep-b/$member")"
check_eq "a Developer on machine B reads it exactly" "$(member_sum 1990 dev.bin)" \
	"$(read_sum "$T/dev-b/$member")"
unmount_fs "$T/rep-b" # the metrics files are written a last time
unmount_fs "$T/dev-b"
unmount_fs "$T/dev-a"
check "the Reporter's mount asked an artifact endpoint, and GitLab said 403" \
	bash -c "[ \"\$(simlog count --path '/jobs/1990/artifacts' --status 403)\" -gt 0 ]"
rep_read=$(($(read_by "$prom/rep-b.prom" this_mount) +
	$(read_by "$prom/rep-b.prom" another_mount)))
echo "# info: the Reporter's mount read $rep_read bytes from the folder (refused: the index alone)"
check "the Reporter's mount read less than the member from the folder" \
	[ "$rep_read" -lt $((1 << 20)) ]
echo "# info: machine B's Developer: $(grep -E '^artifactfs_(cache_(read|miss)|archive|storage)_bytes' \
	"$prom/dev-b.prom" | tr '\n' ' ')"
check_eq "machine B's Developer fetched nothing into the cache" 0-0 \
	"$(metric "$prom/dev-b.prom" artifactfs_cache_fetches_total)-$(metric "$prom/dev-b.prom" \
		artifactfs_cache_miss_bytes_total)"
check "its metrics count the member's bytes as fetched by another mount" \
	[ "$(read_by "$prom/dev-b.prom" another_mount)" -ge $((1 << 20)) ]
check_eq "and none as its own" 0 "$(read_by "$prom/dev-b.prom" this_mount)"
check_eq "machine A's Developer read none from another mount" 0 \
	"$(read_by "$prom/dev-a.prom" another_mount)"
check "object storage sent at most the authorization probe's byte of the archive" \
	[ "$(served 1990 "$from")" -le 1 ]
check_eq "GitLab itself sent no byte of the archive (200 or 206)" 0-0 \
	"$(simlog bytes --path '/jobs/1990/artifacts' --status 200)-$(simlog bytes \
		--path '/jobs/1990/artifacts' --status 206)"

# machine A killed mid-read, daemon and ceph-fuse client: once the MDS evicted the client (and
# with it its locks), machine B reads the member exactly
MEMBER=$((32 << 20))
job 1980 20
head -c $((6 << 20)) "$jobs_a/1980/big.bin" >/dev/null
client=$(ceph --admin-daemon "$CEPH_DIR"/run/client.fsa.*.asok status | "$PYTHON" -c \
	'import json, sys; print(json.load(sys.stdin)["id"])')
kill -9 "${PID_OF[$T/mnt-a]}"
kill -9 "$(cat "$CEPH_DIR/run/fuse.a.pid")"
umount -l "$CEPHFS_MNT_A"
fusermount3 -uz "$T/mnt-a"
ceph tell mds.a client evict id="$client" >/dev/null 2>&1 || not_ok "the MDS evicted client $client"
check_eq "machine A killed mid-read: machine B reads exactly" "$(member_sum 1980)" \
	"$(read_sum "$jobs_b/1980/big.bin")"

check_eq "radosgw never received the GitLab token" 0 "$(rgwlog header PRIVATE-TOKEN)"
check "the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
unmount_fs "$T/mnt-b"
stop_sim
stop_ceph
finish
