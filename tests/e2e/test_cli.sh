#!/usr/bin/env bash
# The command line: help, version, wrong options and unusable servers fail before mounting with
# a one-line reason; -o forms work as in fstab.
source "$(dirname "$0")/lib.sh"

mnt=$T/mnt
mkdir -p "$mnt"

# fails_before_mount DESCRIPTION PATTERN ARGS...: exits non-zero, says PATTERN in one line, no mount.
fails_before_mount() {
	local desc=$1 pattern=$2
	shift 2
	timeout 60 "$ARTIFACTFS_BIN" "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "$pattern" "$T/err" &&
		[ "$(wc -l <"$T/err")" -eq 1 ] && ! mountpoint -q "$mnt"; then
		ok "$desc"
	else
		not_ok "$desc (rc=$rc)"
		sed 's/^/    /' "$T/err" | head -5
		mountpoint -q "$mnt" && fusermount3 -u "$mnt"
	fi
}

check "--help describes the options" bash -c "'$ARTIFACTFS_BIN' --help | grep -q -- --token-file"
check "--version names the version" bash -c "'$ARTIFACTFS_BIN' --version | grep -q '^artifactfs [0-9]'"

# A port on loopback that nothing listens on: bind one, note it, close it.
dead_port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fails_before_mount "an unreachable server is refused before mounting" "cannot be reached" \
	"http://127.0.0.1:$dead_port" "$mnt" --cache-dir "$T/cache"
fails_before_mount "a URL that is not http(s) is refused" "not an http" \
	"ftp://example.invalid" "$mnt"
fails_before_mount "a URL carrying credentials is refused" "carries credentials" \
	"http://oauth2:s3cret-in-url@127.0.0.1:$dead_port" "$mnt"
check "the refusal does not show them" bash -c "! grep -q s3cret-in-url '$T/err'"
fails_before_mount "a token given in place of the URL is refused without being shown" "not an http" \
	"glpat-s3cret-as-url" "$mnt"
check "and the refusal does not show it" bash -c "! grep -q s3cret-as-url '$T/err'"
fails_before_mount "a malformed --cache-size is refused" "cache-size" \
	"http://127.0.0.1:$dead_port" "$mnt" --cache-size lots
fails_before_mount "a malformed --ttl is refused" "ttl" \
	"http://127.0.0.1:$dead_port" "$mnt" -o ttl=-5
fails_before_mount "no mount point is refused" "mount point" "http://127.0.0.1:$dead_port"

echo secret-value >"$T/token"
chmod 644 "$T/token"
fails_before_mount "a token file readable by others is refused" "chmod 600" \
	"http://127.0.0.1:$dead_port" "$mnt" --token-file "$T/token"
check "the refusal does not show the token" bash -c "! grep -q secret-value '$T/err'"
fails_before_mount "a missing token file is refused" "cannot open token file" \
	"http://127.0.0.1:$dead_port" "$mnt" -o token_file="$T/nonexistent"

start_sim
fails_before_mount "an unknown option is refused" "unknown option" "$URL" "$mnt" --frobnicate
chmod 600 "$T/token"
fails_before_mount "a token the server refuses is reported before mounting" "refused the token" \
	"$URL" "$mnt" --token-file "$T/token"

# fstab style: every option in -o, no URL argument but $GITLAB_URL.
GITLAB_URL=$URL mount_fs "$mnt" -o "cache_dir=$T/cache2,cache_size=64M,ttl=5,project=101"
check_eq "-o options mount, and project= lists that project at the root" "OK 101" \
	"$(sys listdir "$mnt" | tr '\n' ' ' | sed 's/ $//')"
check "mount and df name the server" grep -q "^$URL $mnt fuse.artifactfs " /proc/mounts
check "the cache folder given by -o cache_dir is created 0700" \
	bash -c "[ \"\$(stat -c %a '$T/cache2')\" = 700 ]"
unmount_fs "$mnt"
check "the daemon exits after fusermount3 -u" bash -c "! kill -0 $LAST_PID"
check "a mount says nothing but its one info line" \
	bash -c "! grep -v '^artifactfs: info: mounted ' '$T/daemon.log' | grep -q ."

# A relative --cache-dir names a folder under the directory artifactfs was started in, though
# libfuse moves the daemon to /.
export GITLAB_TOKEN=$(fixture_token maintainer)
cd "$T"
mount_fs "$mnt" --cache-dir rel-cache
check "with a relative --cache-dir a job lists" \
	bash -c "ls '$mnt/acme%2Fplatform%2Fapp/main/build/' | grep -q ."
check "and its archive is cached under that folder" \
	bash -c "ls '$T/rel-cache/v2/' | grep -q '[.]afs\$'"
unmount_fs "$mnt"
cd - >/dev/null

finish
