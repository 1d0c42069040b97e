"""Queries radosgw's log (tests/ceph/ceph-up.sh's RGW_LOG) for the e2e tests, as simlog.py does
the simulator's: radosgw is the object store of the simulator's s3 mode.

usage: rgwlog.py LOG count|bytes|show [--from OFFSET] [--method M] [--path REGEX] [--status N]
       rgwlog.py LOG header NAME [--from OFFSET] [--except-value REGEX]
  count: matching requests; bytes: body bytes they sent; show: one line each;
  header: requests that carried header NAME (needs `debug rgw = 20`, which logs each request's
  headers as HTTP_<NAME>=...; the value is never printed), but not those whose value matches
  --except-value (the simulator's own uploads, signed with its S3 key). --from: a byte offset into
  LOG (what `stat -c %s` said before), to look only at what came after.
"""
import argparse
import re

# beast's access line (debug rgw >= 1):
# beast: 0x..: 127.0.0.1 - user [date] "GET /bucket/key?query HTTP/1.1" 206 10 - "ua" bytes=0-9 latency=..
ACCESS = re.compile(r' beast: \S+ \S+ - \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[\d.]+" (\d+) (\d+) ')


def lines(path, start):
    with open(path, "rb") as f:
        f.seek(start)
        for raw in f:
            yield raw.decode("utf-8", "replace")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("what", choices=["count", "bytes", "show", "header"])
    p.add_argument("name", nargs="?")
    p.add_argument("--from", dest="start", type=int, default=0)
    p.add_argument("--method")
    p.add_argument("--path")
    p.add_argument("--status", type=int)
    p.add_argument("--except-value")
    a = p.parse_args()
    if a.what == "header":
        if not a.name or not re.fullmatch(r"[A-Za-z0-9-]+", a.name):
            p.error("header needs a header name")
        key = " HTTP_%s=" % a.name.upper().replace("-", "_")
        n = 0
        for line in lines(a.log, a.start):
            at = line.find(key)
            if at >= 0 and not (a.except_value and
                                re.match(a.except_value, line[at + len(key):])):
                n += 1
        print(n)
        return
    n = total = 0
    for line in lines(a.log, a.start):
        m = ACCESS.search(line)
        if not m:
            continue
        method, path, status, sent = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if a.method and method != a.method:
            continue
        if a.path and not re.search(a.path, path.split("?")[0]):
            continue
        if a.status is not None and status != a.status:
            continue
        n += 1
        total += sent
        if a.what == "show":
            print(method, path.split("?")[0], status, sent)
    if a.what == "count":
        print(n)
    elif a.what == "bytes":
        print(total)


if __name__ == "__main__":
    main()
