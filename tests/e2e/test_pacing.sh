#!/usr/bin/env bash
# Pacing (issue 9 "Rate limits"): with archives in object storage every Range read used to cost an
# API request (the 302) plus the storage request. Signed storage URLs are reused while valid, so
# reading a 16 MiB member costs O(1) API archive requests, not one per block fetched; a signed
# URL that storage refuses (expired) sends the read back to the API and the bytes stay exact.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
api='^127\.0\.0\.1:'
store='^127\.0\.0\.2:'

start_sim --storage redirect
# a job whose archive holds a 16 MiB and a 4 MiB member, stored (random bytes do not deflate)
sim_admin pipeline '{"project": 101, "ref": "pacing", "jobs": [{"id": 4242, "name": "big",
  "archive": {"members": [
    {"path": "big16.bin", "random": 16777216, "seed": 5, "compress": "stored"},
    {"path": "next4.bin", "random": 4194304, "seed": 6, "compress": "stored"}]}}]}' ||
	die "cannot add the job"
mkdir -p "$T/ref" && (cd "$T/ref" && unzip -q "$T/sim-state/job-4242.zip") || die "no reference"
sim_admin log/reset
mount_fs "$mnt" --cache-dir "$T/cache" -d
job="$mnt/$app/-/jobs/4242"

# 16 scattered reads (each its own block fetch: a seek resets read-ahead), then all of it
scattered() {
	"$PYTHON" - "$1" "$2" <<'PY'
import os, sys
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
for i in range(16):
    off = i * (1 << 20) + 12345 * (i + 1)
    if os.pread(a, 4096, off) != os.pread(b, 4096, off):
        sys.exit("bytes differ at %d" % off)
PY
}
check "16 scattered reads of a 16 MiB member are exact" scattered "$job/big16.bin" "$T/ref/big16.bin"
check "and so is all of it" cmp "$job/big16.bin" "$T/ref/big16.bin"
api_reads=$(simlog count --host "$api" --path '/jobs/4242/artifacts')
store_reads=$(simlog count --host "$store" --path '^/store/')
check "the member took many storage reads ($store_reads)" test "$store_reads" -ge 16
check "but O(1) API archive requests ($api_reads for $store_reads storage reads)" \
	test "$api_reads" -le 2
check_eq "storage never received a credential" 0 "$(simlog count --host "$store" --auth)"

# storage refuses the remembered URL as expired: the read goes back to the API once, at once
sim_admin faults "nth=1:expired,paths=^/store"
check "after the remembered URL is refused, the next member still reads exactly" \
	cmp "$job/next4.bin" "$T/ref/next4.bin"
check_eq "storage refused once" 1 "$(simlog count --host "$store" --status 403)"
check_eq "and the API was asked once more for a fresh URL" $((api_reads + 1)) \
	"$(simlog count --host "$api" --path '/jobs/4242/artifacts')"

# a signed URL is a credential for its life: never in the log, not even at -d
check "the signed URL's query is never logged" bash -c "! grep -E 'sig=|expires=' '$T/daemon.log'"
check "the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
unmount_fs "$mnt"
stop_sim

# URLs that expire within 10 s of being signed are never reused: the expiry is read from the URL
start_sim --storage redirect --url-lifetime 10
sim_admin pipeline '{"project": 101, "ref": "pacing", "jobs": [{"id": 4242, "name": "big",
  "archive": {"members": [{"path": "big16.bin", "random": 16777216, "seed": 5, "compress": "stored"}]}}]}' ||
	die "cannot add the job"
sim_admin log/reset
mount_fs "$mnt" --cache-dir "$T/cache-short"
check "with URLs about to expire, scattered reads are exact" scattered "$job/big16.bin" "$T/ref/big16.bin"
store_reads=$(simlog count --host "$store" --path '^/store/')
check "each of the $store_reads storage reads asked the API first" test "$store_reads" -ge 16 -a \
	"$(simlog count --host "$api" --path '/jobs/4242/artifacts')" -eq "$store_reads"
unmount_fs "$mnt"
finish
