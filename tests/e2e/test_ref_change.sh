#!/usr/bin/env bash
# A ref path whose job changes never serves the previous job's pages (issue 12, item 4): the
# kernel keeps a file's pages across opens only under -/jobs/<id>, where content cannot change,
# and two opens of one ref path on different jobs never share pages.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"

# pipeline ID TEXT: a new successful pipeline on main whose build has v.txt holding TEXT.
pipeline() {
	sim_admin pipeline "{\"project\": 101, \"ref\": \"main\", \"jobs\": [{\"id\": $1, \"name\": \"build\",
		\"archive\": {\"members\": [{\"path\": \"v.txt\", \"text\": \"$2\\n\"}]}}]}"
}
job_is() {
	[ "$(getfattr --only-values -n user.gitlab.job.id "$app/main/build")" = "$1" ]
}

pipeline 1950 AAAA
mount_fs "$mnt" --ttl 1
wait_for 30 job_is 1950 || die "main/build did not become job 1950"
check_eq "the first job's bytes" AAAA "$(cat "$app/main/build/v.txt")"
exec 3<"$app/main/build/v.txt" # the kernel keeps the inode and its pages while it is open
check_eq "read through an open file" AAAA "$(cat <&3)"

pipeline 1951 BBBB # same size, other bytes
wait_for 30 job_is 1951 || die "main/build did not become job 1951"
check_eq "after the ref moved, a new open reads the new job's bytes" BBBB \
	"$(cat "$app/main/build/v.txt")"
check_eq "and the zip is the new job's" "$(cat "$app/-/jobs/1951.zip" | md5sum)" \
	"$(cat "$app/main/build.zip" | md5sum)"
exec 3<&-
check_eq "content under a job id is still the old job's" AAAA "$(cat "$app/-/jobs/1950/v.txt")"

# A file open on one job while another open of the same path reads the next job: the kernel's
# pages belong to the path, not to the open, so neither may fill them for the other (both bypass
# them). Stored members of 256 KiB, one page read before the move.
big() { # ID SEED
	sim_admin pipeline "{\"project\": 101, \"ref\": \"main\", \"jobs\": [{\"id\": $1, \"name\": \"build\",
		\"archive\": {\"members\": [{\"path\": \"b.bin\", \"random\": 262144, \"seed\": $2,
		\"compress\": \"stored\"}]}}]}"
}
member_sum() {
	"$PYTHON" -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("b.bin")).hexdigest())' "$1"
}
big 1952 1
wait_for 30 job_is 1952 || die "main/build did not become job 1952"
exec 4<"$app/main/build/b.bin"
head -c 4096 <&4 >/dev/null
big 1953 2
wait_for 30 job_is 1953 || die "main/build did not become job 1953"
check_eq "a new open reads the new job" "$(member_sum "$T/sim-state/job-1953.zip")" \
	"$(sha256sum <"$app/main/build/b.bin" | cut -c1-64)"
check_eq "the file opened before reads its own job whole, not the new job's pages" \
	"$(member_sum "$T/sim-state/job-1952.zip")" \
	"$("$PYTHON" -c 'import hashlib, os
os.lseek(4, 0, os.SEEK_SET)
data = b""
while True:
    k = os.read(4, 1 << 20)
    if not k:
        break
    data += k
print(hashlib.sha256(data).hexdigest())')"
exec 4<&-
finish
