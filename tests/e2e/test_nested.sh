#!/usr/bin/env bash
# Archives inside artifacts: "<member>#/" is the inside of a tarball or zip member, through
# libarchive, lookup only. Made here with tar and zip, put in the artifacts by the simulator from
# files beside this test's own fixture (tests/sim/fixtures/nested.json): a tarball compared with
# what tar itself unpacks, a zip inside a tarball, a zip bomb inside a tarball (the cache is 32M,
# the decompression budget a quarter of it), a tarball with a flipped byte, a text file, a
# real member whose name ends in '#'; the same tree as 7z archives of every header 7z writes,
# and 7z headers of a few bytes declaring 99,000,000 files (libarchive would allocate gigabytes
# for them: they are refused first, and the daemon stays small).
source "$(dirname "$0")/lib.sh"

cp "$(dirname "$ARTIFACTFS_SIM")/fixtures/nested.json" "$T/nested.json"
FIXTURE=$T/nested.json
"$PYTHON" - "$T" <<'PY' || die "cannot make the archives"
import io, os, random, sys, tarfile, zipfile
t = sys.argv[1]
tree = os.path.join(t, "tree")
for d in ["bin", "data", "empty", "deep/a/b"]:
    os.makedirs(os.path.join(tree, d))
def put(path, data, mode=0o644):
    p = os.path.join(tree, path)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
put("README", b"inside a tarball\n")
put("bin/run.sh", b"#!/bin/sh\necho run\n", 0o755)
put("data/blob.bin", random.Random(3).randbytes(300 * 1024))
put("deep/a/b/c.txt", b"deep\n" * 1000)
os.symlink("data/blob.bin", os.path.join(tree, "link"))
with tarfile.open(os.path.join(t, "x.tar.gz"), "w:gz") as tf:
    tf.add(tree, arcname=".")
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("x", "inside a zip inside a tarball\n")
    z.writestr("sub/y.txt", "y\n")
def tar_bytes(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            if isinstance(data, tuple):  # a symlink
                ti.type, ti.linkname = tarfile.SYMTYPE, data[0]
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
tar_bytes(os.path.join(t, "a.tar.gz"),
          [("inner.zip", inner.getvalue()), ("up", ("../../../etc/passwd",)), ("ok", b"ok\n")])
bomb = io.BytesIO()
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("zeros", "w", force_zip64=True) as w:
        chunk = bytes(1 << 20)
        for _ in range(100):  # 100 MiB of zeros, a few hundred KiB packed
            w.write(chunk)
tar_bytes(os.path.join(t, "bomb.tar.gz"), [("zbomb.zip", bomb.getvalue()), ("ok.txt", b"ok\n")])
# gzip stores noise as it is: one byte flipped inside it is caught only by the gzip trailer
noise = random.Random(7).randbytes(200 * 1024)
tar_bytes(os.path.join(t, "bad.tar.gz"), [("f", noise)])
bad = bytearray(open(os.path.join(t, "bad.tar.gz"), "rb").read())
at = bad.find(noise[100000:100064])
assert at > 0
bad[at + 32] ^= 0x20
open(os.path.join(t, "bad.tar.gz"), "wb").write(bad)
open(os.path.join(t, "pad.bin"), "wb").write(random.Random(6).randbytes(9 << 19))
big = random.Random(5).randbytes(1 << 20)
open(os.path.join(t, "big.bin"), "wb").write(big)
with tarfile.open(os.path.join(t, "big.tar"), "w") as tf:
    ti = tarfile.TarInfo("big.bin")
    ti.size = len(big)
    tf.addfile(ti, io.BytesIO(big))
PY
# 7z: solid LZMA2 (header LZMA), a folder per file, stored, stored header, a plain header
sevenz_opts=("" "-m0=lzma -ms=off" "-m0=copy" "-mx=0" "-mhc=off -ms=off")
for i in "${!sevenz_opts[@]}"; do
	(cd "$T/tree" && 7z a -snl -bd ${sevenz_opts[$i]} "$T/s$i.7z" . >/dev/null) ||
		die "7z a ${sevenz_opts[$i]} failed"
done
"$PYTHON" - "$T" <<'PY' || die "cannot make the hostile 7z archives"
import lzma, struct, sys, zlib
t = sys.argv[1]
def num7(v):  # 7z's number: the first byte's high bits count the bytes that follow
    first, mask, i = 0, 0x80, 0
    while i < 8 and v >= 1 << (7 * (i + 1)):
        first, mask, i = first | mask, mask >> 1, i + 1
    return bytes([first | (v >> (8 * i) if i < 8 else 0)]) + v.to_bytes(8, "little")[:i]
def sevenz(packed, hdr):
    start = struct.pack("<QQI", len(packed), len(hdr), zlib.crc32(hdr))
    return (b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start +
            packed + hdr)
plain = b"\x01\x05" + num7(99000000) + b"\x00\x00"
lz = b"\x5d\x00\x00\x10\x00"
packed = lzma.compress(plain, format=lzma.FORMAT_RAW, filters=[
    {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}])
open(t + "/h-files.7z", "wb").write(sevenz(b"", plain))
open(t + "/h-streams.7z", "wb").write(sevenz(b"0123456789", b"\x01\x04\x06" + num7(0) + num7(1) +
    b"\x09" + num7(10) + b"\x00\x07\x0b\x01\x00\x01\x01\x00\x0c" + num7(10) + b"\x00\x08\x0d" +
    num7(99000000) + b"\x00\x00\x00"))  # one folder of 99,000,000 files
open(t + "/h-encoded.7z", "wb").write(sevenz(packed, b"\x17\x06" + num7(0) + num7(1) +
    b"\x09" + num7(len(packed)) + b"\x00\x07\x0b\x01\x00\x01\x23\x03\x01\x01\x05" + lz +
    b"\x0c" + num7(len(plain)) + b"\x00\x00"))
# LZMA2 then Delta: decoded by LZMA2 alone the header is 1 file; through Delta, as libarchive
# decodes it, 4,000,000 empty ones (352 MiB of entries)
n = 4000000
y = (b"\x01\x02" + b"\x01\x00" * 127 + b"\x02\x02\x01\x05\x02\x00\x00\x05" + num7(n) +
     b"\x0e" + num7(n // 8) + b"\xff" * (n // 8) + b"\x00\x00")
x = bytes((y[i] - (y[i - 256] if i >= 256 else 0)) & 0xff for i in range(len(y)))
packed = lzma.compress(x, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2,
                                                            "dict_size": 1 << 20}])
open(t + "/h-delta.7z", "wb").write(sevenz(packed, b"\x17\x06" + num7(0) + num7(1) + b"\x09" +
    num7(len(packed)) + b"\x00\x07\x0b\x01\x00\x02\x21\x21\x01\x10\x31\x03\x00\x00\x01\xff" +
    b"\x0c" + num7(len(y)) + b"\x00\x00"))
PY
mkdir -p "$T/unpacked" && tar -xzf "$T/x.tar.gz" -C "$T/unpacked" || die "tar cannot unpack"
# A tar extended with tar -rf: f again, d a folder then a file, g a file then a folder.
(mkdir -p "$T/rf/d" && cd "$T/rf" && echo old >f && echo x >d/x && echo g >g &&
	tar -cf ../rf.tar f d g && echo new >f && rm -r d && echo now a file >d && rm g &&
	mkdir g && echo z >g/z && tar -rf ../rf.tar f d g) || die "cannot make rf.tar"
"$PYTHON" - "$FIXTURE" <<'PY' || die "cannot add rf.tar to the fixture"
import json, sys
fx = json.load(open(sys.argv[1]))
fx["archives"]["nested"]["members"].append({"path": "dist/rf.tar", "file": "rf.tar"})
for name in ["s%d.7z" % i for i in range(5)] + ["h-files.7z", "h-encoded.7z", "h-streams.7z",
                                                 "h-delta.7z"]:
    fx["archives"]["nested"]["members"].append({"path": "7z/" + name, "file": name})
json.dump(fx, open(sys.argv[1], "w"))
PY

start_sim
export GITLAB_TOKEN=glpat-sim-nested-7c1d
mnt=$T/mnt
mount_fs "$mnt" --cache-size 32M
job="$mnt/acme%2Fnested/-/jobs/3101"

check "diff -r between x.tar.gz#/ and what tar -xzf unpacks finds nothing" \
	diff -r "$job/x.tar.gz#/" "$T/unpacked"
check "a file inside reads whole and exact" cmp "$job/x.tar.gz#/data/blob.bin" "$T/tree/data/blob.bin"
check_eq "an executable stays executable" "OK 100755" \
	"$(sys stat "$job/x.tar.gz#/bin/run.sh" | cut -d' ' -f1,2)"
check_eq "a symlink is a symlink" "OK data/blob.bin" "$(sys readlink "$job/x.tar.gz#/link")"
check "the same through the ref" cmp "$mnt/acme%2Fnested/main/pack/x.tar.gz#/README" \
	"$T/tree/README"
check_eq "the inside is not listed beside the member" "7z bad.tar.gz bomb.tar.gz dist notes.txt odd.tar.gz odd.tar.gz# x.tar.gz" \
	"$(ls "$job" | paste -sd' ')"
check "cp -r of the job folder does not descend into #/" bash -c \
	"cp -r '$job' '$T/copy' && [ -z \"\$(find '$T/copy' -name '*#*' ! -name 'odd.tar.gz#')\" ] &&
	 cmp '$T/copy/x.tar.gz' '$T/x.tar.gz'"
check_eq "nesting: a.tar.gz#/inner.zip#/x" "inside a zip inside a tarball" \
	"$(cat "$job/dist/a.tar.gz#/inner.zip#/x")"
check_eq "and its folders list" "sub x" "$(ls "$job/dist/a.tar.gz#/inner.zip#/" | paste -sd' ')"
check_eq "a symlink leading out of the nested tree is refused" EACCES \
	"$(sys readlink "$job/dist/a.tar.gz#/up")"
check_eq "a tar extended with tar -rf shows the last copy, as tar -x does" "new" \
	"$(cat "$job/dist/rf.tar#/f")"
check_eq "a folder replaced by a file is that file" "now a file" "$(cat "$job/dist/rf.tar#/d")"
check_eq "with nothing left of the folder under it" ENOTDIR "$(sys stat "$job/dist/rf.tar#/d/x")"
check_eq "a file replaced by a folder lists" "z" "$(ls "$job/dist/rf.tar#/g" | paste -sd' ')"
check_eq "members inside carry no crc32 (not known)" "OK " \
	"$(sys listxattr "$job/x.tar.gz#/README")"
check_eq "members of the artifacts still do (and say what is cached)" \
	$'OK\nuser.artifactfs.cached\nuser.gitlab.crc32' "$(sys listxattr "$job/notes.txt")"
check_eq "a text file's #/ is ENOENT" ENOENT "$(sys stat "$job/notes.txt#")"
check_eq "and below it too" ENOENT "$(sys stat "$job/notes.txt#/x")"
check "quietly: no warning about it" bash -c "! grep -i 'notes.txt' '$T/daemon.log' | grep -vi debug"
check_eq "a real member whose name ends in '#' wins" "a real member whose name ends in #" \
	"$(cat "$job/odd.tar.gz#")"
check_eq "the tarball inside is not a folder there" ENOTDIR "$(sys listdir "$job/odd.tar.gz#")"

check_eq "the tarball holding a zip bomb lists" "ok.txt zbomb.zip" \
	"$(ls "$job/bomb.tar.gz#/" | paste -sd' ')"
check_eq "the bomb inside it stops cleanly with EIO" EIO \
	"$(sys listdir "$job/bomb.tar.gz#/zbomb.zip#")"
check_eq "and again, from what was remembered" EIO "$(sys stat "$job/bomb.tar.gz#/zbomb.zip#/zeros")"
check_eq "with one log line" 1 "$(grep -c 'decompression bomb' "$T/daemon.log")"
check "the mount stays usable" cmp "$job/bomb.tar.gz#/ok.txt" - <<<"ok"
check "and so do the other nested trees" cmp "$job/x.tar.gz#/README" "$T/tree/README"

check "cat of a file in a tarball with a flipped byte fails" \
	bash -c "! cat '$job/bad.tar.gz#/f' > '$T/bad.out'"
check "and prints nothing, never the flipped byte" test ! -s "$T/bad.out"
check_eq "with one log line naming it" 1 "$(grep -c 'bad.tar.gz.*damaged.*check' "$T/daemon.log")"
# The damage is the archive's own (the member's bytes read fine): remembered, never unpacked again
check_eq "a lookup after it fails at once" EIO "$(sys stat "$job/bad.tar.gz#/f")"
check_eq "and so does a listing" EIO "$(sys listdir "$job/bad.tar.gz#")"
check_eq "from what was remembered: no second pass, no second log line" 1 \
	"$(grep -c 'bad.tar.gz.*damaged.*check' "$T/daemon.log")"

for i in "${!sevenz_opts[@]}"; do
	check "7z a ${sevenz_opts[$i]}: diff -r with the tree finds nothing" \
		diff -r "$job/7z/s$i.7z#/" "$T/tree"
done
check_eq "a symlink inside a 7z is a symlink" "OK data/blob.bin" "$(sys readlink "$job/7z/s0.7z#/link")"
for h in h-files h-encoded h-streams; do
	check_eq "$h.7z, declaring 99,000,000 files, does not list: EIO" EIO \
		"$(sys listdir "$job/7z/$h.7z#")"
	check "and cat of a file in it fails" bash -c "! cat '$job/7z/$h.7z#/x' 2>/dev/null"
done
check_eq "each with one log line saying why" 3 \
	"$(grep -c '7z archive .*h-.*left unread: .* declares too many files' "$T/daemon.log")"
check_eq "h-delta.7z, whose header LZMA2 then Delta decode to 4,000,000 files, does not list" \
	EIO "$(sys listdir "$job/7z/h-delta.7z#")"
check_eq "its log line says why" 1 \
	"$(grep -c '7z archive .*h-delta.*left unread: .* other than LZMA' "$T/daemon.log")"
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$LAST_PID/status")
check "the daemon's memory stayed small: VmHWM ${hwm} kB < 300 MiB" test "$hwm" -lt $((300 * 1024))
check "the mount stays usable after them" cmp "$job/7z/s1.7z#/README" "$T/tree/README"

unmount_fs "$mnt"

# A cache too small for both the artifacts and the unpacked blob (a quarter of it at most):
# reading the artifacts evicts the blob's blocks, which are got again by unpacking up to them, and the file still reads exact.
mount_fs "$mnt" --cache-size 6M
big="$mnt/acme%2Fnested/main/big" # under a ref: no kernel page cache kept across opens
check "a file inside a tarball reads exact" cmp "$big/big.tar#/big.bin" "$T/big.bin"
check "the artifacts read whole, evicting the unpacked blob" cmp "$big/pad.bin" "$T/pad.bin"
check "the file inside still reads exact, unpacked again" cmp "$big/big.tar#/big.bin" "$T/big.bin"
unmount_fs "$mnt"

# The unpacked blob takes what it holds, not the cache's size (its decompression budget).
rm -rf "$T/cache"
mount_fs "$mnt" --cache-size 1T
check "a tarball inside reads under a 1T cache" cmp "$job/dist/a.tar.gz#/ok" - <<<"ok"
check_eq "its blob's files are sized by what they hold" "OK" "$(find "$T/cache" \
	-name '*-n????????????????.*.afs' -printf '%s\n' | awk '{s += $1}
	END {print (NR > 0 && s < 4194304) ? "OK" : NR " files of " s " bytes"}')"
unmount_fs "$mnt"
finish
