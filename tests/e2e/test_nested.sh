#!/usr/bin/env bash
# Archives inside artifacts: "<member>#/" is the inside of a tarball or zip member, through
# libarchive, lookup only. Made here with tar and zip, put in the artifacts by the simulator from
# files beside this test's own fixture (tests/sim/fixtures/nested.json): a tarball compared with
# what tar itself unpacks, a zip inside a tarball, a zip bomb inside a tarball (the cache is 32M,
# the decompression budget a quarter of it), a tarball with a flipped byte, a text file, and a
# real member whose name ends in '#'.
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
mkdir -p "$T/unpacked" && tar -xzf "$T/x.tar.gz" -C "$T/unpacked" || die "tar cannot unpack"
# A tar extended with tar -rf: f again, d a folder then a file, g a file then a folder.
(mkdir -p "$T/rf/d" && cd "$T/rf" && echo old >f && echo x >d/x && echo g >g &&
	tar -cf ../rf.tar f d g && echo new >f && rm -r d && echo now a file >d && rm g &&
	mkdir g && echo z >g/z && tar -rf ../rf.tar f d g) || die "cannot make rf.tar"
"$PYTHON" - "$FIXTURE" <<'PY' || die "cannot add rf.tar to the fixture"
import json, sys
fx = json.load(open(sys.argv[1]))
fx["archives"]["nested"]["members"].append({"path": "dist/rf.tar", "file": "rf.tar"})
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
check_eq "the inside is not listed beside the member" "bad.tar.gz bomb.tar.gz dist notes.txt odd.tar.gz odd.tar.gz# x.tar.gz" \
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
