#!/usr/bin/env bash
# A fleet of runners sharing one cache folder on CephFS (issue 20), on a real throw-away Ceph: two
# mounts of artifactfs, each with --cache-dir in the same CephFS folder but through its own
# ceph-fuse mount (two machines), against the simulator keeping its archives in radosgw (S3).
# One machine after the other reads a 32 MiB member exactly, and radosgw serves its bytes about
# once; both at once read exactly (how often radosgw then served the bytes is printed, not yet
# checked). Fails, never skips, when Ceph cannot start.
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
member_sum() { # the sha256 of big.bin in the simulator's archive of job $1
	"$PYTHON" -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("big.bin")).hexdigest())' \
		"$T/sim-state/job-$1.zip"
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
echo "# info: both at once, radosgw sent $bytes bytes of a $size-byte archive ($(ratio "$bytes" "$size") x; not checked yet)"

check_eq "radosgw never received the GitLab token" 0 "$(rgwlog header PRIVATE-TOKEN)"
check "the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
unmount_fs "$T/mnt-a"
unmount_fs "$T/mnt-b"
stop_sim
stop_ceph
finish
