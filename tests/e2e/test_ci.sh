#!/usr/bin/env bash
# The README's CI job, run as a GitLab runner would: its script lines as they are (taken from the
# README), with the variables a runner sets (CI_SERVER_URL, CI_JOB_TOKEN, CI_PROJECT_ID, ...),
# against the simulator. It runs in a mount namespace of its own with a tmpfs on /mnt, so that
# the job's `mkdir -p /mnt/...` and its mount touch nothing of this machine.
source "$(dirname "$0")/lib.sh"
ARTIFACTFS_SRC=${ARTIFACTFS_SRC:-$(cd "$E2E_DIR/../.." && pwd)}

start_sim
job_token=$(fixture_token job) # a job of project 101, acme/platform/app
upstream=102                   # acme/secret: private, its allowlist holds 101
mkdir -p "$T/bin" "$T/home" "$T/project"
chmod 700 "$T/home"
ln -s "$ARTIFACTFS_BIN" "$T/bin/artifactfs" # as the image has it on PATH

"$PYTHON" "$E2E_DIR/ci_job.py" "$ARTIFACTFS_SRC/README.md" "UPSTREAM_PROJECT_ID=$upstream" \
	>"$T/job.sh" || die "cannot take the CI job from the README"
check "the README's job has script lines that mount with artifactfs" grep -q '^artifactfs ' "$T/job.sh"

# A job killed midway (a timeout) leaves its daemon in the private namespace: end those too.
kill_job_daemons() {
	local p
	for p in $(pgrep -x artifactfs); do
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "CI_PROJECT_DIR=$T/project" &&
			kill "$p"
	done
	cleanup
}
trap kill_job_daemons EXIT

# runner.sh: what the runner does around the job's script. A failed line leaves a mount behind:
# unmount every artifactfs mount of the namespace on exit, so its daemon exits too.
cat >"$T/runner.sh" <<SH
trap 'rc=\$?; findmnt -rn -t fuse.artifactfs -o TARGET | xargs -r -n1 fusermount3 -u -z || true; exit \$rc' EXIT
mount -t tmpfs -o size=1M,mode=755 none /mnt
cd "\$CI_PROJECT_DIR"
source "$T/job.sh"
SH
env -i PATH="$T/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$T/home" \
	CI=true GITLAB_CI=true CI_SERVER_URL="$URL" CI_API_V4_URL="$URL/api/v4" \
	CI_SERVER_HOST=127.0.0.1 CI_JOB_TOKEN="$job_token" CI_JOB_ID=1301 CI_PROJECT_ID=101 \
	CI_PROJECT_PATH=acme/platform/app CI_PROJECT_DIR="$T/project" CI_COMMIT_REF_NAME=main \
	ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
	timeout 120 unshare --mount --propagation private bash "$T/runner.sh" >"$T/job.out" 2>&1
rc=$?
check_eq "the job's script succeeds" 0 "$rc"
[ "$rc" -eq 0 ] || sed 's/^/    job: /' "$T/job.out" | tail -20

mkdir -p "$T/ref" && (cd "$T/ref" && unzip -q "$T/sim-state/job-1601.zip")
check "it copied the upstream project's build artifacts, exactly" diff -r "$T/ref" "$T/project/upstream-build"
# by ref, or (GitLab 19.2+ lets the token list the pipelines) by the job id the listing names
check "it read project $upstream with the job token, sent only as JOB-TOKEN" \
	bash -c "[ \"\$(simlog count --path '/projects/$upstream/jobs/(artifacts/main/download|1601/artifacts)' --status 206)\" -gt 0 ] &&
		simlog show --auth | awk '{print \$NF}' | sort -u | grep -qx JOB-TOKEN"
check "nothing was mounted outside the job's namespace" bash -c "! grep -q ' /mnt/upstream ' /proc/mounts"

finish
