#!/usr/bin/env bash
# Two mounts of two users sharing one cache folder (issue 20): bytes one token cached are served
# to another only once GitLab said, within --ttl, that this token may download them.
source "$(dirname "$0")/lib.sh"

start_sim
dev=$T/dev
rep=$T/rep
shared=$T/shared-cache

# A Developer-only job (`artifacts:access: developer`): its record is visible to a Reporter
# (200), its artifacts are not (403).
sim_admin pipeline '{"project": 101, "ref": "hidden", "jobs": [{"id": 1971, "name": "build",
	"artifacts_access": "developer", "archive": {"members": [{"path": "a.txt", "text": "secret"}]}}]}'
GITLAB_TOKEN=$(fixture_token developer) mount_fs "$dev" --cache-dir "$shared" --ttl 0
GITLAB_TOKEN=$(fixture_token reporter) mount_fs "$rep" --cache-dir "$shared" --ttl 0

job=acme%2Fplatform%2Fapp/-/jobs/1971
check_eq "the developer reads the member (now in the shared cache)" "OK 6" \
	"$(sys read "$dev/$job/a.txt")"
sim_admin log/reset
check_eq "the reporter's mount does not serve it from the shared cache" EACCES \
	"$(sys read "$rep/$job/a.txt")"
check_eq "nor the archive" EACCES "$(sys read "$rep/$job.zip")"
check "the reporter's mount asked an artifact endpoint (403)" \
	bash -c "[ \"\$(simlog count --path '/jobs/1971/artifacts' --status 403)\" -gt 0 ]"
check "one error line names the path and the 403" \
	grep -q "error: /$job/a.txt: .*jobs/1971/artifacts.*: HTTP 403" "$T/daemon.log"

# Access revoked: with --ttl 0 the next open asks again, and the developer is refused as well.
sim_admin job-access '{"job": 1971, "access": "maintainer"}'
check_eq "a token whose access was revoked is no longer served" EACCES \
	"$(sys read "$dev/$job/a.txt")"
sim_admin job-access '{"job": 1971, "access": "developer"}'
check_eq "and is again once it is given back" "OK 6" "$(sys read "$dev/$job/a.txt")"
unmount_fs "$rep"
unmount_fs "$dev"
check "no token in the log" bash -c "! grep -q 'glpat-' '$T/daemon.log'"
finish
