#!/usr/bin/env bash
# Emptying the cache while mounted (issue 13): reading user.artifactfs.drop_cache on the mount
# point evicts every cached archive no call is using, so df and the folder shrink at once, and a
# file held open reads on exactly (its next read fetches again). Reading, not setting: the mount
# is read-only, and the kernel refuses setxattr there.
source "$(dirname "$0")/lib.sh"

start_sim
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
sim_admin pipeline '{"project": 101, "ref": "main", "jobs": [{"name": "blob", "archive":
	{"members": [{"path": "big.bin", "random": 4194304, "seed": 7, "compress": "stored"}]}}]}'
mount_fs "$mnt"
file="$mnt/acme%2Fplatform%2Fapp/main/blob/big.bin"
stat_of() { # stat_of NAME: a counter of user.artifactfs.stats
	getfattr --only-values -n user.artifactfs.stats "$mnt" | awk -v k="$1" '$1 == k { print $2 }'
}
cat "$file" >/dev/null || die "cannot read $file"
cat "$mnt/acme%2Fplatform%2Fapp/main/build/lib/hello.c" >/dev/null
used=$(stat_of cache_used_bytes)
check "reading filled the cache (${used} bytes)" test "$used" -ge 4194304
df_used=$(df --output=used -B1 "$mnt" | tail -1)
check "df shows it" test "$df_used" -ge 4194304

"$PYTHON" - "$file" "$mnt" "$URL" "$GITLAB_TOKEN" >"$T/drop.out" 2>&1 <<'PY'
import os, sys, urllib.request
path, mnt, url, token = sys.argv[1:5]
want = urllib.request.urlopen(urllib.request.Request(
    url + "/api/v4/projects/101/jobs/artifacts/main/raw/big.bin?job=blob",
    headers={"PRIVATE-TOKEN": token}), timeout=10).read()
fd = os.open(path, os.O_RDONLY)
got = os.pread(fd, 1 << 20, 0)
stats = os.getxattr(mnt, "user.artifactfs.drop_cache").decode()
used = next(int(l.split()[1]) for l in stats.splitlines() if l.startswith("cache_used_bytes "))
print("used_after_drop", used)
# read on past what the kernel may hold: the rest comes through the daemon again
while len(got) < len(want):
    chunk = os.pread(fd, 1 << 16, len(got))
    if not chunk:
        break
    got += chunk
print("open_file_exact", got == want)
PY
check_eq "the drop emptied the cache (no call was running)" "used_after_drop 0" \
	"$(grep used_after_drop "$T/drop.out")"
check_eq "a file held open across the drop reads on exactly" "open_file_exact True" \
	"$(grep open_file_exact "$T/drop.out")"
grep -q Traceback "$T/drop.out" && sed 's/^/    /' "$T/drop.out"
data=$(find "$T/cache" -name '*.afs' -printf '%b\n' | awk '{ s += $1 * 512 } END { print s + 0 }')
used=$(stat_of cache_used_bytes)
check "the account follows the folder after the drop and the re-read ($used of $data bytes)" \
	test "$used" -gt 0 -a "$used" -ge $((data - 65536)) -a "$used" -le $((data + 65536))
check "the drop is not listed, so getfattr -d never triggers it" \
	bash -c "! getfattr -d -m - '$mnt' 2>/dev/null | grep -q drop_cache"
check "cmp after the drop: exact" cmp <(cat "$file") <(cat "$file")
finish
