#!/usr/bin/env bash
# keep and delete through xattrs and rm, with and without allow_delete.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"

# Without allow_delete the mount is read-only (findmnt shows ro): the kernel refuses every
# xattr write and delete with EROFS before the daemon sees it, keep included.
mount_fs "$mnt"
build="$app/main/build"
check_eq "keep without allow_delete is EROFS (the mount is read-only)" EROFS \
	"$(sys setxattr "$build" user.gitlab.keep=1)"
check_eq "rm <job>.zip without allow_delete is EROFS" EROFS "$(sys unlink "$build.zip")"
check_eq "the project-wide delete without allow_delete is EROFS" EROFS \
	"$(sys setxattr "$app" user.gitlab.delete_artifacts=1)"
check_eq "no keep reached the server" 0 "$(simlog count --method POST)"
check_eq "nothing was deleted on the server" 0 "$(simlog count --method DELETE)"
unmount_fs "$mnt"

mount_fs "$mnt" --allow-delete
check "the job's artifacts have an expiry before keep" \
	bash -c "[ -n \"\$(getfattr --only-values -n user.gitlab.artifacts.expire_at '$build')\" ]"
check "setfattr user.gitlab.keep=1 succeeds" setfattr -n user.gitlab.keep -v 1 "$build"
check_eq "keep was one POST" 1 "$(simlog count --method POST --path '/artifacts/keep$')"
check_eq "afterwards expire_at reads empty" "" \
	"$(getfattr --only-values -n user.gitlab.artifacts.expire_at "$build")"
check_eq "keep with another value is EINVAL" EINVAL "$(sys setxattr "$build" user.gitlab.keep=yes)"
check_eq "other xattrs cannot be set (EROFS)" EROFS "$(sys setxattr "$build" user.other=1)"
victim="$app/main/test 1%2F3"
job_id=$(getfattr --only-values -n user.gitlab.job.id "$victim")
sim_admin conflict on
check_eq "a 409 from GitLab is EBUSY" EBUSY "$(sys unlink "$victim.zip")"
sim_admin conflict off
check "rm <job>.zip with allow_delete succeeds" rm "$victim.zip"
check_eq "exactly that job's artifacts were deleted" \
	"DELETE /api/v4/projects/acme%2Fplatform%2Fapp/jobs/$job_id/artifacts" \
	"$(simlog show --method DELETE --status 204 | awk '{print $1, $3}')"
check "the job and its .zip are gone from the listing" \
	bash -c "! ls '$app/main' | grep -qF 'test 1%2F3'"
check_eq "the job folder is gone" ENOENT "$(sys stat "$app/-/jobs/$job_id.zip")"
check "the project-wide delete sends DELETE /projects/:id/artifacts" \
	bash -c "setfattr -n user.gitlab.delete_artifacts -v 1 '$app' && [ \"\$(simlog count --method DELETE --path '/projects/[^/]+/artifacts$' --status 202)\" = 1 ]"
unmount_fs "$mnt"
finish
