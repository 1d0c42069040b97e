"""Queries the simulator's request log (JSON lines) for the e2e tests.

usage: simlog.py LOG count|bytes|show [--method M] [--path REGEX] [--host REGEX] [--status N]
                                        [--auth] [--no-auth] [--multi-range]
  count: matching requests; bytes: body bytes they sent; show: one line each.
"""
import argparse
import json
import re


def matches(r, a):
    if a.method and r.get("method") != a.method:
        return False
    if a.path and not re.search(a.path, r.get("path", "")):
        return False
    if a.host and not re.search(a.host, r.get("host", "")):
        return False
    if a.status is not None and r.get("status") != a.status:
        return False
    if a.auth and not r.get("auth"):
        return False
    if a.no_auth and r.get("auth"):
        return False
    if a.multi_range and "," not in (r.get("range") or ""):
        return False
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("what", choices=["count", "bytes", "show"])
    p.add_argument("--method")
    p.add_argument("--path")
    p.add_argument("--host")
    p.add_argument("--status", type=int)
    p.add_argument("--auth", action="store_true", help="only requests that carried a credential")
    p.add_argument("--no-auth", action="store_true")
    p.add_argument("--multi-range", action="store_true",
                   help="only requests whose Range header asked several ranges")
    a = p.parse_args()
    rows = []
    try:
        with open(a.log, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    if matches(r, a):
                        rows.append(r)
    except FileNotFoundError:
        pass
    if a.what == "count":
        print(len(rows))
    elif a.what == "bytes":
        print(sum(int(r.get("bytes") or 0) for r in rows))
    else:
        for r in rows:
            print(r.get("method"), r.get("host"), r.get("path"), r.get("status"),
                  r.get("range"), ",".join(r.get("auth") or []))


main()
