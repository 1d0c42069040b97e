#!/usr/bin/env bash
# What an install gives: cmake --install into a DESTDIR (manual page, completion, mount helpers),
# then the Debian package from cpack installed with dpkg, mounted through an /etc/fstab line
# with `mount MOUNTPOINT` against the simulator, read, unmounted and removed. The machine is left
# as found even when a step fails: /etc/fstab byte for byte, no package, no mount, no daemon.
source "$(dirname "$0")/lib.sh"

BUILD=$(dirname "$ARTIFACTFS_BIN")
app="acme%2Fplatform%2Fapp"
mnt=$T/mnt
FSTAB_SAVED=
PKG_INSTALLED=
HELPERS_INSTALLED=
FSTAB_PID=

install_cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt"
	[ -n "$FSTAB_PID" ] && kill "$FSTAB_PID" 2>/dev/null
	[ -n "$HELPERS_INSTALLED" ] && rm -f /sbin/mount.fuse.artifactfs /sbin/mount.artifactfs
	[ -n "$PKG_INSTALLED" ] && dpkg --purge artifactfs >/dev/null 2>&1
	# write in place: the same inode, owner and mode as before
	[ -n "$FSTAB_SAVED" ] && cat "$FSTAB_SAVED" >/etc/fstab
}
trap 'install_cleanup; cleanup' EXIT

# Other sessions on this machine may run this test too: one at a time.
exec 9>/run/lock/artifactfs-test-install.lock
flock -w 120 9 || die "another test_install.sh holds the lock"

# 1. cmake --install into a DESTDIR.
dest=$T/dest
DESTDIR=$dest cmake --install "$BUILD" --prefix /usr/local >"$T/install.out" 2>&1 ||
	die "cmake --install failed: $(tail -5 "$T/install.out")"
check "the binary is installed" test -x "$dest/usr/local/bin/artifactfs"
man1=$dest/usr/local/share/man/man1/artifactfs.1
check "the manual page renders with man -l" \
	bash -c "MANWIDTH=80 man -l '$man1' 2>/dev/null | grep -q 'mount GitLab CI job artifacts'"
check "without a groff warning" bash -c "[ -z \"\$(groff -mandoc -ww -z '$man1' 2>&1)\" ]"
MANWIDTH=200 man -l "$man1" 2>/dev/null >"$T/man.txt"
for section in OPTIONS "THE TREE" "EXTENDED ATTRIBUTES" ERRORS ENVIRONMENT FILES EXAMPLES; do
	check "the manual page has $section" grep -q "^$section" "$T/man.txt"
done
# every long option --help shows is in the manual page and the bash completion
help_opts=$("$ARTIFACTFS_BIN" --help | grep -oE '^ +--[a-z-]+' | tr -d ' ' | sort -u)
[ -n "$help_opts" ] || not_ok "--help lists long options"
comp=$dest/usr/local/share/bash-completion/completions/artifactfs
for o in $help_opts; do
	check "$o is in the manual page and the completion" \
		bash -c "grep -q -- '$o' '$T/man.txt' && grep -q -- '$o' '$comp'"
done
complete_words() { # complete_words WORDS...: what bash completion offers for the last word
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _artifactfs
		printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
check_eq "bash completion loads and completes an option" "--log-file" "$(complete_words artifactfs --log)"
check_eq "and an -o name after others" "ro,allow_other" "$(complete_words artifactfs -o ro,allow_ot)"
mkdir -p "$T/mnt-complete"
check_eq "and a mount point" "$T/mnt-complete" "$(complete_words artifactfs "$T/mnt-comp")"
check "the zsh completion is installed" test -s "$dest/usr/local/share/zsh/site-functions/_artifactfs"
for h in mount.fuse.artifactfs mount.artifactfs; do
	check "$h is installed in /sbin, where mount(8) looks" test -x "$dest/sbin/$h"
	check "$h runs artifactfs from the install's bin folder" \
		grep -q '^PATH=/usr/local/bin:' "$dest/sbin/$h"
done
check "the systemd and updatedb examples are installed" bash -c "
	test -s '$dest/usr/local/share/doc/artifactfs/examples/mnt-artifacts.automount' &&
	grep -q PRUNEFS '$dest/usr/local/share/doc/artifactfs/README.updatedb.md'"
# systemd-analyze reads unit files offline (no running systemd needed); it refuses, e.g., a
# Where= that does not match the unit's name
ex=$dest/usr/local/share/doc/artifactfs/examples
check "systemd-analyze verify accepts the example units" \
	timeout 30 systemd-analyze verify "$ex/mnt-artifacts.mount" "$ex/mnt-artifacts.automount"

# 2. The Debian package, built.
(cd "$BUILD" && cpack -G DEB -B "$T/pkg") >"$T/cpack.out" 2>&1 || die "cpack failed: $(tail -5 "$T/cpack.out")"
deb=$(ls "$T"/pkg/artifactfs_*.deb 2>/dev/null | head -n1)
check "cpack -G DEB builds a package" test -s "$deb"
dpkg-deb -c "$deb" >"$T/deb.list"
for f in ./usr/bin/artifactfs ./usr/share/man/man1/artifactfs.1 ./sbin/mount.fuse.artifactfs \
	./usr/share/bash-completion/completions/artifactfs ./usr/share/zsh/vendor-completions/_artifactfs; do
	check "the package holds $f" grep -q " $f\$" "$T/deb.list"
done

# fstab_mount TYPE LABEL: adds an /etc/fstab line of TYPE for $mnt, mounts it with `mount
# MOUNTPOINT` under the PATH mount gives its helpers, reads a file, unmounts it, waits for the
# daemon to exit and takes the line out again.
fstab_mount() {
	local type=$1 label=$2 log=$T/fstab-$1.log
	cat "$FSTAB_SAVED" >/etc/fstab
	echo "$URL $mnt $type token_file=$T/token,cache_dir=$T/cache,log_file=$log,_netdev 0 0" >>/etc/fstab
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount "$mnt" >"$T/mount.out" 2>&1 9>&- # the daemon must not inherit the lock
	check "$label: mount MOUNTPOINT mounts the $type line" mountpoint -q "$mnt"
	sed 's/^/    mount: /' "$T/mount.out"
	FSTAB_PID=$(grep -om1 'artifactfs\[[0-9]*\]' "$log" 2>/dev/null | tr -dc 0-9)
	check "$label: as fuse.artifactfs, read-only, named by the URL" \
		bash -c "findmnt -rno SOURCE,FSTYPE,OPTIONS '$mnt' | grep -qE '^[^ ]+ fuse.artifactfs ro,'"
	check "$label: a file reads through it" grep -q "Build report" "$mnt/$app/main/build/my report.txt"
	check "$label: the daemon logs to the log_file given in fstab" \
		grep -q "info: mounted $URL on $mnt" "$log"
	umount "$mnt"
	check "$label: umount unmounts it" bash -c "! mountpoint -q '$mnt'"
	check "$label: and the daemon exits" \
		wait_for 30 bash -c "[ -n '$FSTAB_PID' ] && ! kill -0 '$FSTAB_PID'"
	FSTAB_PID=
	cat "$FSTAB_SAVED" >/etc/fstab
}

if dpkg -s artifactfs >/dev/null 2>&1 || [ -e /sbin/mount.fuse.artifactfs ] || [ -e /sbin/mount.artifactfs ]; then
	die "artifactfs is installed on this machine already: not touching it"
fi
FSTAB_SAVED=$T/fstab.orig
cp -p /etc/fstab "$FSTAB_SAVED" || die "cannot save /etc/fstab"
start_sim
mkdir -p "$mnt"
fixture_token maintainer >"$T/token"
chmod 600 "$T/token"

# 3. A prefix mount(8) knows nothing of (as /usr/local/bin is not in its helpers' PATH): the
# helpers still go to /sbin, where mount looks, and run the binary from the prefix. Without them
# mount.fuse3 would say "artifactfs: not found".
if grep -q '^/sbin/mount.fuse.artifactfs$' <(sed 's|^'"$dest"'||' "$BUILD/install_manifest.txt"); then
	HELPERS_INSTALLED=1
	cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.out" 2>&1 ||
		die "cmake --install failed: $(tail -5 "$T/install.out")"
	check "the helper runs the binary from its own prefix" grep -q "^PATH=$T/prefix/bin:" /sbin/mount.fuse.artifactfs
	fstab_mount fuse.artifactfs "cmake --install --prefix"
	fstab_mount artifactfs "cmake --install, type artifactfs"
	rm -f /sbin/mount.fuse.artifactfs /sbin/mount.artifactfs
	HELPERS_INSTALLED=
else
	ok "# skip: this build puts the mount helpers elsewhere than /sbin"
fi

# 4. The Debian package, installed.
PKG_INSTALLED=1
dpkg -i "$deb" >"$T/dpkg.out" 2>&1 || die "dpkg -i failed: $(tail -5 "$T/dpkg.out")"
check "the package installs artifactfs in /usr/bin" test -x /usr/bin/artifactfs
if grep -qs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
	ok "# skip: dpkg here is set to leave out manual pages"
else
	check "and its manual page for man" bash -c "man -w artifactfs | grep -q /usr/share/man/man1/artifactfs.1"
fi

fstab_mount fuse.artifactfs "the package"

# 5. Removal leaves nothing behind.
check "/etc/fstab is as it was" cmp -s "$FSTAB_SAVED" /etc/fstab
dpkg --purge artifactfs >"$T/dpkg.out" 2>&1
PKG_INSTALLED=
check "the package is removed" bash -c "! dpkg -s artifactfs >/dev/null 2>&1"
check "with its files" bash -c "[ ! -e /usr/bin/artifactfs ] && [ ! -e /sbin/mount.fuse.artifactfs ] &&
	[ ! -e /usr/share/man/man1/artifactfs.1 ]"

finish
