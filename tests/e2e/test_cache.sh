#!/usr/bin/env bash
# The disk cache: mount, read, unmount, mount again: nothing is downloaded twice; concurrent
# readers of one uncached archive cause one download of each byte.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"

mount_fs "$mnt"
cp -r "$mnt/$app/main/build" "$T/first" || die "first read failed"
first_bytes=$(simlog bytes --path '/artifacts')
unmount_fs "$mnt"

sim_admin log/reset
mount_fs "$mnt"
check "a second mount reads the same files" \
	bash -c "cp -r '$mnt/$app/main/build' '$T/second' && diff -r '$T/first' '$T/second'"
# only the mount's own check that its token may download the cached archive: one byte, once
check_eq "and downloads no archive byte again (one byte: the token's check)" "1 1" \
	"$(simlog count --path '/artifacts') $(simlog bytes --path '/artifacts')"
unmount_fs "$mnt"

# 16 parallel readers of the files of one uncached job: no byte range is fetched twice.
rm -rf "$T/cache"
sim_admin log/reset
mount_fs "$mnt"
mapfile -t files < <(cd "$T/first" && find . -type f | head -n 16)
pids=()
for i in $(seq 4); do
	for f in "${files[@]}"; do
		cat "$mnt/$app/main/build/$f" >/dev/null &
		pids+=($!)
	done
done
for p in "${pids[@]}"; do wait "$p"; done
archive_bytes=$(stat -c %s "$mnt/$app/main/build.zip")
fetched=$(simlog bytes --path '/artifacts')
check "parallel readers fetch no more than the archive once ($fetched <= $archive_bytes)" \
	test "$fetched" -le "$archive_bytes"
same=0
for f in "${files[@]}"; do cmp -s "$T/first/$f" "$mnt/$app/main/build/$f" && same=$((same + 1)); done
check_eq "and read the right bytes" "${#files[@]}" "$same"

# Two mounts share one cache folder.
mount_fs "$T/mnt2"
check "a second mount on the same cache folder reads right" \
	diff -r "$T/first" "$T/mnt2/$app/main/build"
unmount_fs "$T/mnt2"
unmount_fs "$mnt"

# Bytes that rot in the cache fail their block's checksum: the daemon drops the block and fetches
# it again before serving anything (a member's CRC would catch it only when read in order).
member="lib/hello.c"
rot_member() { # flips the first data byte of $member in the cached archive of job 1101
	"$PYTHON" - "$T/sim-state/job-1101.zip" "$T"/cache/v2/*-1101.afs "$member" <<'PY'
import os, sys, zipfile
zpath, afs, name = sys.argv[1:]
info = zipfile.ZipFile(zpath).getinfo(name)
with open(zpath, "rb") as f:
    f.seek(info.header_offset + 26)
    start = info.header_offset + 30 + int.from_bytes(f.read(2), "little") + int.from_bytes(f.read(2), "little")
blocks = (os.path.getsize(zpath) + 16383) // 16384
pad = lambda n: (n + 4095) // 4096 * 4096
data_off = 4096 + pad(blocks) + pad(4 * blocks)  # header, block map, checksums, then the archive
with open(afs, "r+b") as f:
    f.seek(data_off + start)
    b = f.read(1)
    f.seek(data_off + start)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}
rot_member || die "cannot spoil the cached member"
sim_admin log/reset
mount_fs "$mnt"
check "a member whose cached bytes rotted reads right at once" \
	cmp "$mnt/$app/-/jobs/1101/$member" "$T/first/$member"
check "the block failed its checksum" grep -q "failed their checksum" "$T/daemon.log"
check "that was one fetch of a few blocks (and the token's check), not the archive" \
	bash -c "[ \"\$(simlog count --path '/artifacts')\" -eq 2 ] &&
		[ \"\$(simlog bytes --path '/artifacts')\" -lt 100000 ]"
unmount_fs "$mnt"
finish
