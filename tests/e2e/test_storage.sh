#!/usr/bin/env bash
# Object storage: archives behind a 302 to another host (the token must not follow),
# proxied chunked answers, a server that ignores Range, and a real S3 store: radosgw of a
# throw-away Ceph (tests/ceph/ceph-up.sh), which ignores If-Range and answers only the first of
# several ranges. Files read right every way.
source "$(dirname "$0")/lib.sh"

export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
reference() { # unzips the build job's archive, fetched with curl, into $T/ref-$1
	curl -sfL -H "PRIVATE-TOKEN: $GITLAB_TOKEN" -o "$T/ref-$1.zip" \
		"$URL/api/v4/projects/101/jobs/artifacts/main/download?job=build" || die "no reference archive"
	mkdir -p "$T/ref-$1" && (cd "$T/ref-$1" && unzip -q "$T/ref-$1.zip" 2>/dev/null)
}

# pipeline ID SEED: a new successful pipeline on main whose build holds b.bin, 4 MiB of random
# bytes (SEED) stored as they are
pipeline() {
	sim_admin pipeline "{\"project\": 101, \"ref\": \"main\", \"jobs\": [{\"id\": $1, \"name\": \"build\",
		\"archive\": {\"members\": [{\"path\": \"b.bin\", \"random\": 4194304, \"seed\": $2,
		\"compress\": \"stored\"}]}}]}"
}
job_is() {
	[ "$(getfattr --only-values -n user.gitlab.job.id "$mnt/acme%2Fplatform%2Fapp/main/build")" = "$1" ]
}
member_sum() {
	"$PYTHON" -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("b.bin")).hexdigest())' "$1"
}

modes=(redirect proxied no-range s3)
[ -n "${STORAGE_MODES:-}" ] && read -ra modes <<<"$STORAGE_MODES" # e.g. STORAGE_MODES=s3
for mode in "${modes[@]}"; do
	ttl=()
	if [ "$mode" = s3 ]; then
		start_ceph
		start_sim --storage s3 --s3-endpoint "$S3_ENDPOINT_URL" --s3-bucket "storage-$$"
		ttl=(--ttl 1) # the ref move below must show within a second
	elif [ "$mode" = no-range ]; then
		start_sim --no-range
	else
		start_sim --storage "$mode"
	fi
	reference "$mode"
	sim_admin log/reset
	[ "$mode" = s3 ] && rgw_from=$(rgwlog_mark)
	mount_fs "$mnt" --cache-dir "$T/cache-$mode" "${ttl[@]}"
	build="$mnt/acme%2Fplatform%2Fapp/main/build"
	check "$mode: cp -r of a job folder matches the archive" \
		bash -c "cp -r '$build' '$T/copy-$mode' && diff -r '$T/copy-$mode' '$T/ref-$mode'"
	check "$mode: <job>.zip matches the download" cmp "$build.zip" "$T/ref-$mode.zip"
	# several ranges in one header get multipart/byteranges from local storage: never asked
	check_eq "$mode: no request asked several ranges at once" 0 "$(simlog count --multi-range)"
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
	if [ "$mode" = proxied ]; then
		# the store's own errors come through the proxy (403 AccessDenied, 404 NoSuchKey, 503
		# SlowDown, XML bodies): EACCES with one refusal line, ENOENT, retried then exact
		for id in 1961 1962 1963; do
			sim_admin pipeline "{\"project\": 101, \"ref\": \"store-$id\", \"jobs\": [{\"id\": $id,
				\"name\": \"build\", \"archive\": {\"members\": [{\"path\": \"f.txt\", \"text\": \"$id\\n\"}]}}]}"
		done
		jobs="$mnt/acme%2Fplatform%2Fapp/-/jobs"
		sim_admin faults "rate=1,kinds=store403,paths=/jobs/1961/artifacts$"
		check_eq "proxied: the store's 403 AccessDenied is EACCES" EACCES "$(sys read "$jobs/1961/f.txt")"
		check_eq "proxied: and <job>.zip is EACCES, never the XML" EACCES "$(sys read "$jobs/1961.zip")"
		check_eq "proxied: one refusal line for that read" 1 \
			"$(grep -c 'jobs/1961/f.txt: Permission denied' "$T/daemon.log")"
		sim_admin faults "rate=1,kinds=store404,paths=/jobs/1962/artifacts$"
		check_eq "proxied: the store's 404 NoSuchKey is ENOENT" ENOENT "$(sys read "$jobs/1962/f.txt")"
		sim_admin faults "nth=1:store503,paths=/jobs/1963/artifacts$"
		check_eq "proxied: the store's 503 SlowDown is retried, then exact" 1963 "$(cat "$jobs/1963/f.txt")"
		check_eq "proxied: the 503 was answered once" 1 "$(simlog count --path '/jobs/1963/artifacts$' --status 503)"
		sim_admin faults ""
		check "proxied: no XML body served as file bytes" bash -c "! grep -rlF '<Error>' '$T/cache-$mode'"
	fi
	if [ "$mode" = no-range ]; then
		check_eq "no-range: a server that ignores Range is read whole, once" 1 \
			"$(simlog count --path '/jobs/1101/artifacts$' --status 200)"
	fi
	if [ "$mode" = s3 ]; then
		check "s3: the archives came from radosgw" \
			bash -c "[ \"\$(rgwlog count --from $rgw_from --method GET --path '^/storage-$$/')\" -gt 0 ]"
		check_eq "s3: HEAD of an archive is a 303 (object storage)" 303 \
			"$(curl -s -o /dev/null -w '%{http_code}' -I -H "PRIVATE-TOKEN: $GITLAB_TOKEN" \
				"$URL/api/v4/projects/101/jobs/1101/artifacts")"
		# a ref moved to another archive while a file is open: that file reads its own archive
		# whole; radosgw ignores If-Range, so only the answer's ETag can tell the archives apart
		pipeline 1952 1
		wait_for 30 job_is 1952 || die "main/build did not become job 1952"
		exec 4<"$mnt/acme%2Fplatform%2Fapp/main/build/b.bin"
		head -c 4096 <&4 >/dev/null
		pipeline 1953 2
		wait_for 30 job_is 1953 || die "main/build did not become job 1953"
		check_eq "s3: a new open after the ref moved reads the new archive" \
			"$(member_sum "$T/sim-state/job-1953.zip")" \
			"$(sha256sum <"$mnt/acme%2Fplatform%2Fapp/main/build/b.bin" | cut -c1-64)"
		check_eq "s3: the file opened before the move reads its own archive, no bytes mixed" \
			"$(member_sum "$T/sim-state/job-1952.zip")" \
			"$("$PYTHON" -c 'import hashlib, os
os.lseek(4, 0, os.SEEK_SET)
h = hashlib.sha256()
while True:
    k = os.read(4, 1 << 20)
    if not k:
        break
    h.update(k)
print(h.hexdigest())' 2>&1)"
		exec 4<&-
		# the log shows headers (a harmless one sent on purpose proves it), never a credential
		curl -s -o /dev/null -H "X-Afs-Probe: 1" "$S3_ENDPOINT_URL/"
		check_eq "s3: radosgw's log shows request headers" 1 "$(rgwlog header X-Afs-Probe --from "$rgw_from")"
		# (but the simulator's uploads of the new archives, signed with its own S3 key)
		for h in PRIVATE-TOKEN JOB-TOKEN Authorization; do
			check_eq "s3: radosgw never received $h from artifactfs" 0 "$(rgwlog header "$h" \
				--from "$rgw_from" --except-value "AWS4-HMAC-SHA256 Credential=$AWS_ACCESS_KEY_ID/")"
		done
	fi
	check "$mode: the token is not in the log" bash -c "! grep -qF '$GITLAB_TOKEN' '$T/daemon.log'"
	unmount_fs "$mnt"
	stop_sim
	[ "$mode" = s3 ] && stop_ceph
done
finish
