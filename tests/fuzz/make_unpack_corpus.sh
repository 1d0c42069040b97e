#!/usr/bin/env bash
# Writes the seed corpus of fuzz_unpack: one tiny archive per format read behind "#/", each
# holding a file, a folder, a symlink and a hard link. Run again only to change the seeds.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)/corpus/fuzz_unpack
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mkdir -p t/d
echo hi > t/d/f
ln -s d/f t/l
ln t/d/f t/h
find t -exec touch -h -d @1600000000 {} +
tar -C t -czf "$out/seed.tar.gz" .
tar -C t -cJf "$out/seed.tar.xz" .
tar -C t --zstd -cf "$out/seed.tar.zst" .
tar -C t -cjf "$out/seed.tar.bz2" .
(cd t && zip -qry "$out/seed.zip" . && find . | cpio -o -H newc --quiet > "$out/seed.cpio")
(cd t/d && ar rcU "$out/seed.a" f)
(cd t && 7z a -snl -bd "$out/seed.7z" . >/dev/null)
