#!/usr/bin/env bash
# Another user on the machine: the mount is private unless -o allow_other; with it, modes are
# enforced by the kernel; the cache folder is never readable by others.
source "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || { echo "# setpriv missing"; echo "0 passed, 1 failed"; exit 1; }
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}
export -f as_nobody
start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
chmod 755 "$T" # let nobody reach the mount points; the cache folder guards itself
mnt=$T/mnt
app="$mnt/acme%2Fplatform%2Fapp"

mount_fs "$mnt"
check "the owner reads the mount" test -f "$app/main/build/my report.txt"
check "another user cannot even list it" bash -c "! as_nobody ls '$mnt' 2>/dev/null"
check "nor read a file in it" bash -c "! as_nobody cat '$app/main/build/my report.txt' 2>/dev/null"
check "nor read the cache folder" bash -c "! as_nobody ls '$T/cache' 2>/dev/null"
check "nor any cached file" \
	bash -c "f=\$(find '$T/cache' -type f | head -n1); [ -n \"\$f\" ] && ! as_nobody cat \"\$f\" >/dev/null 2>&1"
unmount_fs "$mnt"

mount_fs "$mnt" -o allow_other
check "with allow_other another user reads a 0444 file" \
	bash -c "as_nobody cat '$app/main/build/my report.txt' | grep -q 'Build report'"
check "and runs a 0755 one" bash -c "as_nobody '$app/main/build/bin/hello' | grep -q hello"
check "but still cannot read the cache folder" bash -c "! as_nobody ls '$T/cache' 2>/dev/null"
# the kernel refuses first here (default_permissions: the folder is 0555), else we would;
# sys.py runs from $T, as the checkout may be closed to other users (a clone in mktemp -d)
install -m 644 "$E2E_DIR/sys.py" "$T/sys.py"
w=$(as_nobody "$PYTHON" "$T/sys.py" create "$app/main/build/x")
check "and writes stay refused (EACCES from the kernel or EROFS), got $w" \
	bash -c "[ '$w' = EACCES ] || [ '$w' = EROFS ]"
unmount_fs "$mnt"
finish
