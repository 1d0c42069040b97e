#!/usr/bin/env python3
"""Writes the hostile seeds of fuzz_unpack and fuzz_zipindex (tests/fuzz/corpus/*/hostile-*):
the red team's inputs for issue 18, each under 64 KiB. gzip with header fields, several or empty
members, trailing zeros or garbage, bad CRC or length, truncation; xz and bzip2 damaged or
followed by garbage; ten layers of gzip; tars superseding entries, hard links to later entries,
to links, to themselves, to folders; symlink loops; names with '#' and '%2E'; zips with data
descriptors whose sizes lie (central directory or descriptor), read seekable or streamed; and
bombs (gzip, xz, bzip2, deflate, overlapping zip entries, 100 GiB sparse holes); cpio -H crc,
good (also gzip'ed) and with a wrong sum (libarchive drops the sum: unpack.c checks it); 7z
headers declaring 99,000,000 files (plain or LZMA-encoded), or a folder of 99,000,000 files,
or an encoded header of
4 GB or coded with BCJ (libarchive allocates what a header declares: unpack.c charges it); layers
of compression whose headers declare a large window or dictionary (zstd in 6 bytes, xz's LZMA2 of
1.5 GiB, lzip of 128 and 512 MiB, .lzma of 128 MiB and 4 GiB: unpackstream.c charges them before
their decoders allocate); a newc cpio header declaring a name of 3.5 GiB. Run again only to
change the seeds:
python3 tests/fuzz/make_hostile_corpus.py"""
import bz2, gzip, io, lzma, os, random, struct, subprocess, tarfile, tempfile, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
UNPACK = os.path.join(HERE, "corpus", "fuzz_unpack")
ZIPINDEX = os.path.join(HERE, "corpus", "fuzz_zipindex")


def w(name, data):
    assert len(data) < 65536, (name, len(data))
    with open(os.path.join(UNPACK, "hostile-" + name), "wb") as f:
        f.write(data)
    if name.endswith(".zip"):
        with open(os.path.join(ZIPINDEX, "hostile-" + name), "wb") as f:
            f.write(data)


def tar(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg))
                continue
            ti.type = {"s": tarfile.SYMTYPE, "h": tarfile.LNKTYPE, "d": tarfile.DIRTYPE}[kind]
            ti.linkname = arg or ""
            tf.addfile(ti)
    return b.getvalue()


def gz(data):
    return gzip.compress(data, 9, mtime=0)


def gz_fields(data):  # FTEXT clear, FHCRC, FEXTRA, FNAME, FCOMMENT
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    hdr = bytearray(b"\x1f\x8b\x08\x1e\0\0\0\0\0\x03")
    extra = b"AB\x04\x00xyzw"
    hdr += struct.pack("<H", len(extra)) + extra + b"name.tar\0a comment\0"
    hdr += struct.pack("<H", zlib.crc32(bytes(hdr)) & 0xFFFF)
    return bytes(hdr) + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def zip_dd(data, lie_cd=0, lie_dd=0, method=0):  # one member with a data descriptor
    crc = zlib.crc32(data)
    comp = data
    if method == 8:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        comp = c.compress(data) + c.flush()
    name = b"f.txt"
    lh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 8, method, 0, 0, 0, 0, 0, len(name), 0)
    dd = struct.pack("<IIII", 0x08074B50, crc, len(comp) + lie_dd, len(data) + lie_dd)
    cd = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 8, method, 0, 0, crc,
                     len(comp) + lie_cd, len(data) + lie_cd, len(name), 0, 0, 0, 0, 0, 0)
    body = lh + name + comp + dd
    cd += name
    return body + cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(cd), len(body), 0)


def zip_overlap(n):  # n central directory entries over one local file (a "better zip bomb")
    data = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp = c.compress(data) + c.flush()
    crc = zlib.crc32(data)
    body = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(comp), len(data), 1,
                       0) + b"k" + comp
    cds = b""
    for i in range(n):
        name = b"f%02d" % i
        cds += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(comp),
                           len(data), len(name), 0, 0, 0, 0, 0, 0) + name
    return body + cds + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cds), len(body), 0)


base = tar([("a.txt", "f", b"alpha\n"), ("d", "d", None), ("d/b.txt", "f", b"beta\n" * 100)])
w("gz-fields.tar.gz", gz_fields(base))
w("gz-two-members.tar.gz", gz(base[:700]) + gz(base[700:]))
w("gz-empty-member.tar.gz", gz(base[:512]) + gz(b"") + gz(base[512:]))
w("gz-trailing-garbage.tar.gz", gz(base) + b"GARBAGE")
w("gz-trailing-zeros.tar.gz", gz(base) + bytes(1000))
w("gz-trailing-1f8b.tar.gz", gz(base) + b"\x1f\x8b")
for name, at in (("gz-bad-crc.tar.gz", -5), ("gz-bad-isize.tar.gz", -1)):
    g = bytearray(gz(base))
    g[at] ^= 1
    w(name, bytes(g))
w("gz-truncated.tar.gz", gz(base)[:-3])
w("gz-empty-members.gz", gz(b"") * 2000)
layers = base
for _ in range(10):
    layers = gz(layers)
w("gz-10-layers.tar.gz", layers)
w("layers.tar.gz.xz.gz", gz(lzma.compress(gz(base))))
big = tar([("x", "f", random.Random(1).randbytes(20000))])
w("tar-truncated.tar", big[:5000])
w("tar-truncated.tar.xz", lzma.compress(big[:5000]))
x = bytearray(lzma.compress(base))
x[-13] ^= 1
w("xz-bad-check.tar.xz", bytes(x))
w("xz-trailing-garbage.tar.xz", lzma.compress(base) + b"garbage!")
w("bz2-trailing-garbage.tar.bz2", bz2.compress(base) + b"garbage!")
w("tar-supersede.tar", tar([("f", "f", b"old\n"), ("h", "h", "f"), ("f", "f", b"new!\n"),
                            ("h2", "h", "f")]))
w("tar-hardlink-later.tar", tar([("h", "h", "t"), ("t", "f", b"target\n")]))
w("tar-hardlink-chain.tar", tar([("t", "f", b"target\n"), ("h1", "h", "t"), ("h2", "h", "h1")]))
w("tar-hardlink-self.tar", tar([("h", "h", "h"), ("d", "d", None), ("hd", "h", "d")]))
w("tar-symlink-loop.tar", tar([("a", "s", "b"), ("b", "s", "a"), ("c", "s", "c"), ("d", "d", None),
                               ("d/up", "s", "../d/up"), ("e", "s", "d/../e")]))
w("tar-names.tar", tar([("x#", "f", b"hash\n"), ("x.zip#", "d", None), ("x.zip#/y", "f", b"y\n"),
                        ("a%2Elog.log", "f", b"pct\n"), ("a.log", "f", b"log\n"), ("#", "f", b"h\n"),
                        ("b/#/c", "f", b"c\n"), ("..#", "f", b"dd\n")]))
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("in.txt", "inside\n" * 50)
w("zip-in.tar.xz", lzma.compress(tar([("inner.zip", "f", inner.getvalue())])))
w("zip.xz", lzma.compress(inner.getvalue()))
payload = b"data descriptor payload\n" * 20
w("zip-dd-ok.zip", zip_dd(payload))
w("zip-dd-cd-lies.zip", zip_dd(payload, lie_cd=5))
w("zip-dd-dd-lies.zip", zip_dd(payload, lie_dd=-3))
w("zip-dd-deflate-cd-lies.zip", zip_dd(payload, lie_cd=7, method=8))
w("zip-dd-cd-lies.zip.xz", lzma.compress(zip_dd(payload, lie_cd=5)))
w("zip-dd-dd-lies.zip.gz", gz(zip_dd(payload, lie_dd=-3)))
zb = bytearray(zip_dd(payload))
zb[zb.find(b"PK\x01\x02") + 16] ^= 1
w("zip-cd-bad-crc.zip", bytes(zb))
zeros = bytes(20 << 20)
w("bomb-gz.tar.gz", gz(tar([("z", "f", zeros)])))
w("bomb-gz-after-end.tar.gz", gz(tar([("a", "f", b"a\n")]) + zeros))
w("bomb-xz.tar.xz", lzma.compress(tar([("z", "f", zeros)])))
w("bomb-bz2.tar.bz2", bz2.compress(tar([("z", "f", zeros)]), 9))
w("bomb-gz-members.gz", gz(bytes(1 << 20)) * 20)
b = io.BytesIO()
with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("z", zeros)
w("bomb-zip.zip", b.getvalue())
w("bomb-zip-overlap.zip", zip_overlap(50))
with tempfile.TemporaryDirectory() as t:  # 100 GiB of hole, then a line
    with open(os.path.join(t, "hole"), "wb") as f:
        f.truncate(100 << 30)
        f.seek(0, 2)
        f.write(b"tail\n")
    for name, fmt in (("bomb-sparse-gnu.tar", []),
                      ("bomb-sparse-pax.tar", ["--format=pax", "--sparse-version=1.0"])):
        subprocess.run(["tar", "--sparse", *fmt, "-C", t, "-cf", os.path.join(t, name), "hole"],
                       check=True)
        with open(os.path.join(t, name), "rb") as f:
            w(name, f.read())
with tempfile.TemporaryDirectory() as t:  # cpio -H crc: a per-file sum libarchive drops
    os.makedirs(os.path.join(t, "d"))
    with open(os.path.join(t, "d", "f"), "wb") as f:
        f.write(random.Random(2).randbytes(3000))
    os.link(os.path.join(t, "d", "f"), os.path.join(t, "h"))
    os.symlink("d/f", os.path.join(t, "l"))
    good = subprocess.run(["cpio", "-o", "-H", "crc", "--quiet"], cwd=t, check=True,
                          input=b"d\nd/f\nh\nl\n", capture_output=True).stdout
    w("cpio-crc.cpio", good)
    w("cpio-crc.cpio.gz", gz(good))  # the sums read back from what the format read
    bad = bytearray(good)
    bad[bad.find(random.Random(2).randbytes(3000)[:64]) + 10] ^= 1
    w("cpio-crc-bad-sum.cpio", bytes(bad))


def num7(v):  # 7z's number: the first byte's high bits count the bytes that follow
    first, mask, i = 0, 0x80, 0
    while i < 8 and v >= 1 << (7 * (i + 1)):
        first |= mask
        mask >>= 1
        i += 1
    if i < 8:
        first |= v >> (8 * i)
    return bytes([first]) + v.to_bytes(8, "little")[:i]


def sevenz(packed, hdr):
    start = struct.pack("<QQI", len(packed), len(hdr), zlib.crc32(hdr))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + packed + hdr


w("7z-many-files.7z", sevenz(b"", b"\x01\x05" + num7(99000000) + b"\x00\x00"))
w("7z-many-streams.7z", sevenz(b"0123456789", b"\x01\x04\x06" + num7(0) + num7(1) + b"\x09" +
                               num7(10) + b"\x00\x07\x0b\x01\x00\x01\x01\x00\x0c" + num7(10) +
                               b"\x00\x08\x0d" + num7(99000000) + b"\x00\x00\x00"))
lz = b"\x5d\x00\x00\x10\x00"  # LZMA properties: lc 3, lp 0, pb 2, a 1 MiB dictionary
for name, coder, decoded in (("7z-encoded-huge.7z", b"\x23\x03\x01\x01\x05" + lz, 4000000000),
                             ("7z-encoded-bcj.7z", b"\x04\x03\x03\x01\x03", 100)):
    w(name, sevenz(lz + b"packed", b"\x17\x06" + num7(0) + num7(1) + b"\x09" + num7(11) +
                   b"\x00\x07\x0b\x01\x00\x01" + coder + b"\x0c" + num7(decoded) + b"\x00\x00"))
plain = b"\x01\x05" + num7(99000000) + b"\x00\x00"
packed = lzma.compress(plain, format=lzma.FORMAT_RAW, filters=[
    {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}])
w("7z-encoded-many-files.7z", sevenz(packed, b"\x17\x06" + num7(0) + num7(1) + b"\x09" +
                                     num7(len(packed)) + b"\x00\x07\x0b\x01\x00\x01\x23\x03\x01\x01\x05" +
                                     lz + b"\x0c" + num7(len(plain)) + b"\x00\x00"))

# layers whose headers declare large decoder memory: the data is made with a 1 MiB dictionary
w("zstd-window-104m.zst", b"\x28\xb5\x2f\xfd\x00\x85")
w("zstd-window-3g.zst", b"\x28\xb5\x2f\xfd\x00\xaf")
small = tar([("f", "f", b"hello\n" * 100)])
raw = lzma.compress(small, format=lzma.FORMAT_RAW, filters=[
    {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}])
for name, dict_byte in (("lzip-dict-128m.tar.lz", 27), ("lzip-dict-512m.tar.lz", 29)):
    w(name, b"LZIP\x01" + bytes([dict_byte]) + raw +
      struct.pack("<IQQ", zlib.crc32(small), len(small), 6 + len(raw) + 20))
for name, dict_size in (("lzma-dict-128m.tar.lzma", 1 << 27), ("lzma-dict-4g.tar.lzma", 0xffffffff)):
    alone = bytearray(lzma.compress(small, format=lzma.FORMAT_ALONE, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20}]))
    alone[1:5] = struct.pack("<I", dict_size)
    w(name, bytes(alone))
xz = bytearray(lzma.compress(small, format=lzma.FORMAT_XZ, filters=[
    {"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]))
size = (xz[12] + 1) * 4
xz[16] = 37  # LZMA2's dictionary: 3 << 29, 1.5 GiB; the block header's CRC-32 made again
xz[12 + size - 4:12 + size] = struct.pack("<I", zlib.crc32(bytes(xz[12:12 + size - 4])))
w("xz-dict-1536m.txz", bytes(xz))

# a newc cpio header declaring a name of 3.5 GiB, alone and under gzip (libarchive allocates a
# name's declared size before checking it: unpackstream.c refuses the header first)
newc = (b"070701" + b"00000001000081a40000000000000000" + b"000000010000000000000005" +
        b"0" * 32 + b"E0000000" + b"00000000" + bytes(4096))
w("cpio-name-3g.cpio", newc)
w("cpio-name-3g.cpio.gz", gz(newc))
