#!/usr/bin/env bash
# --metrics-file: the mount's counters for node_exporter's textfile collector, in the Prometheus
# text format, written before mounting and once more at unmount; unsafe places are refused.
source "$(dirname "$0")/lib.sh"

start_sim --storage redirect # archives in object storage: its bytes are counted apart
export GITLAB_TOKEN=$(fixture_token maintainer)
mnt=$T/mnt
app="acme%2Fplatform%2Fapp"
mkdir -m 700 "$T/prom"
prom=$T/prom/artifactfs.prom

mount_fs "$mnt" --metrics-file "$prom"
check "the file is there once mounted" test -s "$prom"
check "a file reads" bash -c "cat '$mnt/$app/main/build/bin/hello' >/dev/null"
unmount_fs "$mnt"
check "the file parses as Prometheus text" "$PYTHON" - "$prom" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
assert text.endswith("\n"), "no final newline"
helped, typed, values = set(), {}, {}
for line in text.splitlines():
    m = re.fullmatch(r"# HELP (\w+) .+", line)
    if m:
        helped.add(m.group(1)); continue
    m = re.fullmatch(r"# TYPE (\w+) (counter|gauge)", line)
    if m:
        typed[m.group(1)] = m.group(2); continue
    m = re.fullmatch(r'(\w+)(\{\w+="[^"]*"(?:,\w+="[^"]*")*\})? (\d+)', line)
    assert m, "not a sample line: %r" % line
    assert m.group(1) in helped and m.group(1) in typed, "no HELP/TYPE for %s" % m.group(1)
    values[m.group(1) + (m.group(2) or "")] = int(m.group(3))
assert values["artifactfs_gitlab_bytes_total"] > 0, values
assert values["artifactfs_storage_bytes_total"] > 0, values
assert values["artifactfs_storage_requests_total"] > 0, values
assert values["artifactfs_archive_bytes_total"] > 0, values
assert values['artifactfs_http_requests_total{outcome="2xx"}'] > 0, values
PY
check "no temporary file is left" test ! -e "$prom.tmp"
check_eq "the bytes storage sent are counted as the simulator saw them" \
	"$(simlog bytes --host '^127\.0\.0\.2:')" \
	"$(awk '/^artifactfs_storage_bytes_total /{print $2}' "$prom")"

# A folder anyone may write (not sticky): the file is refused, with one line, before mounting.
mkdir -m 777 "$T/open"
chmod 777 "$T/open"
mkdir -p "$mnt"
check "a metrics file in a folder others may write is refused" bash -c \
	"! '$ARTIFACTFS_BIN' '$URL' '$mnt' -f --cache-dir '$T/cache' --metrics-file '$T/open/m.prom' \
		2>'$T/refused.err'"
check "with one line saying why" \
	grep -q "cannot use metrics file .*open/m.prom.tmp: its folder can be written by others" \
	"$T/refused.err"
finish
