#!/usr/bin/env bash
# A ref path whose job changes never serves the previous job's pages (issue 12, item 4): the
# kernel keeps a file's pages across opens only under -/jobs/<id>, where content cannot change.
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
finish
