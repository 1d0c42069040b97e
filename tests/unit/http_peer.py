#!/usr/bin/python3
"""A tiny loopback HTTP peer for tests/unit/test_http.c (stdlib only).

Usage: http_peer.py READY_FILE LOG_FILE [LIFETIME_S [CERT_FILE KEY_FILE]]

Listens on 127.0.0.1 (port 0: PORT1), on 127.0.0.2 (a second origin for foreign redirects, on
PORT1 too when it is free: PORT2) and on 127.0.0.1 again (PORT3: the same host on another port),
writes "PORT1 PORT2 PORT3\\n" to READY_FILE (atomically, by rename) once all listen, and appends
one line per request to LOG_FILE:
  "<scheme>://<host>:<port> <METHOD> <path?query> token=<yes|no> range=<value|->
   pin=<If-Range value|-> inm=<yes|no>" (inm: whether an If-None-Match came).
With CERT_FILE and KEY_FILE it first makes a throwaway self-signed certificate for IP 127.0.0.1
there (openssl), and PORT1 then speaks https as well as http: a connection that opens with a TLS
handshake is served over TLS (the same host and port, another scheme; CERT_FILE is the CA).
Exits by itself after LIFETIME_S seconds (default 60) so a crashed test leaves nothing behind.

Routes (an /api/v4 prefix is ignored). Paths that count attempts keep one counter per full path:
  /ok                       200 "ok"
  /status/N                 status N with a short JSON body
  /redirect/other/N         N (302, 303, 307...) to http://127.0.0.2:PORT2/landing
  /redirect/port            302 to http://127.0.0.1:PORT3/landing (same host, another port)
  /redirect/scheme          302 to /api/v4/landing on the same host and port with the other scheme
                            (http -> https, https -> http)
  /redirect/same            302 to a relative Location on the same origin (/api/v4/landing)
  /redirect/relative        302 to "landing" (resolved against the request path)
  /redirect/loop            302 to itself, forever
  .../landing               200 "landed" (any path ending so)
  /429/KEY                  first 429 + Retry-After: 1, then 200 "ok"
  /429reset/KEY             first 429 + RateLimit-Reset: now+1, then 200 "ok"
  /503/KEY                  first 503, then 200 "ok"
  /bare429-for/S/KEY        a bare 429 (no Retry-After, no RateLimit-Reset: GitLab's application
                            limits) for S seconds after the first request, then like /data
  /huge-retry-after         429 + Retry-After: 99999999999999999999, always
  /huge-reset               429 + RateLimit-Reset: 9223372036854775807, always
  /echo-token               500 whose body repeats the request's token header, as some proxies'
                            error pages do
  /echo-token-at/N          500 whose body repeats the token header after N bytes of padding,
                            so that it straddles where a log line's excerpt is cut
  /redirect-token-at/N      302 to /status/500 on the same origin, the token in the query after
                            N bytes of padding (a misconfigured proxy), straddling a log cut
  /redirect/leak            302 to 127.0.0.2 with the token in the Location's path; 500 there
  /slow-headers             sleeps 5 s before answering 200 "ok"
  /paged-relative?page=N    JSON [N]; a relative Link rel=next (/api/v4/paged-relative?page=N+1)
  /data                     1000 bytes (byte i = i % 251), Range honoured (206/416), Accept-Ranges
  /norange                  the same 1000 bytes, Range ignored (200), no Accept-Ranges
  /overlong                 206 with the Content-Range asked for, and 50 bytes 0xAA past its end
  /weak-moved               like /data with the constant weak ETag most GitLab servers send
                            (W/"12ae32cb1ec02d01eda3581b127c1fee") and Last-Modified "Sat, 21 Nov
                            2026 08:00:00 GMT" (the archive after the ref moved): an If-Range
                            with another date or with the weak tag fails (Go's checkIfRange), so
                            the whole body comes with 200
  /truncate-once/KEY        like /data, but the first answer stops after 400 body bytes
  /truncate-once-norange/KEY  like /norange, but the first answer stops after 400 body bytes
  /truncate-always          Content-Length 1000, 10 bytes, close
  /stall                    Content-Length 1000, 10 bytes, then silence for 30 s
  /hold                     Content-Length 1000, 10 bytes, then silence until /release was
                            asked (at most 50 s), then the rest: a test that releases it only
                            after its call returned hangs, rather than passes, when a stop fails
  /release                  200 "released": every /hold, now and later, goes on
  /busy                     503 + Retry-After: 30, always (a retry wait within the budget)
  /paged-link?page=N        JSON [N]; Link rel=next to a foreign host while N < 3
  /paged-xnext?page=N       JSON [N]; X-Next-Page N+1 while N < 3, then empty
  .../blob                  like /data (the object store behind a redirect)
  /presigned/KEY            302 to http://127.0.0.2:PORT2/store/KEY/blob with an S3-style signed
                            query (X-Amz-Date now, X-Amz-Expires 600, X-Amz-Signature SECRETSIG)
  /store/refuse-2nd/blob    the 2nd request 403 (a URL past its life), every other like /data
  /store/deny/blob          403 always
  /user, /job, /projects    for gitlab_check (/job answers the job token glcbt-running): a JSON object, a 401, an HTML page
  /projects/group%2Fapp/... a small GitLab for test_gitlab.c (see GITLAB below; group%2Fres
                            for by-ref resolution): matched on the
                            raw path (so escaping shows) and the decoded query
"""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZE = 1000
DATA = bytes(i % 251 for i in range(SIZE))
WEAK_ETAG = 'W/"12ae32cb1ec02d01eda3581b127c1fee"'  # Rack::ETag of an empty body (GITLAB-API.md)
TOKEN_HEADERS = ("private-token", "job-token", "authorization")

# Project group/app (id 7): ref feature/x's newest successful pipeline 50 has child 60 (same
# project), whose child is 61; bridge to pipeline 70 belongs to project 8. Job ids name them.
def job(jid, name, archive=True, old_style=False, reports=()):
    arts = [{"file_type": r, "size": 10, "filename": r, "file_format": "gzip"} for r in reports]
    out = {"id": jid, "name": name, "status": "success", "ref": "feature/x",
           "pipeline": {"id": jid // 10, "project_id": 7}, "artifacts_expire_at": None}
    if archive and not old_style:
        arts.insert(0, {"file_type": "archive", "size": 1000, "filename": "artifacts.zip",
                        "file_format": "zip"})
    if archive:
        out["artifacts_file"] = {"filename": "artifacts.zip", "size": 1000}
    out["artifacts"] = arts
    return out


P = "/projects/group%2Fapp"
GITLAB = {
    P + "/pipelines": lambda q: (
        [{"id": 50, "project_id": 7, "ref": "feature/x", "status": "success"}]
        if q.get("ref") == "feature/x" and q.get("status") == "success"
        and q.get("order_by") == "id" and q.get("sort") == "desc" else []),
    P + "/pipelines/50/jobs": lambda q: (
        [job(503, "build"), job(502, "lint", archive=False, reports=("codequality",))]
        if q.get("page", "1") == "1" else
        [job(501, "test 1/3", old_style=True), job(500, "build")]),
    P + "/pipelines/50/bridges": lambda q: [
        {"id": 1, "name": "child", "downstream_pipeline": {"id": 60, "project_id": 7}},
        {"id": 2, "name": "other", "downstream_pipeline": {"id": 70, "project_id": 8}},
        {"id": 3, "name": "not-started", "downstream_pipeline": None}],
    P + "/pipelines/60/jobs": lambda q: [job(603, "build"), job(602, "child-only")],
    P + "/pipelines/60/bridges": lambda q: [
        {"id": 4, "downstream_pipeline": {"id": 61, "project_id": 7}}],
    P + "/pipelines/61/jobs": lambda q: [job(611, "grandchild")],
    P + "/pipelines/61/bridges": lambda q: [],
    P + "/pipelines/70/jobs": lambda q: [job(701, "other-project")],
    P + "/pipelines/70/bridges": lambda q: [],
    # newest first; only asked for successful ones, one page of 100
    P + "/jobs": lambda q: (
        [job(611, "grandchild"), {"id": "not-a-number", "name": 3},
         job(502, "lint", archive=False, reports=("codequality",)), job(501, "test 1/3", old_style=True)]
        if q.get("scope[]") == "success" and q.get("per_page") == "100" else []),
}

# Project group/res (id 9), GitLab's by-ref rules (doc/GITLAB-API.md "Ref resolution"): main's
# newest successful pipeline 90 is a scan-policy one (dangling: skipped); pipeline 80 has a
# failed job with an archive (e2e, served: no status filter), a report-only job (junit-only,
# which shadows the child's archive of that name) and a job without artifacts; its bridges
# list child 83 before child 81 (a retried trigger's), walked in id order: 80, 81, 83.
def rjob(jid, name, status="success", archive=True, reports=()):
    out = job(jid, name, archive=archive, reports=reports)
    out.update({"status": status, "ref": "main", "pipeline": {"id": jid // 10, "project_id": 9}})
    return out


R = "/projects/group%2Fres"
GITLAB.update({
    R + "/pipelines": lambda q: (
        [{"id": 90, "project_id": 9, "ref": "main", "status": "success",
          "source": "security_orchestration_policy"},
         {"id": 80, "project_id": 9, "ref": "main", "status": "success", "source": "push"}]
        if q.get("ref") == "main" and q.get("status") == "success" else
        [{"id": 95, "project_id": 9, "ref": q.get("ref"), "status": "success",
          "source": "merge_request_event"}]
        if q.get("ref") == "refs/merge-requests/7/head" else []),
    R + "/pipelines/80/jobs": lambda q: [
        rjob(803, "e2e", status="failed"), rjob(802, "junit-only", archive=False, reports=("junit",)),
        rjob(801, "docs", archive=False)],
    R + "/pipelines/80/bridges": lambda q: [
        {"id": 5, "downstream_pipeline": {"id": 83, "project_id": 9}},
        {"id": 4, "retried": True, "downstream_pipeline": {"id": 81, "project_id": 9}}],
    R + "/pipelines/81/jobs": lambda q: [rjob(811, "junit-only"), rjob(812, "child-a")],
    R + "/pipelines/81/bridges": lambda q: [],
    R + "/pipelines/83/jobs": lambda q: [rjob(831, "child-a"), rjob(832, "child-b")],
    R + "/pipelines/83/bridges": lambda q: [],
    R + "/repository/branches": lambda q: [{"name": n} for n in ("main", "b", "a", "b")],
    R + "/repository/tags": lambda q: [{"name": n} for n in ("v1", "main", "a", "v2")],
    R + "/repository/branches/main": lambda q: {"name": "main", "commit": {"id": "a" * 40}},
    R + "/repository/tags/v1": lambda q: {"name": "v1", "commit": {"id": "b" * 40}},
    R + "/merge_requests/7": lambda q: {
        "iid": 7, "sha": "c" * 40, "source_branch": "feature/login",
        "head_pipeline": {"id": 95, "ref": "refs/merge-requests/7/head", "status": "success"}},
})

lock = threading.Lock()
released = threading.Event()
counters = {}
ports = [0, 0, 0]
log_path = None


first_seen = {}


def seconds_since_first(key):
    with lock:
        return time.monotonic() - first_seen.setdefault(key, time.monotonic())


def bump(key):
    with lock:
        counters[key] = counters.get(key, 0) + 1
        return counters[key]


def parse_range(value, size):
    """(start, end) inclusive, or None when absent/unparsable, or 'bad' when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value or "")
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 else "bad"
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # as the simulator: without it a body written after its headers waits out the client's
    # delayed ACK (40 ms a request on Linux loopback; test_gitlab walks 201 pages)
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def record(self):
        token = any(self.headers.get(h) for h in TOKEN_HEADERS)
        host, port = self.server.server_address[:2]
        line = "%s://%s:%d %s %s token=%s range=%s pin=%s inm=%s\n" % (
            self.scheme(), host, port, self.command, self.path, "yes" if token else "no",
            (self.headers.get("Range") or "-").replace(" ", ""),
            (self.headers.get("If-Range") or "-").replace(" ", "_"),
            "yes" if self.headers.get("If-None-Match") else "no")
        with lock, open(log_path, "a") as f:
            f.write(line)

    def scheme(self):
        return "https" if isinstance(self.connection, ssl.SSLSocket) else "http"

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def partial(self, status, length, body, headers=(), stall_s=0):
        """Announces length bytes, sends body (shorter), then stalls or closes."""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if stall_s:
            time.sleep(stall_s)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def serve_data(self, honour_range, cut=None, etag=None, last_modified=None):
        rng = parse_range(self.headers.get("Range"), SIZE) if honour_range else None
        hdrs = [("Accept-Ranges", "bytes")] if honour_range else []
        if etag:
            hdrs.append(("ETag", etag))
        if last_modified:
            hdrs.append(("Last-Modified", last_modified))
        if rng == "bad":
            return self.send(416, b"", hdrs + [("Content-Range", "bytes */%d" % SIZE)])
        if rng is None:
            status, start, end = 200, 0, SIZE - 1
        else:
            status, (start, end) = 206, rng
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, end, SIZE)))
        body = DATA[start:end + 1]
        if cut is not None and cut < len(body):
            return self.partial(status, len(body), body[:cut], hdrs)
        self.send(status, body, hdrs)

    def page(self, query, link):
        m = re.search(r"(?:^|&)page=(\d+)", query)
        n = int(m.group(1)) if m else 1
        hdrs = [("Content-Type", "application/json")]
        if link and n < 3:
            hdrs.append(("Link", '<https://gitlab.elsewhere.invalid:8443/api/v4/paged-link'
                                 '?page=%d&per_page=1>; rel="next", <https://gitlab.elsewhere'
                                 '.invalid:8443/api/v4/paged-link?page=3>; rel="last"' % (n + 1)))
        if not link:
            hdrs.append(("X-Next-Page", str(n + 1) if n < 3 else ""))
        self.send(200, json.dumps([n]).encode(), hdrs)

    def gitlab(self, path, query):
        """The small GitLab; returns False when path is not one of its."""
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if (path.startswith(R) and self.headers.get("job-token")
                and not re.search(r"/pipelines/\d+/jobs$|/artifacts", path)):
            # group/res is private: GitLab ignores a job token off its routes (anonymous: 404)
            self.send(404, b'{"message":"404 Project Not Found"}')
            return True
        m = re.fullmatch(r"/projects/group%2Ffan/pipelines(?:/(\d+)/(jobs|bridges))?", path)
        if m:  # a pipeline (1) with 300 child pipelines, each with 2 children of its own
            plid = int(m.group(1) or 0)
            if not m.group(1):
                body = [{"id": 1, "project_id": 5, "ref": "main", "status": "success"}]
            elif m.group(2) == "jobs":
                body = []
            elif plid == 1:
                body = [{"downstream_pipeline": {"id": 1000 + i, "project_id": 5}} for i in range(300)]
            else:
                body = [{"downstream_pipeline": {"id": plid * 10 + i, "project_id": 5}}
                        for i in range(2)]
            self.send(200, json.dumps(body).encode(), [("Content-Type", "application/json")])
            return True
        if path in GITLAB:
            hdrs = [("Content-Type", "application/json")]
            if path == P + "/pipelines/50/jobs" and q.get("page", "1") == "1":
                hdrs.append(("Link", '<https://gitlab.elsewhere.invalid/api/v4%s?%s&page=2>; '
                                     'rel="next"' % (path, query)))
            elif path.endswith("/jobs"):
                hdrs.append(("X-Next-Page", ""))
            self.send(200, json.dumps(GITLAB[path](q)).encode(), hdrs)
            return True
        if path == P + "/jobs/artifacts/feature%2Fx/download" and q.get("job") == "test 1/3":
            self.serve_data(True)
            return True
        if path == P + "/jobs/503/artifacts":
            self.send(302, b"", [("Location", "http://127.0.0.2:%d/signed/blob?X-Amz-Signature=s"
                                  % ports[1])])
            return True
        if path == R + "/jobs/803/artifacts":  # strong ETag; If-Range honoured
            if self.headers.get("If-Range") not in (None, '"sha-A"'):
                self.send(200, DATA, [("ETag", '"sha-A"'), ("Accept-Ranges", "bytes")])
            else:
                self.serve_data(True, etag='"sha-A"')
            return True
        if path == R + "/jobs/804/artifacts":  # no ETag; If-Range by date, as Go's ServeContent
            lm = "Fri, 20 Nov 2026 10:15:30 GMT"
            if self.headers.get("If-Range") not in (None, lm):
                self.send(200, DATA, [("Last-Modified", lm), ("Accept-Ranges", "bytes")])
            else:
                self.serve_data(True, last_modified=lm)
            return True
        if path == P + "/jobs/504/artifacts":  # a server that answers another range
            body = DATA[:10]
            self.send(206, body, [("Content-Range", "bytes 0-9/%d" % SIZE)])
            return True
        return False

    def route(self):
        self.record()
        path, _, query = self.path.partition("?")
        if path.startswith("/api/v4"):
            path = path[len("/api/v4"):]
        parts = path.strip("/").split("/")
        head = parts[0]
        if self.gitlab(path, query):
            return
        if path == "/weak-moved":
            lm = "Sat, 21 Nov 2026 08:00:00 GMT"
            if self.headers.get("If-Range") not in (None, lm):
                return self.send(200, DATA, [("ETag", WEAK_ETAG), ("Last-Modified", lm),
                                             ("Accept-Ranges", "bytes")])
            return self.serve_data(True, etag=WEAK_ETAG, last_modified=lm)
        if path == "/user":
            return self.send(200, b'{"id": 1, "username": "dev"}')
        if path == "/job":
            if self.headers.get("job-token") == "glcbt-running":
                return self.send(200, json.dumps(rjob(803, "e2e", status="running")).encode())
            return self.send(401, b'{"message": "401 Unauthorized"}')
        if path == "/projects":
            return self.send(200, b"<html>not an API</html>")
        if head == "ok":
            return self.send(200, b"ok")
        if head == "status":
            return self.send(int(parts[1]), b'{"message":"status %s"}' % parts[1].encode())
        if head == "presigned":
            loc = ("http://127.0.0.2:%d/store/%s/blob?X-Amz-Date=%s&X-Amz-Expires=600"
                   "&X-Amz-Signature=SECRETSIG" % (ports[1], parts[1],
                                                   time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
            return self.send(302, b"", [("Location", loc)])
        if head == "store" and (parts[1] == "deny" or
                                (parts[1] == "refuse-2nd" and bump(path) == 2)):
            return self.send(403, b"<Error><Code>AccessDenied</Code></Error>")
        if parts[-1] == "blob":
            return self.serve_data(True)
        if parts[-1] == "landing":
            return self.send(200, b"landed")
        if head == "redirect":
            kind = parts[1]
            if kind == "other":
                loc = "http://127.0.0.2:%d/landing" % ports[1]
                return self.send(int(parts[2]), b"", [("Location", loc)])
            if kind == "port":
                loc = "http://127.0.0.1:%d/landing" % ports[2]
                return self.send(302, b"", [("Location", loc)])
            if kind == "scheme":
                loc = "%s://127.0.0.1:%d/api/v4/landing" % (
                    "http" if self.scheme() == "https" else "https", self.server.server_address[1])
                return self.send(302, b"", [("Location", loc)])
            if kind == "same":
                return self.send(302, b"", [("Location", "/api/v4/landing")])
            if kind == "relative":
                return self.send(302, b"", [("Location", "landing")])
            if kind == "loop":
                return self.send(302, b"", [("Location", self.path)])
            if kind == "leak":
                tok = self.headers.get("private-token") or "none"
                loc = "http://127.0.0.2:%d/leak/%s/x" % (ports[1], tok)
                return self.send(302, b"", [("Location", loc)])
        if head in ("429", "429reset", "503"):
            if bump(path) == 1:
                if head == "503":
                    return self.send(503, b"busy")
                hdr = (("Retry-After", "1") if head == "429" else
                       ("RateLimit-Reset", str(int(time.time()) + 1)))
                return self.send(429, b"Retry later", [hdr])
            return self.send(200, b"ok")
        if head == "data":
            return self.serve_data(True)
        if head == "bare429-for":
            if seconds_since_first(path) < float(parts[1]):
                return self.send(429, b'{"message":"429 Too Many Requests"}')
            return self.serve_data(True)
        if head == "huge-retry-after":
            return self.send(429, b"slow down", [("Retry-After", "99999999999999999999")])
        if head == "huge-reset":
            return self.send(429, b"slow down", [("RateLimit-Reset", "9223372036854775807")])
        if head == "echo-token":
            tok = " ".join(self.headers.get(h) or "" for h in TOKEN_HEADERS).strip()
            return self.send(500, ("proxy error; request had %s" % tok).encode())
        if head == "echo-token-at":
            tok = " ".join(self.headers.get(h) or "" for h in TOKEN_HEADERS).strip()
            pad = int(parts[1])
            return self.send(500, ("x" * pad + tok).encode())
        if head == "redirect-token-at":
            tok = " ".join(self.headers.get(h) or "" for h in TOKEN_HEADERS).strip()
            loc = "/api/v4/status/500?pad=%s&t=%s" % ("x" * int(parts[1]), tok)
            return self.send(302, b"", [("Location", loc)])
        if head == "slow-headers":
            time.sleep(5)
            return self.send(200, b"ok")
        if head == "leak":
            return self.send(500, b"gone")
        if head == "paged-relative":
            m = re.search(r"(?:^|&)page=(\d+)", query)
            n = int(m.group(1)) if m else 1
            hdrs = [("Content-Type", "application/json")]
            if n < 3:
                hdrs.append(("Link", '</api/v4/paged-relative?page=%d>; rel="next"' % (n + 1)))
            return self.send(200, json.dumps([n]).encode(), hdrs)
        if head == "norange":
            return self.serve_data(False)
        if head == "overlong":  # a 206 whose body runs past its Content-Range: 50 bytes 0xAA more
            start, end = parse_range(self.headers.get("Range"), SIZE)
            return self.send(206, DATA[start:end + 1] + b"\xaa" * 50,
                             [("Content-Range", "bytes %d-%d/%d" % (start, end, SIZE))])
        if head in ("truncate-once", "truncate-once-norange"):
            first = bump(path) == 1
            return self.serve_data(head == "truncate-once", 400 if first else None)
        if head == "truncate-always":
            return self.partial(200, SIZE, DATA[:10])
        if head == "stall":
            return self.partial(200, SIZE, DATA[:10], stall_s=30)
        if head == "hold":
            self.send_response(200)
            self.send_header("Content-Length", str(SIZE))
            self.end_headers()
            self.wfile.write(DATA[:10])
            self.wfile.flush()
            released.wait(50)
            self.wfile.write(DATA[10:])
            return None
        if head == "release":
            released.set()
            return self.send(200, b"released")
        if head == "busy":
            return self.send(503, b"busy", [("Retry-After", "30")])
        if head == "paged-link":
            return self.page(query, True)
        if head == "paged-xnext":
            return self.page(query, False)
        self.send(404, b'{"message":"404 Not Found"}')

    do_GET = do_POST = do_DELETE = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None  # an ssl.SSLContext: a connection opening with a TLS handshake is served over TLS

    def finish_request(self, request, client_address):
        """In the connection's own thread, so a client slow to speak blocks no other."""
        if self.tls is not None:
            try:
                request.settimeout(5)
                first = request.recv(1, socket.MSG_PEEK)
                request.settimeout(None)
                if first == b"\x16":  # a TLS record of type handshake: a ClientHello
                    request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if isinstance(request, ssl.SSLSocket):
                request.close()  # the plain socket it came from was detached: this closes it


def tls_context(cert, key):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    global log_path
    ready, log_path = sys.argv[1], sys.argv[2]
    lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    one = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 5:
        one.tls = tls_context(sys.argv[4], sys.argv[5])
    ports[0] = one.server_address[1]
    try:
        two = Server(("127.0.0.2", ports[0]), Handler)
    except OSError:
        two = Server(("127.0.0.2", 0), Handler)
    ports[1] = two.server_address[1]
    three = Server(("127.0.0.1", 0), Handler)
    ports[2] = three.server_address[1]
    for s in (one, two, three):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d\n" % tuple(ports))
    os.rename(tmp, ready)
    time.sleep(lifetime)
    os._exit(0)


if __name__ == "__main__":
    main()
