#!/usr/bin/env bash
# A damaged cache is never served: a byte flipped in a cached stored member, a truncated cache
# file and one whose data was zeroed or extended are all detected (per-block checksums, the
# file's length at open) and fetched again. A really full disk evicts; two mounts sharing a
# folder keep one --cache-size between them.
source "$(dirname "$0")/lib.sh"

# Four jobs of 1.2 MiB stored members on a branch of their own, beside the sample world.
"$PYTHON" - "$FIXTURE" "$T/fixture.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1], encoding="utf-8"))
app = next(p for p in f["projects"] if p["path"] == "acme/platform/app")
app["branches"]["bigs"] = "d4e5f60718293a4b5c6d7e8f9012345678901234"
jobs = []
for i in range(1, 5):
    f["archives"][f"big{i}"] = {"members": [
        {"path": "data.bin", "random": 1258291, "seed": 40 + i, "compress": "stored"}]}
    jobs.append({"id": 1900 + i, "name": f"big{i}", "archive": f"big{i}"})
app["pipelines"].append({"id": 590, "ref": "bigs", "status": "success", "jobs": jobs})
json.dump(f, open(sys.argv[2], "w", encoding="utf-8"))
PY
FIXTURE=$T/fixture.json
export FIXTURE
start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
job=$mnt/$app/-/jobs/1101
zip=$T/sim-state/job-1101.zip

# afs_tool ZIP AFS CMD [ARG]: where things are in the cache file of the archive ZIP (v2 layout:
# a 4 KiB header, the block map and the CRC-32C of each 16 KiB block, each padded to 4 KiB,
# then the archive's bytes at their own offsets).
#   data_off            prints the offset of the archive's byte 0 in the cache file
#   member_end NAME     prints the archive offset just past NAME's data
#   flip OFF            flips the byte of the cache file at OFF
#   tail NAME N         writes the last N bytes of NAME, from the zip, to stdout
afs_tool() {
	"$PYTHON" - "$@" <<'PY'
import os, sys, zipfile
zpath, afs, cmd, *args = sys.argv[1:]
blocks = (os.path.getsize(zpath) + 16383) // 16384
pad = lambda n: (n + 4095) // 4096 * 4096
data_off = 4096 + pad(blocks) + pad(4 * blocks)
if cmd == "data_off":
    print(data_off)
elif cmd == "member_end":
    info = zipfile.ZipFile(zpath).getinfo(args[0])
    with open(zpath, "rb") as f:
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    print(info.header_offset + 30 + n + m + info.compress_size)
elif cmd == "flip":
    with open(afs, "r+b") as f:
        f.seek(int(args[0]))
        b = f.read(1)
        f.seek(int(args[0]))
        f.write(bytes([b[0] ^ 0xFF]))
elif cmd == "tail":
    sys.stdout.buffer.write(zipfile.ZipFile(zpath).read(args[0])[-int(args[1]):])
PY
}

# 1. A byte flipped near the end of a cached stored member: an out-of-order read (tail) skips
# the member's CRC, so only the block's checksum can catch it.
mount_fs "$mnt"
cat "$job/data/stored.bin" >/dev/null || die "cannot read the stored member"
unmount_fs "$mnt"
afs=$(ls "$T"/cache/v2/*-1101.afs) || die "no cache file for job 1101"
off=$(($(afs_tool "$zip" "$afs" data_off) + $(afs_tool "$zip" "$afs" member_end data/stored.bin) - 100))
afs_tool "$zip" "$afs" flip "$off" || die "cannot flip a cached byte"
afs_tool "$zip" "$afs" tail data/stored.bin 8192 >"$T/tail.want"
: >"$T/daemon.log"
mount_fs "$mnt"
tail -c 8192 "$job/data/stored.bin" >"$T/tail.got"
check "tail -c 8192 of a tampered stored member returns the right bytes" cmp "$T/tail.got" "$T/tail.want"
check "the damage was found by the block's checksum" grep -q "failed their checksum" "$T/daemon.log"
check "and the whole member reads right" \
	bash -c "cmp <('$PYTHON' -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(\"data/stored.bin\"))' '$zip') '$job/data/stored.bin'"
cat "$mnt/$app/main/build.zip" >/dev/null # the whole archive cached for what follows
unmount_fs "$mnt"

# 2. A truncated cache file: discarded at open and fetched again, never EIO for good.
truncate -s $(($(stat -c %s "$afs") / 2)) "$afs"
mount_fs "$mnt"
check "a truncated cache file: <job>.zip reads right" cmp "$mnt/$app/main/build.zip" "$zip"
check "and its members too" cmp "$job/lib/hello.c" \
	<("$PYTHON" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("lib/hello.c"))' "$zip")
unmount_fs "$mnt"

# 3. Extended with zeros: the data zeroed under a map that says present (same length), and a
# longer file. Neither is served.
afs=$(ls "$T"/cache/v2/*-1101.afs) || die "no cache file for job 1101"
len=$(stat -c %s "$afs")
truncate -s "$(afs_tool "$zip" "$afs" data_off)" "$afs"
truncate -s "$len" "$afs"
mount_fs "$mnt"
check "zeroed cached data: <job>.zip reads right, not zeros" cmp "$mnt/$app/main/build.zip" "$zip"
unmount_fs "$mnt"
truncate -s +65536 "$afs"
mount_fs "$mnt"
check "a cache file extended with zeros: <job>.zip reads right" cmp "$mnt/$app/main/build.zip" "$zip"
check "the damaged file was named in the log" grep -q "damaged or not ours" "$T/daemon.log"
unmount_fs "$mnt"

# big_ok MOUNT I: job 190I's data.bin reads right through MOUNT.
big_ok() {
	cmp "$1/$app/-/jobs/190$2/data.bin" \
		<("$PYTHON" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("data.bin"))' \
			"$T/sim-state/job-190$2.zip")
}
export -f big_ok
export app

# 4. A really full disk: the cache on a 4 MiB tmpfs, the limit far above it. Reading 4.8 MiB of
# archives one after the other evicts what no read uses instead of failing with ENOSPC.
tiny=$T/tiny
mkdir -p "$tiny"
mount -t tmpfs -o size=4m tmpfs "$tiny" || die "cannot mount a tmpfs (root needed)"
trap 'umount -l "$tiny" 2>/dev/null; cleanup' EXIT
mount_fs "$mnt" --cache-dir "$tiny/cache"
for round in 1 2; do
	for i in 1 2 3 4; do
		check "full disk, round $round: job 190$i reads right" big_ok "$mnt" "$i"
	done
done
unmount_fs "$mnt"
umount "$tiny" || die "cannot unmount the tmpfs"

# 5. Two mounts on one folder with --cache-size 3M, used in turn: the folder stays within 3 MiB
# plus 64 KiB of slack (the folder itself, its lock file, a block being written).
shared=$T/shared
mount_fs "$mnt" --cache-dir "$shared" --cache-size 3M
mount_fs "$T/mnt2" --cache-dir "$shared" --cache-size 3M
check "mount 1 reads job 1901" big_ok "$mnt" 1
check "mount 1 reads job 1902" big_ok "$mnt" 2
check "mount 2 reads job 1903" big_ok "$T/mnt2" 3
check "mount 2 reads job 1904" big_ok "$T/mnt2" 4
check "mount 1 reads job 1901 again" big_ok "$mnt" 1
used=$(du -sk "$shared" | cut -f1)
check "the shared folder stays within --cache-size ($used KiB <= 3136)" test "$used" -le 3136
unmount_fs "$T/mnt2"
unmount_fs "$mnt"
finish
