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
	# AS: a command to run it under (word-split on purpose), e.g. setpriv
	timeout 60 ${AS:-} "$ARTIFACTFS_BIN" "$@" >"$T/out" 2>"$T/err"
	judge_refusal "$desc" "$pattern" $? "$T/err" "$mnt"
}

# judge_refusal DESCRIPTION PATTERN RC STDERR MOUNTPOINT: the verdict of fails_before_mount.
judge_refusal() {
	local desc=$1 pattern=$2 rc=$3 err=$4 m=$5
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "$pattern" "$err" &&
		[ "$(wc -l <"$err")" -eq 1 ] && ! mountpoint -q "$m"; then
		ok "$desc"
	else
		not_ok "$desc (rc=$rc)"
		sed 's/^/    /' "$err" | head -5
		mountpoint -q "$m" && fusermount3 -u "$m"
	fi
}

check "--help describes the options" bash -c "'$ARTIFACTFS_BIN' --help | grep -q -- --token-file"
check "--version names the version" bash -c "'$ARTIFACTFS_BIN' --version | grep -q '^artifactfs [0-9]'"

# A port on loopback that nothing listens on: bind one, note it, close it.
dead_port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The start-up check retries an unreachable server for 8 s (gitlab.c's CHECK_BUDGET_MS): that
# refusal is waited for beside the checks below, and judged after them.
mkdir -p "$T/mnt-unreachable"
timeout 60 "$ARTIFACTFS_BIN" "http://127.0.0.1:$dead_port" "$T/mnt-unreachable" \
	--cache-dir "$T/cache-unreachable" >/dev/null 2>"$T/unreachable.err" &
unreachable=$!
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
# strtoull skips blanks and wraps a minus round: " -1" would be 16 EiB, no limit at all
fails_before_mount "a negative --cache-size behind a blank is refused" "cache-size" \
	"http://127.0.0.1:$dead_port" "$mnt" --cache-size " -1"
fails_before_mount "a negative --memory-limit behind a blank is refused" "memory-limit" \
	"http://127.0.0.1:$dead_port" "$mnt" --memory-limit " -1"
# the kernel refuses an empty fsname or subtype ("fuse: mount failed: Invalid argument")
fails_before_mount "an empty -o fsname= is refused by name" "fsname" \
	"http://127.0.0.1:$dead_port" "$mnt" -o fsname=
fails_before_mount "an empty -o subtype= is refused by name" "subtype" \
	"http://127.0.0.1:$dead_port" "$mnt" -o ro,subtype=
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

# A CA file that is no regular file: a FIFO would block start-up forever (nothing writes it), a
# folder would read as an I/O error. Each is refused by name, in one line, before anything else.
mkfifo "$T/ca-fifo"
fails_before_mount "a FIFO as --ca-file is refused, not waited on" "ca-fifo: not a regular file" \
	"http://127.0.0.1:$dead_port" "$mnt" --ca-file "$T/ca-fifo"
CI_SERVER_TLS_CA_FILE=$T/ca-fifo fails_before_mount \
	"a FIFO as \$CI_SERVER_TLS_CA_FILE is refused too" "ca-fifo: not a regular file" \
	"http://127.0.0.1:$dead_port" "$mnt"
fails_before_mount "a folder as --ca-file is refused as one" "$T: not a regular file (a folder)" \
	"http://127.0.0.1:$dead_port" "$mnt" --ca-file "$T"

# Tokens typed on the command line are refused without being shown (ps, history, CI logs).
for form in "--token tok-s3cret" "--token=tok-s3cret" "-o token=tok-s3cret" \
	"--private-token tok-s3cret"; do
	# shellcheck disable=SC2086 # the form is two words or one on purpose
	fails_before_mount "$form is refused" "no option takes a token" \
		"http://127.0.0.1:$dead_port" "$mnt" $form
	check "and the refusal does not show it" bash -c "! grep -q tok-s3cret '$T/out' '$T/err'"
done
fails_before_mount "--token x is refused" "no option takes a token" \
	"http://127.0.0.1:$dead_port" "$mnt" --token x
check "and the output does not contain x" bash -c "! grep -qw x '$T/out' '$T/err'"
for secret in "glpat-Ab3dEf7hIj1kLmN0pQrS" "-o Zk3mQ9xY2pL8vN4rT6wBz1" "--frobnicate=glpat-xyz12"; do
	# shellcheck disable=SC2086
	fails_before_mount "an unknown option that looks like a token ($secret) is refused" \
		"looks like a token\|too many arguments" "http://127.0.0.1:$dead_port" "$mnt" $secret
	word=${secret##* }
	check "and not shown" bash -c "! grep -qF -- '${word#*=}' '$T/out' '$T/err'"
done

# Known mount options are names, not tokens: fsname= keeps the type fuse.artifactfs (updatedb's
# exclusion matches it); a GitLab token prefix is refused wherever it stands.
fails_before_mount "fsname= holding a token prefix is refused" "looks like a token" \
	"http://127.0.0.1:$dead_port" "$mnt" -o fsname=glpat-Ab3dEf7hIj1kLmN0pQrS

# --log-file gets the checks the token file and the cache folder get: another user's FIFO would
# block start-up forever, a file others can write would receive root's log.
mkfifo "$T/log-fifo"
fails_before_mount "a FIFO as --log-file is refused at once" "log-fifo: it is not a regular file" \
	"http://127.0.0.1:$dead_port" "$mnt" --log-file "$T/log-fifo"
install -m 666 /dev/null "$T/log-0666"
fails_before_mount "a --log-file others can write is refused" "can be written by group or others" \
	"http://127.0.0.1:$dead_port" "$mnt" --log-file "$T/log-0666"

# Token files and variables that would inject a header, hang or be cut are refused.
printf 'abc\r\nX-Injected: yes\n' >"$T/tok-crlf"
printf 'abc\000def' >"$T/tok-nul"
head -c 5000 /dev/zero | tr '\0' a >"$T/tok-long"
printf 'tok-s3cret\n' >"$T/tok-ok"
mkfifo "$T/tok-fifo"
chmod 600 "$T"/tok-*
for t in crlf nul long; do
	fails_before_mount "a token file with $t is refused" "token in\|longer than" \
		"http://127.0.0.1:$dead_port" "$mnt" --token-file "$T/tok-$t"
	check "and the refusal does not show it" bash -c "! grep -qE 'Injected|aaaa|def' '$T/err'"
done
fails_before_mount "a FIFO as token file is refused at once" "not a regular file" \
	"http://127.0.0.1:$dead_port" "$mnt" --token-file "$T/tok-fifo"
ln -s "$T/tok-ok" "$T/tok-link"
fails_before_mount "a symbolic link as token file is refused" "symbolic link" \
	"http://127.0.0.1:$dead_port" "$mnt" --token-file "$T/tok-link"
GITLAB_TOKEN=$'abc\r\nX-Injected: yes' fails_before_mount "\$GITLAB_TOKEN with CR/LF is refused" \
	"token in \$GITLAB_TOKEN holds a line break" "http://127.0.0.1:$dead_port" "$mnt"
check "and the refusal does not show it" bash -c "! grep -q Injected '$T/err'"
AS="env -u HOME -u XDG_CACHE_HOME setpriv --reuid=65534 --regid=65534 --clear-groups" \
	fails_before_mount "without \$HOME a user other than root must give --cache-dir" \
	"HOME is not set" "http://127.0.0.1:$dead_port" /tmp

start_sim
fails_before_mount "an unknown option is refused" "unknown option" "$URL" "$mnt" --frobnicate
chmod 600 "$T/token"
fails_before_mount "a token the server refuses is reported before mounting" "refused the token" \
	"$URL" "$mnt" --token-file "$T/token"
# (a server that answers, not the unreachable one: that would wait out its 8 s of retries)
fails_before_mount "a token file with one trailing newline is read (the server is what fails)" \
	"refused the token" "$URL" "$mnt" --token-file "$T/tok-ok" --cache-dir "$T/cache"

# fstab style: every option in -o, no URL argument but $GITLAB_URL.
GITLAB_URL=$URL mount_fs "$mnt" -o "cache_dir=$T/cache2,cache_size=64M,ttl=5,project=101"
check_eq "-o options mount, and project= lists that project at the root" "OK 101" \
	"$(sys listdir "$mnt" | tr '\n' ' ' | sed 's/ $//')"
check "mount and df name the server" grep -q "^$URL $mnt fuse.artifactfs " /proc/mounts
check "the cache folder given by -o cache_dir is created 0700" \
	bash -c "[ \"\$(stat -c %a '$T/cache2')\" = 700 ]"
unmount_fs "$mnt"
check "the daemon exits after fusermount3 -u" bash -c "! kill -0 $LAST_PID"
check "a mount says nothing but its info lines" \
	bash -c "! grep -vE ' artifactfs: info: (mounted|unmounting) ' '$T/daemon.log' | grep -q ."
check "with -f and stderr not a terminal, lines are timestamped" \
	grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z artifactfs: info: mounted ' "$T/daemon.log"

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

# Cache folders another user controls are refused before mounting, with the reason.
mkdir -p "$T/open-cache" "$T/their-cache" "$T/real-cache"
chmod 777 "$T/open-cache"
chown 65534:65534 "$T/their-cache"
ln -s "$T/real-cache" "$T/link-cache"
fails_before_mount "a cache folder others can write is refused" "written by group or others" \
	"$URL" "$mnt" --cache-dir "$T/open-cache"
fails_before_mount "a cache folder owned by another user is refused" "owned by another user" \
	"$URL" "$mnt" --cache-dir "$T/their-cache"
fails_before_mount "and so is a folder artifactfs would create in it" "owned by another user" \
	"$URL" "$mnt" --cache-dir "$T/their-cache/sub"
fails_before_mount "a cache folder reached through a symbolic link is refused" "symbolic link" \
	"$URL" "$mnt" --cache-dir "$T/link-cache/sub"
check "nothing was written in the refused folders" \
	bash -c "[ -z \"\$(find '$T/open-cache' '$T/their-cache' '$T/real-cache' -mindepth 1)\" ]"

# The mount is read-only unless deletes are allowed.
# (see the refusal of fsname=glpat-... above)
mount_fs "$mnt" -o fsname=build2024artifacts01,x-systemd.requires=9b3e6f0a-41c2-4d8e-9f1b-2c7d5e8a0b4f
check_eq "-o fsname= is kept and the type stays fuse.artifactfs" \
	"build2024artifacts01 fuse.artifactfs" "$(awk -v m="$mnt" '$2 == m {print $1, $3}' /proc/mounts)"
unmount_fs "$mnt"
mount_fs "$mnt" --read-only
check "findmnt shows the mount ro (and --read-only is accepted)" \
	bash -c "findmnt -no OPTIONS '$mnt' | tr , '\n' | grep -qx ro"
unmount_fs "$mnt"
mount_fs "$mnt" -o rw
check "-o rw (which mount(8) passes to every helper) still mounts ro" \
	bash -c "findmnt -no OPTIONS '$mnt' | tr , '\n' | grep -qx ro"
unmount_fs "$mnt"
mount_fs "$mnt" --allow-delete
check "with --allow-delete it is rw" bash -c "findmnt -no OPTIONS '$mnt' | tr , '\n' | grep -qx rw"
unmount_fs "$mnt"

# --debug means -d and stays in the foreground: the process started is the one serving.
"$ARTIFACTFS_BIN" "$URL" "$mnt" --debug --cache-dir "$T/cache" 2>"$T/debug.log" &
debug_pid=$!
DAEMON_PIDS+=("$debug_pid")
MOUNTS+=("$mnt")
wait_for 30 mountpoint -q "$mnt" || die "--debug did not mount"
ls "$mnt" >/dev/null
check "--debug stays in the foreground" kill -0 "$debug_pid"
check "and logs libfuse's requests" grep -q "unique: " "$T/debug.log"
fusermount3 -u "$mnt"
wait "$debug_pid"
check_eq "and exits 0 on unmount" 0 "$?"

# --log-file: timestamped lines with the pid, SIGHUP reopens the file (logrotate) and does not
# unmount. Each step waits for the line it expects, never for a time.
lines_before=$(wc -l <"$T/daemon.log")
mount_fs "$mnt" --log-file "$T/afs.log"
pid=$LAST_PID
check "the log file gets the mount line, timestamped" \
	grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z artifactfs\[$pid\]: info: mounted " "$T/afs.log"
check "the log file is 0600" bash -c "[ \"\$(stat -c %a '$T/afs.log')\" = 600 ]"
mv "$T/afs.log" "$T/afs.log.1"
kill -HUP "$pid"
check "after SIGHUP the log file is created anew and gets the next line" \
	wait_for 30 grep -q "info: log file reopened" "$T/afs.log"
check "the rotated file does not" bash -c "! grep -q 'reopened' '$T/afs.log.1'"
check "SIGHUP with --log-file does not unmount" mountpoint -q "$mnt"
check_eq "the mount still works" "OK" "$(sys listdir "$mnt" | head -n1)"
unmount_fs "$mnt"
check "the unmount line went to the new file" grep -q "info: unmounting $mnt" "$T/afs.log"
check_eq "nothing went to stderr" "$lines_before" "$(wc -l <"$T/daemon.log")"

wait "$unreachable"
judge_refusal "an unreachable server is refused before mounting" "cannot be reached" $? \
	"$T/unreachable.err" "$T/mnt-unreachable"
finish
