#!/usr/bin/env bash
# https with a private CA, as on self-managed GitLab: --ca-file (or $CI_SERVER_TLS_CA_FILE, which
# runners hand to jobs) makes the mount work; without it the start-up error says "certificate".
# The CA is made here with openssl and thrown away with $T: nothing is checked in.
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || die "openssl is needed to make the throwaway CA"
ca=$T/ca
mkdir -p "$ca"
(
	cd "$ca" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 \
		-subj "/CN=artifactfs test CA" &&
		openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" &&
		echo "subjectAltName=IP:127.0.0.1" >ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
			-days 1 -extfile ext
) >"$T/openssl.out" 2>&1 || die "openssl could not make the CA: $(tail -3 "$T/openssl.out")"

start_sim --tls-cert "$ca/srv.pem" --tls-key "$ca/srv.key"
[[ $URL == https://* ]] || die "the simulator does not serve https: $URL"
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"
"$PYTHON" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("lib/hello.c"))' \
	"$T/sim-state/job-1101.zip" >"$T/hello.c" || die "cannot read the fixture's archive"

# fails_before_mount DESCRIPTION PATTERN ARGS...: exits non-zero with one line saying PATTERN.
fails_before_mount() {
	local desc=$1 pattern=$2
	shift 2
	mkdir -p "$mnt"
	timeout 60 "$ARTIFACTFS_BIN" "${AT_URL:-$URL}" "$mnt" --cache-dir "$T/cache" "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qi -- "$pattern" "$T/err" &&
		[ "$(wc -l <"$T/err")" -eq 1 ] && ! mountpoint -q "$mnt"; then
		ok "$desc"
	else
		not_ok "$desc (rc=$rc)"
		sed 's/^/    /' "$T/err" | head -5
		mountpoint -q "$mnt" && fusermount3 -u "$mnt"
	fi
}

(
	unset CI_SERVER_TLS_CA_FILE
	fails_before_mount "without the CA the start-up error names the certificate" "certificate"
	check "and it says how to fix it" grep -q -- "--ca-file" "$T/err"
	check "one line, without -d, and not the old vague text" bash -c "! grep -q 'run with -d' '$T/err'"
	echo "$PASS $FAIL" >"$T/counts"
)
read -r PASS FAIL <"$T/counts"

: >"$T/empty.pem"
fails_before_mount "a CA file that holds no certificate is refused by name" "no PEM certificate" \
	--ca-file "$T/empty.pem"
fails_before_mount "a missing CA file is refused by name" "$T/nope.pem" --ca-file "$T/nope.pem"
AT_URL=$URL/api/v4 fails_before_mount "a URL ending in /api/v4 is named as the mistake" \
	"HTTP 404.*without /api/v4" --ca-file "$ca/ca.pem"

mount_fs "$mnt" --ca-file "$ca/ca.pem"
check "with --ca-file the mount reads a job over https" cmp "$app/main/build/lib/hello.c" "$T/hello.c"
check "a whole archive too" bash -c "cmp '$app/-/jobs/1101.zip' '$T/sim-state/job-1101.zip'"
unmount_fs "$mnt"

CI_SERVER_TLS_CA_FILE=$ca/ca.pem mount_fs "$mnt" --cache-dir "$T/cache2"
check "\$CI_SERVER_TLS_CA_FILE is the default CA file" cmp "$app/main/build/lib/hello.c" "$T/hello.c"
unmount_fs "$mnt"

mount_fs "$mnt" -o "ca_file=$ca/ca.pem" --cache-dir "$T/cache3"
check "-o ca_file= works as in fstab" cmp "$app/main/build/lib/hello.c" "$T/hello.c"
unmount_fs "$mnt"
finish
