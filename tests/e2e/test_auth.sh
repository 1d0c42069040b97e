#!/usr/bin/env bash
# Credentials as a CI job and a stranger have them: a job token looks up what it cannot list;
# anonymous access reads public projects only; tokens never travel to another origin.
source "$(dirname "$0")/lib.sh"

start_sim
mnt=$T/mnt

# Inside a CI job: only CI_SERVER_URL and CI_JOB_TOKEN, no URL argument.
job_token=$(fixture_token job)
mkdir -p "$mnt"
# --allow-delete: keep below must reach the server (the mount is read-only without it)
CI_SERVER_URL=$URL CI_JOB_TOKEN=$job_token "$ARTIFACTFS_BIN" "$mnt" -f --cache-dir "$T/cache" \
	--allow-delete 2>>"$T/daemon.log" &
LAST_PID=$!
PID_OF[$mnt]=$LAST_PID
DAEMON_PIDS+=("$LAST_PID")
MOUNTS+=("$mnt")
wait_for 30 mountpoint -q "$mnt" || die "artifactfs did not mount with a job token"

build="$mnt/101/main/build"
check "a job token reads a job looked up by project, ref and name" \
	bash -c "ls '$build' | grep -qx bin"
check "its files have the right bytes" bash -c "'$build/bin/hello' | grep -q ."
# GitLab ignores a job token on /projects (not job_token_allowed): the listing is anonymous,
# so no private project may show (the catalog is to list the token's own project from GET /job)
check "the root lists no private project with a job token" \
	bash -c "out=\$('$PYTHON' '$E2E_DIR/sys.py' listdir '$mnt'); [[ \$out == OK* && \$out != *secret* ]]"
check "the job token went only as JOB-TOKEN" \
	bash -c "[ \"\$(simlog count --auth)\" -gt 0 ] && simlog show --auth | awk '{print \$NF}' | sort -u | grep -qx JOB-TOKEN"
check "a job in another allowed project is readable too" bash -c "ls '$mnt/102/main/build' >/dev/null"
check_eq "keep is refused for a job token (EACCES)" EACCES \
	"$(sys setxattr "$build" user.gitlab.keep=1)"
# A job token dies with its job (issue 18): GitLab answers 401 from then on, and the failed
# operation says so in one error line naming its path, the call and the status, never the token.
sim_admin job-status '{"job": 1301, "status": "success"}'
check_eq "once its job ended, the token's lookups are EACCES" EACCES \
	"$(sys stat "$mnt/101/v1.0/build")"
check "one error line names the path, the call and the 401" \
	grep -q "error: /101/v1.0/build: .*GET /api/v4/projects/101/jobs/artifacts/v1.0/download.*: HTTP 401" \
	"$T/daemon.log"
check "and never the token" bash -c "! grep -q -- '$job_token' '$T/daemon.log'"
unmount_fs "$mnt"

# Anonymous: public projects read, private ones do not exist.
mount_fs "$mnt" --cache-dir "$T/cache-anon"
check "anonymous access reads a public project" \
	bash -c "ls '$mnt/acme%2Fplatform%2Fapp/main/build' | grep -qx bin"
check_eq "a private project is ENOENT anonymously" ENOENT "$(sys stat "$mnt/acme%2Fsecret")"
check_eq "and by id as well" ENOENT "$(sys stat "$mnt/102")"
unmount_fs "$mnt"

# Artifacts hidden by `artifacts:access: developer` (issue 18): a reporter gets 403, EACCES, and
# one error line naming the path, the call and the 403.
sim_admin pipeline '{"project": 101, "ref": "hidden", "jobs": [{"id": 1970, "name": "build",
	"artifacts_access": "developer", "archive": {"members": [{"path": "a.txt", "text": "x"}]}}]}'
GITLAB_TOKEN=$(fixture_token reporter) mount_fs "$mnt" --cache-dir "$T/cache-reporter"
check_eq "a reporter may not read artifacts hidden from below developer" EACCES \
	"$(sys listdir "$mnt/acme%2Fplatform%2Fapp/hidden/build")"
check "one error line names the path, the call and the 403" \
	grep -q "error: /acme%2Fplatform%2Fapp/hidden/build: .*GET /api/v4/projects/.*/jobs/1970/artifacts.*: HTTP 403" \
	"$T/daemon.log"
unmount_fs "$mnt"

# A member of the private project sees it.
GITLAB_TOKEN=$(fixture_token maintainer) mount_fs "$mnt" --cache-dir "$T/cache-member"
check "a member reads the private project" bash -c "ls '$mnt/acme%2Fsecret/main' | grep -q ."
unmount_fs "$mnt"
finish
