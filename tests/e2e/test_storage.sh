#!/usr/bin/env bash
# Object storage: archives behind a 302 to another host (the token must not follow),
# proxied chunked answers, and a server that ignores Range. Files read right every way.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
reference() { # unzips the build job's archive, fetched with curl, into $T/ref-$1
	curl -sfL -H "PRIVATE-TOKEN: $GITLAB_TOKEN" -o "$T/ref-$1.zip" \
		"$URL/api/v4/projects/101/jobs/artifacts/main/download?job=build" || die "no reference archive"
	mkdir -p "$T/ref-$1" && (cd "$T/ref-$1" && unzip -q "$T/ref-$1.zip" 2>/dev/null)
}

for mode in redirect proxied no-range; do
	if [ "$mode" = no-range ]; then start_sim --no-range; else start_sim --storage "$mode"; fi
	reference "$mode"
	sim_admin log/reset
	mount_fs "$mnt" --cache-dir "$T/cache-$mode"
	build="$mnt/acme%2Fplatform%2Fapp/main/build"
	check "$mode: cp -r of a job folder matches the archive" \
		bash -c "cp -r '$build' '$T/copy-$mode' && diff -r '$T/copy-$mode' '$T/ref-$mode'"
	check "$mode: <job>.zip matches the download" cmp "$build.zip" "$T/ref-$mode.zip"
	if [ "$mode" = redirect ]; then
		sim_admin faults "nth=1:expired,paths=^/store"
		check "redirect: after an expired signed URL the API is asked again and the bytes are right" \
			cmp "$mnt/acme%2Fplatform%2Fapp/-/jobs/1102/junit/report.xml" \
			"$(cd "$T" && unzip -q -o -d "$T/j1102" "$T/sim-state/job-1102.zip" && echo "$T/j1102/junit/report.xml")"
		check_eq "redirect: the object store refused once" 1 "$(simlog count --host '^127\.0\.0\.2' --status 403)"
		check "redirect: the object store was used" \
			bash -c "[ \"\$(simlog count --host '^127\\.0\\.0\\.2')\" -gt 0 ]"
		check_eq "redirect: the object store never received a credential" 0 \
			"$(simlog count --host '^127\.0\.0\.2' --auth)"
	fi
	if [ "$mode" = no-range ]; then
		check_eq "no-range: a server that ignores Range is read whole, once" 1 \
			"$(simlog count --path '/jobs/1101/artifacts$' --status 200)"
	fi
	check "$mode: the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
	unmount_fs "$mnt"
	stop_sim
done
finish
