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

# Most GitLab servers send one constant weak ETag on every download (issue 18): it names no
# archive. A file opened under a ref (a job token reads a private project by ref) before the
# ref moved to an archive of the same size but another date reads its own archive's bytes or
# fails with EIO and a log line, never the new archive's bytes. One stored 2 MiB member; only its tail is fetched
# before the move (the probe), the read after it is 1 MiB in.
unmount_fs "$mnt"
stop_sim
start_sim --etag weak-constant
weak() { # ID SEED MTIME
	sim_admin pipeline "{\"project\": 102, \"ref\": \"main\", \"jobs\": [{\"id\": $1, \"name\": \"build\",
		\"archive\": {\"mtime\": $3, \"members\": [{\"path\": \"w.bin\", \"random\": 2097152,
		\"seed\": $2, \"compress\": \"stored\"}]}}]}"
}
weak 1960 3 1790000000
unset GITLAB_TOKEN
wmnt=$T/mnt-weak
CI_JOB_TOKEN=$(fixture_token job) mount_fs "$wmnt" --cache-dir "$T/cache-weak" --ttl 1
exec 5<"$wmnt/102/main/build/w.bin"
weak 1961 4 1790000100 # same size, other bytes, a later date, the same weak tag
got=$("$PYTHON" -c 'import errno, os, sys, zipfile
def part(job):
    return zipfile.ZipFile("%s/job-%d.zip" % (sys.argv[1], job)).read("w.bin")[1 << 20:(1 << 20) + 65536]
try:
    data = os.pread(5, 65536, 1 << 20)
except OSError as e:
    print(errno.errorcode[e.errno])
    sys.exit()
print("old" if data == part(1960) else "new" if data == part(1961) else "other")' "$T/sim-state")
check "a file opened before the ref moved reads its own bytes or fails, got $got" \
	bash -c "[ '$got' = old ] || [ '$got' = EIO ]"
if [ "$got" = EIO ]; then
	check "and the log says why" grep -q "main/build: the ref now names another archive" \
		"$T/daemon.log"
fi
exec 5<&-
new_sum=$("$PYTHON" -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("w.bin")).hexdigest())' \
	"$T/sim-state/job-1961.zip")
reads_new() { [ "$(sha256sum <"$wmnt/102/main/build/w.bin" | cut -c1-64)" = "$new_sum" ]; }
check "a new open reads the new archive (once --ttl has passed)" wait_for 30 reads_new
finish
