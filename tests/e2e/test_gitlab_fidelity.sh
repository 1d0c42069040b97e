#!/usr/bin/env bash
# GitLab issue 9's numbered problems, each as GitLab's source says the server behaves (the
# simulator follows it; see tests/sim/README.md): a job token on a private project, failed
# allow_failure jobs and report-only shadowing under a ref, a newer dangling pipeline, merge
# request refs, server-side deletion within the TTL, and an open file pinned to one archive.
source "$(dirname "$0")/lib.sh"

start_sim --etag sha256
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"
member() { # member JOB_ID PATH: the bytes of PATH in the fixture's archive of JOB_ID
	"$PYTHON" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
		"$T/sim-state/job-$1.zip" "$2"
}
member 1981 README >"$T/readme-104" && member 1107 e2e/report.txt >"$T/e2e-101" &&
	member 1951 README >"$T/readme-mr7" || die "cannot read the fixture's archives"

# 1. A job token on a private project (104): GitLab answers GET /projects/104, its branches and
# tags with 404 and /jobs with 401 (the token is ignored there); the by-ref endpoints take it.
(
	export CI_JOB_TOKEN=$(fixture_token job-private)
	unset GITLAB_TOKEN
	mount_fs "$mnt" --cache-dir "$T/cache-job"
	check "job token: its own private project's ref reads (cat 104/main/build/README)" \
		cmp "$mnt/104/main/build/README" "$T/readme-104"
	check "job token: by path too" cmp "$mnt/acme%2Finternal-app/main/build/README" "$T/readme-104"
	check "job token: a failed allow_failure job under main" test -f "$mnt/104/main/e2e/README"
	check "job token: a merge request ref" \
		test -f "$mnt/104/refs%2Fmerge-requests%2F3%2Fhead/build/README"
	check "job token: the root lists the token's project" bash -c "ls '$mnt' | grep -qx 104"
	unmount_fs "$mnt"
	echo "$PASS $FAIL" >"$T/counts"
)
read -r PASS FAIL <"$T/counts"

export GITLAB_TOKEN=$(fixture_token maintainer)
mount_fs "$mnt" --cache-dir "$T/cache-pat" --ttl 2
# 2. No job-status filter; report-only jobs shadow.
check "a failed allow_failure job with artifacts is under main/" cmp "$app/main/e2e/e2e/report.txt" "$T/e2e-101"
check_eq "a report-only job shadows the child's archive of that name (by-ref says 404)" ENOENT \
	"$(sys stat "$app/main/junit-only/README")"
# 3. A newer security_orchestration_policy pipeline on main does not replace main's jobs.
check_eq "main/build is still pipeline 510's build" 1101 \
	"$(getfattr --only-values -n user.gitlab.job.id "$app/main/build" 2>/dev/null)"
check "the scan-policy pipeline's job is not under main/" bash -c "! ls '$app/main' | grep -qx secret-detection"
# 4. Merge request refs, checked in a few calls, never by listing every branch.
sim_admin log/reset
check "a merge request ref reads" cmp "$app/refs%2Fmerge-requests%2F7%2Fhead/build/README" "$T/readme-mr7"
check_eq "looking it up listed no branches" 0 "$(simlog count --path '/repository/branches([?]|$)')"
check_eq "nor tags" 0 "$(simlog count --path '/repository/tags([?]|$)')"
# 7. Deleted artifacts disappear within the TTL.
report="$app/-/jobs/1102/junit/report.xml"
check "a job's file reads before deletion" grep -q testsuite "$report"
sim_admin delete-artifacts '{"job": 1102}'
check "after a server-side deletion the job's files are gone within the TTL" \
	wait_for 10 bash -c "[[ \"\$(sys read '$report')\" != OK* ]]"
unmount_fs "$mnt"

# Issue 12 item 3: an open file stays on one archive. Reached by job id (a personal token), it
# reads its own job's bytes to the end after the ref moved; reached through the by-ref endpoint
# (a job token), its reads are pinned to the first answer (If-Range) and fail with EIO once the
# ref names another archive, never mixing the two. A new open sees the new archive either way.
big() { # big PROJECT SEED: a new pipeline on main whose build holds an 8 MiB random big.bin
	sim_admin pipeline "{\"project\": $1, \"ref\": \"main\", \"jobs\": [{\"name\": \"build\",
		\"archive\": {\"members\": [{\"path\": \"big.bin\", \"random\": 8388608, \"seed\": $2,
		\"compress\": \"stored\"}]}}]}"
}
# pinned FILE PROJECT SEED: opens FILE, reads 4 bytes, moves main to a new archive, reads FILE
# on through the open descriptor: "old" (its own bytes to the end), "EIO", or "MIXED"; then
# "new" or "old" for a new open.
pinned() {
	"$PYTHON" - "$@" "$URL" <<'PY'
import hashlib, json, os, sys, time, urllib.request
path, project, seed, url = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
# the old bytes straight from the server, so the mount has read nothing but 4 bytes of them
auth = ({"JOB-TOKEN": os.environ["CI_JOB_TOKEN"]} if os.environ.get("CI_JOB_TOKEN")
        else {"PRIVATE-TOKEN": os.environ["GITLAB_TOKEN"]})
before = urllib.request.urlopen(urllib.request.Request(
    url + "/api/v4/projects/%s/jobs/artifacts/main/raw/big.bin?job=build" % project,
    headers=auth), timeout=10).read()
fd = os.open(path, os.O_RDONLY)
os.pread(fd, 4, 0)
spec = {"project": int(project), "ref": "main", "jobs": [{"name": "build", "archive": {"members": [
    {"path": "big.bin", "random": 8388608, "seed": int(seed), "compress": "stored"}]}}]}
urllib.request.urlopen(urllib.request.Request(url + "/-/sim/pipeline", method="POST",
                       data=json.dumps(spec).encode()), timeout=10).read()
got, verdict = b"", None
try:
    while len(got) < len(before):
        chunk = os.pread(fd, 1 << 16, len(got))
        if not chunk:
            break
        got += chunk
    verdict = "old" if got == before else "MIXED"
except OSError as e:
    verdict = "EIO" if e.errno == 5 else "errno %d" % e.errno
os.close(fd)
def content():
    try:
        return open(path, "rb").read()
    except OSError: # within the TTL a new open still meets the pinned job: EIO
        return None
deadline = time.monotonic() + 20
while time.monotonic() < deadline and content() in (None, before):
    time.sleep(0.2)
now = content()
print(verdict, "old" if now == before else "new" if now else "EIO")
PY
}
big 101 1
mount_fs "$mnt" --cache-dir "$T/cache-pin" --ttl 1
check_eq "by job id: an open file reads its own job to the end; a new open sees the new" \
	"old new" "$(pinned "$app/main/build/big.bin" 101 2)"
unmount_fs "$mnt"
(
	export CI_JOB_TOKEN=$(fixture_token job-private)
	unset GITLAB_TOKEN
	big 104 3
	mount_fs "$mnt" --cache-dir "$T/cache-pin-job" --ttl 1
	check_eq "by ref (job token): reads pinned to one archive fail when it moves; a new open sees the new" \
		"EIO new" "$(pinned "$mnt/104/main/build/big.bin" 104 4)"
	unmount_fs "$mnt"
	echo "$PASS $FAIL" >"$T/counts"
)
read -r PASS FAIL <"$T/counts"
finish
