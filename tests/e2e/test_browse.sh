#!/usr/bin/env bash
# Browsing and reading through a mount with the tools people use: ls, find, cp -r, diff, stat,
# getfattr, running an executable, compiling against artifact headers, make.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
mount_fs "$mnt"
app="$mnt/acme%2Fplatform%2Fapp"
build="$app/main/build"

check "the root lists the token's projects, paths escaped" \
	bash -c "ls '$mnt' | grep -qx 'acme%2Fplatform%2Fapp'"
check "a project lists its branches, tags and -" \
	bash -c "ls '$app' | grep -qx main && ls '$app' | grep -qx 'feature%2Flogin' && ls '$app' | grep -qx v1.0 && ls '$app' | grep -qx -- -"
refjobs=$(ls "$app/main")
check "a ref lists each job with an archive and its .zip" \
	bash -c "grep -qx build <<<'$refjobs' && grep -qx build.zip <<<'$refjobs'"
check "job names are escaped" \
	bash -c "grep -qxF 'test 1%2F3' <<<'$refjobs' && grep -qxF 'build: [linux, amd64]' <<<'$refjobs'"
check "a report-only job is not shown" bash -c "! grep -qx junit-only <<<'$refjobs'"
check "a job of the child pipeline is shown" bash -c "grep -qx package <<<'$refjobs'"

# The archive as GitLab serves it, unzipped by unzip, is the reference.
curl -sf -H "PRIVATE-TOKEN: $GITLAB_TOKEN" -o "$T/ref.zip" \
	"$URL/api/v4/projects/101/jobs/artifacts/main/download?job=build" || die "cannot download the reference archive"
mkdir -p "$T/unzipped"
(cd "$T/unzipped" && unzip -q "$T/ref.zip" 2>/dev/null)
check "cp of <job>.zip gives the download endpoint's bytes" cmp "$build.zip" "$T/ref.zip"
check "cp -r of a job folder, then diff -r against unzip: identical" \
	bash -c "cp -r '$build' '$T/copy' && diff -r '$T/copy' '$T/unzipped'"
modes() { (cd "$1" && find . -type f -printf '%m %s %p\n' | sort); }
check_eq "modes and sizes match unzip's" "$(modes "$T/unzipped")" "$(modes "$build")"
check "find lists every file of the archive" \
	bash -c "[ \"\$(cd '$build' && find . -type f | sort)\" = \"\$(cd '$T/unzipped' && find . -type f | sort)\" ]"
check "an executable runs straight from the mount" bash -c "'$build/bin/hello' | grep -q ."
check "folders above the jobs carry the mount's time, not 1970" \
	bash -c "[ \$(stat -c %Y '$app') -ge \$(( \$(date +%s) - 3600 )) ]"
check "a symlink in the archive is a symlink" bash -c "[ -L '$build/latest' ] && [ \"\$(readlink '$build/latest')\" = bin/hello ]"
check "cc compiles with -I pointing into the mount" \
	cc -I "$build/include" -o "$T/hello-c" "$build/lib/hello.c"
check "the compiled program runs" "$T/hello-c"
cat >"$T/Makefile" <<MK
out.txt: $build/include/hello.h $build/lib/hello.c
	cat \$^ > \$@
MK
check "make uses artifact files as prerequisites" make -s -C "$T" -f "$T/Makefile" out.txt
check "make sees them up to date afterwards" bash -c "make -q -C '$T' -f '$T/Makefile' out.txt"

check_eq "stat gives exact sizes from the first stat" "$(stat -c %s "$T/unzipped/my report.txt")" \
	"$(stat -c %s "$build/my report.txt")"
check "names with spaces and non-ASCII read right" cmp "$build/résumé.txt" "$T/unzipped/résumé.txt"

# Extended attributes.
check "getfattr -d shows the job's metadata" \
	bash -c "getfattr -d '$build' | grep -q 'user.gitlab.job.name=\"build\"'"
job_id=$(getfattr --only-values -n user.gitlab.job.id "$build")
check "the job id is a number" bash -c "[[ '$job_id' =~ ^[0-9]+$ ]]"
check_eq "artifacts.size is the archive's size" "$(stat -c %s "$T/ref.zip")" \
	"$(getfattr --only-values -n user.gitlab.artifacts.size "$build.zip")"
crc=$("$PYTHON" -c 'import sys,zlib; print("%08x" % zlib.crc32(open(sys.argv[1],"rb").read()))' "$T/unzipped/my report.txt")
check_eq "user.gitlab.crc32 is the member's CRC-32" "$crc" \
	"$(getfattr --only-values -n user.gitlab.crc32 "$build/my report.txt")"

# The same job by id.
check "-/jobs/<id>/ holds the same files" diff -r "$app/-/jobs/$job_id" "$T/unzipped"
check "-/jobs/<id>.zip is the same archive" cmp "$app/-/jobs/$job_id.zip" "$T/ref.zip"
sim_admin log/reset
jobs_listed=$(ls -l "$app/-/jobs" | awk '{print $NF}' | tr '\n' ' ')
check "-/jobs/ lists the project's successful jobs with an archive, from any pipeline" \
	bash -c "for j in 1000 1101 1401 1501 1101.zip; do grep -qw \$j <<<'$jobs_listed' || exit 1; done"
check "but not report-only, failed or running ones" \
	bash -c "! grep -qwE '1104|1201|1301' <<<'$jobs_listed'"
check_eq "listing it with ls -l was one request, not one per job" 1 "$(simlog count)"

# Hostile archive: escaping names are left out, the rest is there.
evil="$app/main/evil"
check "members escaping the job folder are not in the tree" \
	bash -c "! find '$evil' -name x | grep -q . ; [ ! -e '$T/x' ]"
for m in ../x /etc/x a/../../x; do
	check "the escaping member $m was logged as left out, as a warning" \
		bash -c "grep -F 'archive member \"$m\" left out' '$T/daemon.log' | grep -Eq '(^| )artifactfs: warning: '"
done
check_eq "a symlink out of the job folder is listed as a symlink" "OK 120777 22" \
	"$(sys stat "$evil/link-out")"
check_eq "but reading it is refused (EACCES)" EACCES "$(sys readlink "$evil/link-out")"
check_eq "and it is never followed to the machine's own file" EACCES "$(sys read "$evil/link-out")"
check "cp -r of the job copies the rest and names the refused link" \
	bash -c "! cp -r '$evil' '$T/evil-copy' 2>'$T/cp.err' && grep -q link-out '$T/cp.err' &&
		cmp '$evil/ok.txt' '$T/evil-copy/ok.txt'"
check "the refused link was logged" grep -q "leads outside its job folder" "$T/daemon.log"

# Errors.
check_eq "a missing member is ENOENT" ENOENT "$(sys stat "$build/no-such-file")"
check_eq "a missing job is ENOENT" ENOENT "$(sys stat "$app/main/no-such-job")"
check_eq "a missing ref is ENOENT" ENOENT "$(sys stat "$app/no-such-ref")"
check_eq "a missing project is ENOENT" ENOENT "$(sys stat "$mnt/no%2Fsuch")"
check_eq "an invalid escape is ENOENT" ENOENT "$(sys stat "$mnt/acme%2platform")"
check_eq "mkdir is EROFS" EROFS "$(sys mkdir "$build/newdir")"
check_eq "creating a file is EROFS" EROFS "$(sys create "$build/new.txt")"
check_eq "opening for writing is EROFS" EROFS "$(sys write "$build/my report.txt")"
check_eq "rename is EROFS" EROFS "$(sys rename "$build/my report.txt" "$build/other.txt")"
check_eq "touch is EROFS" EROFS "$(sys utime "$build/my report.txt")"
check_eq "chmod is EROFS" EROFS "$(sys chmod "$build/my report.txt")"
check_eq "rm of a member is EROFS" EROFS "$(sys unlink "$build/my report.txt")"
check_eq "rm of <job>.zip without allow_delete is EROFS" EROFS "$(sys unlink "$build.zip")"
check_eq "no DELETE reached the server" 0 "$(simlog count --method DELETE)"

# Laziness: nothing so far downloaded a whole archive without Range... except the curl above.
check "listing and reading used Range requests on the archive" \
	bash -c "[ \"\$(simlog count --path '/artifacts(\\?|$)' --status 206)\" -gt 0 ]"

# Secrets.
check "the daemon can leave no core file (the token is in its memory)" \
	grep -Eq "^Max core file size +0 +0 " /proc/$LAST_PID/limits
check "the token is not in the daemon's command line" \
	bash -c "! tr '\\0' ' ' </proc/$LAST_PID/cmdline | grep -qF '$GITLAB_TOKEN'"
# (under a wrapper such as valgrind the program's environment is a copy /proc does not show)
[ -n "${ARTIFACTFS_WRAP:-}" ] || check "the token is not in the daemon's environment" \
	bash -c "! tr '\\0' '\\n' </proc/$LAST_PID/environ | grep -qF '$GITLAB_TOKEN'"
check "the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
check "the token is not in the cache folder" bash -c "! grep -rqF '$GITLAB_TOKEN' '$T/cache'"
check_eq "the cache folder is 0700" 700 "$(stat -c %a "$T/cache")"
check "cache files are 0600" bash -c "[ -z \"\$(find '$T/cache' -type f ! -perm 600)\" ]"

unmount_fs "$mnt"
finish
