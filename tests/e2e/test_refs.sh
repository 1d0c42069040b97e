#!/usr/bin/env bash
# Ref resolution as GitLab's by-ref endpoints do it, re-checked after the TTL; the daemon
# unmounts cleanly on SIGTERM and SIGHUP.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"

mount_fs "$mnt" --ttl 0
jobs=$(ls "$app/main")
check "a job only in an older pipeline is not shown" bash -c "! grep -qx legacy <<<'$jobs'"
check "the newest successful pipeline's build is shown, not the failed newer one's" \
	bash -c "[ \"\$(getfattr --only-values -n user.gitlab.job.id '$app/main/build')\" = 1101 ]"
check "the parent's build wins over the child pipeline's" bash -c "[ ! -e '$app/main/build/CHILD' ]"
check "a child pipeline's own job is there" test -d "$app/main/package/dist"
check "a retried job is not the one shown" bash -c "[ ! -e '$app/main/build/OLD' ]"
check "each ref resolves on its own" test -f "$app/feature%2Flogin/build/README"
check "tags are refs too" test -d "$app/v1.0/release"
check_eq "a running pipeline's job is not shown" ENOENT "$(sys stat "$app/main/deploy")"
check "the same job is reachable by id" cmp "$app/main/build/lib/hello.c" "$app/-/jobs/1101/lib/hello.c"

# A new pipeline succeeds: after the TTL (0 here) the ref names its job.
sim_admin pipeline '{"project": 101, "ref": "main", "jobs": [{"id": 1900, "name": "build", "archive": "small"}]}'
check_eq "after the TTL the ref's build is the new pipeline's" 1900 \
	"$(getfattr --only-values -n user.gitlab.job.id "$app/main/build")"
check "and its files are the new archive's" test -f "$app/main/build/README"
check "the old job is still there by id, unchanged" test -f "$app/-/jobs/1101/bin/hello"
check "the new pipeline's job list replaced the old one" bash -c "! ls '$app/main' | grep -qx package"

# (a background job of a script starts with SIGINT ignored, so INT cannot be tested here)
for sig in TERM HUP; do
	pid=${PID_OF[$mnt]}
	# a file still open: its handle is never released by the kernel, the daemon frees it
	exec 3<"$app/-/jobs/1101/my report.txt" || die "cannot open a file"
	kill -s $sig "$pid"
	wait "$pid"
	rc=$?
	exec 3<&-
	check_eq "SIG$sig: the daemon exits 0, a file still open" 0 "$rc"
	check "SIG$sig: and the mount is gone" bash -c "! mountpoint -q '$mnt'"
	[ "$sig" = TERM ] && mount_fs "$mnt"
done
finish
