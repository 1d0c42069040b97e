#!/usr/bin/python3
"""A GitLab REST v4 simulator for artifactfs's tests, benchmark and demo (Python 3 stdlib only).

It follows doc/GITLAB-API.md: the seven artifact endpoints and /artifacts/tree,
listings with GitLab's offset (and keyset) pagination, the three token kinds with their scope
rules, ref resolution, the storage modes (local, redirect to a second listener on 127.0.0.2 with
expiring signed URLs, proxied chunked, and s3: the archives in a real S3 store such as radosgw,
reached through presigned URLs; only that mode needs boto3), expiry per endpoint,
keep/delete/409, fault injection, and a request log. Archives are built from a fixture description at start-up.
See README.md beside this file.
"""
import argparse
import email.utils
import hashlib
import hmac
import http.server
import io
import json
import mimetypes
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import warnings
import zipfile
import zlib

warnings.filterwarnings("ignore", "Duplicate name")

API = "/api/v4"
DATE = (2026, 11, 20, 10, 15, 30)
LEVELS = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}


class HTTPError(Exception):
    def __init__(self, status, message=None, plain=False, headers=None):
        super().__init__(status)
        self.status = status
        self.message = message or {400: "400 Bad request", 401: "401 Unauthorized",
                                   403: "403 Forbidden", 404: "404 Not Found",
                                   405: "405 Method Not Allowed", 409: "409 Conflict",
                                   500: "500 Internal Server Error"}.get(status, str(status))
        self.plain = plain
        self.headers = headers or {}



# ---------------------------------------------------------------- GitLab versions

# What differs between the GitLab versions in the field (--gitlab-version), one entry a behaviour,
# each citing the source file (and release) doc/GITLAB-API.md names. COMMON holds what every
# profile shares: the entries are listed so the table says what was checked, not only what moved.
# "(boundary unconfirmed)": GITLAB-API.md says "older servers" without a release; the entry sits
# on the old profiles and the client must handle both answers anyway.
COMMON = {
    # lib/api/ci/jobs.rb `before { authenticate! }` (all supported releases): every
    # /projects/:id/jobs... route (list, one job, trace) is 401 without a personal/OAuth token
    "jobs_routes_anonymous_401": True,
    # lib/gitlab/auth/auth_finders.rb: a job token as `Authorization: Bearer` off the
    # job_token_allowed routes gets 401, not the anonymous treatment JOB-TOKEN gets
    "bearer_job_token_401": True,
    # lib/api/ci/pipelines.rb: `/pipelines/latest` is never job_token_allowed (any release)
    "pipelines_latest_job_token": False,
    # lib/api/ci/job_artifacts.rb + app/policies/ci/build_policy.rb: artifacts:access
    # (keyword since 16.11, artifacts:public before) hides a visible job's artifacts: 403
    "artifacts_access_403": True,
    # workhorse/internal/sendurl (object storage, direct download): HEAD is answered 303 to a
    # URL presigned for HEAD only (a GET on it is refused by the store)
    "head_303_signed_for_head": True,
    # lib/api/ci/job_artifacts.rb `requirements: { ref_name: /.+/ }`: greedy, so a member path
    # with a /raw/ segment splits the by-ref raw route at its last /raw/ (any release)
    "raw_segment_splits_by_ref": True,
    # app/models/concerns/enums/ci/pipeline.rb + lib/api/merge_requests.rb: merge request
    # pipelines on refs/merge-requests/<iid>/head, /merge (merged results), /train (trains)
    "mr_refs": ("head", "merge", "train"),
    # GITLAB-API.md "One member (3, 4)", all releases: before matching, Rails collapses `//` and
    # drops a trailing `/` (Journey::Router::Utils.normalize_path; an encoded %2F is left; a
    # literal folder entry `dir/` still matches, GITLAB-API.md);
    # a `..` segment gets 400 `Potential path traversal attempt detected.`
    # (lib/gitlab/middleware/path_traversal_check.rb), NUL or invalid UTF-8 `400 Bad Request`
    # (lib/gitlab/middleware/handle_malformed_strings.rb), both plain text
    "member_path_rails": True,
    # GITLAB-API.md "Whole archive (1, 2)", local storage: workhorse/internal/sendfile/sendfile.go
    # http.ServeContent answers several ranges in one Range header with 206 multipart/byteranges
    "multipart_byteranges": True,
    # GITLAB-API.md "Whole archive (1, 2)", object storage proxied
    # (workhorse/internal/sendurl/sendurl.go): the store's own error status and XML body pass
    # straight through (fault kinds store403, store404, store503)
    "proxied_store_errors": True,
}

PROFILES = {
    "16.11": dict(COMMON, **{
        "version": "16.11.10",
        # lib/api/ci/job_artifacts.rb: /artifacts/tree arrived in 18.8; before, 404 there and a
        # root member named `tree` is served by the member route
        "tree": False,
        # lib/api/ci/pipelines.rb: pipeline routes take a job token from 19.2 only
        "pipeline_job_token": False,
        # app/models/ci/pipeline.rb latest_successful_for_ref / app/models/project.rb: the ref's
        # 100 newest pipelines, the parent pipeline only (boundary unconfirmed)
        "ref_window": 100, "ref_descendants": False,
        # app/models/concerns/enums/ci/pipeline.rb dangling_sources as of 16.11: no
        # pipeline_execution_policy_schedule, container_registry_push, duo_workflow yet
        "dangling": ("webide", "parent_pipeline", "ondemand_dast_scan",
                     "ondemand_dast_validation", "security_orchestration_policy"),
        # lib/api/ci/job_artifacts.rb: search_recent_successful_pipelines, download 18.7+,
        # raw 18.9+ (ignored before)
        "search_recent_download": False, "search_recent_raw": False,
        # Rack::ETag over an empty Rails body (GitLab issue 371991): one weak tag on every 200,
        # and 304 to an If-None-Match carrying it even after the artifact changed
        "etag": "weak-constant",
        # workhorse/internal/artifacts/entry.go: Content-Type from the extension (raw by ref also
        # sniffs text) before the octet-stream change (boundary unconfirmed)
        "member_octet_stream": False,
        # lib/api/helpers.rb check_rate_limit!: application limits answer 429 with a JSON body
        # and no header (Retry-After came later; boundary unconfirmed)
        "limit_retry_after": False,
        # lib/gitlab/ci/job_token/jwt.rb: no JWT job tokens yet (opaque tokens live with the job)
        "jwt_job_tokens": False,
        # lib/api/ci/jobs.rb: GET /pipelines/:id/trigger_jobs arrived in 19.2 (bridges deprecated
        # then, still served): 404 before
        "trigger_jobs": False,
    }),
}
PROFILES["17.11"] = dict(PROFILES["16.11"], **{
    "version": "17.11.7",
    # enums/ci/pipeline.rb as of 17.11: pipeline_execution_policy_schedule and
    # container_registry_push joined the dangling sources in 17.x
    "dangling": PROFILES["16.11"]["dangling"] + ("pipeline_execution_policy_schedule",
                                                 "container_registry_push"),
    # lib/gitlab/ci/job_token/jwt.rb: JWT job tokens (17.x), which can expire mid-job
    "jwt_job_tokens": True,
})
PROFILES["18.6"] = dict(PROFILES["17.11"], **{
    "version": "18.6.3",
    # enums/ci/pipeline.rb as of 18.6: every source the newest leaves out
    "dangling": PROFILES["17.11"]["dangling"] + ("duo_workflow",),
    # app/models/ci/pipeline.rb: the ref's whole history and its same-project descendants
    # (the newest rule) already on 18.x (boundary unconfirmed)
    "ref_window": None, "ref_descendants": True,
    # application limits add Retry-After on 18.x (boundary unconfirmed)
    "limit_retry_after": True,
})
PROFILES["newest"] = dict(PROFILES["18.6"], **{
    "version": "19.2.0",
    "tree": True,                     # 18.8+
    "pipeline_job_token": True,       # 19.2+: /pipelines, /:id, /:id/jobs, /bridges, /trigger_jobs
    "trigger_jobs": True,             # 19.2+
    "search_recent_download": True,   # 18.7+
    "search_recent_raw": True,        # 18.9+
    # workhorse_download_etag_caching: a strong sha256 tag behind a flag; the simulator's own
    # inode tag stays the default (--etag chooses), so the suite sees what it always saw
    "etag": None,
    "member_octet_stream": True,      # newer servers: octet-stream for all but SVG
})

# ---------------------------------------------------------------- archives

def _info(path, mode, kind="file", compress=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(path, DATE)
    zi.create_system = 3
    if kind == "dir":
        zi.external_attr = ((0o040000 | (mode or 0o755)) << 16) | 0x10
        zi.compress_type = zipfile.ZIP_STORED
    elif kind == "symlink":
        zi.external_attr = (0o120777 << 16)
        zi.compress_type = zipfile.ZIP_STORED
    else:
        zi.external_attr = (0o100000 | (mode or 0o644)) << 16
        zi.compress_type = compress
    return zi


def _random_chunks(size, seed):
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(left, 1 << 20)
        yield rng.randbytes(n)
        left -= n


_zip64_lock = threading.Lock()


FIXTURE_DIR = "."  # where a member's "file" is found: the fixture's folder


def build_archive(spec, path):
    """Writes the zip a spec describes (see README.md) to path, streaming big members."""
    corrupt = spec.get("corrupt")
    if corrupt == "garbage":
        with open(path, "wb") as f:
            f.write(random.Random(1).randbytes(4096))
        return
    if corrupt == "empty":
        open(path, "wb").close()
        return
    if spec.get("zip64"):
        # zipfile writes zip64 records only past its limits: lower them while this archive is
        # written (readers never consult them), so every member and the end record carry zip64
        with _zip64_lock:
            saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
            zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = -1, -1
            try:
                _write_zip(spec, path, force_zip64=True)
            finally:
                zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved
    else:
        _write_zip(spec, path, force_zip64=False)
    if corrupt == "truncated":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif corrupt == "no-end-record":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(max(0, size - 22))
    if "mtime" in spec:  # the archive's Last-Modified (Unix seconds): what a date pin sees
        os.utime(path, (spec["mtime"], spec["mtime"]))


def _write_zip(spec, path, force_zip64):
    with zipfile.ZipFile(path, "w", allowZip64=True) as z:
        folders = spec.get("folder_entries", False)
        seen_dirs = set()
        for m in _expand(spec.get("members", [])):
            p = m["path"]
            mode = int(str(m.get("mode", "0")), 8) or None
            compress = zipfile.ZIP_STORED if m.get("compress") == "stored" else zipfile.ZIP_DEFLATED
            if folders and "/" in p.rstrip("/"):
                parts = p.rstrip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i]) + "/"
                    if d not in seen_dirs and ".." not in parts and not p.startswith("/"):
                        seen_dirs.add(d)
                        z.writestr(_info(d, None, "dir"), b"")
            if m.get("dir") or p.endswith("/"):
                seen_dirs.add(p if p.endswith("/") else p + "/")
                z.writestr(_info(p if p.endswith("/") else p + "/", mode, "dir"), b"")
            elif "symlink" in m:
                z.writestr(_info(p, None, "symlink"), m["symlink"].encode())
            elif "file" in m:  # bytes made by a test (a tarball, a zip), beside the fixture
                with open(os.path.join(FIXTURE_DIR, m["file"]), "rb") as f:
                    z.writestr(_info(p, mode, compress=compress), f.read())
            elif "random" in m:
                zi = _info(p, mode, compress=compress)
                with z.open(zi, "w", force_zip64=force_zip64 or m["random"] > zipfile.ZIP64_LIMIT) as w:
                    for chunk in _random_chunks(m["random"], m.get("seed", 0)):
                        w.write(chunk)
            else:
                data = m.get("text", "").encode() * int(m.get("repeat", 1))
                if force_zip64:
                    with z.open(_info(p, mode, compress=compress), "w", force_zip64=True) as w:
                        w.write(data)
                else:
                    z.writestr(_info(p, mode, compress=compress), data)


def _expand(members):
    for m in members:
        g = m.get("generate")
        if not g:
            yield m
            continue
        size = int(g.get("size", 16))
        per_dir = int(g.get("per_dir", 0))
        for i in range(int(g["count"])):
            sub = "d%04d/" % (i // per_dir) if per_dir else ""
            yield {"path": "%s%s%06d.txt" % (g.get("prefix", "gen/"), sub, i),
                   "text": ("%06d " % i + "x" * size)[:size],
                   "compress": g.get("compress", "deflated")}


class ArchiveIndex:
    """An archive's central directory, read once: archives never change after they are built.
    The ZipFile is shared by threads (zipfile serialises reads of one file)."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path)
        self.first = {}
        for zi in self.zip.infolist():
            self.first.setdefault(zi.filename, zi)  # Workhorse takes the first of duplicates
        self._tree = None

    def tree(self):
        """Every entry GitLab's metadata would list, folders implied by member paths included."""
        if self._tree is None:
            entries, seen = [], set()
            for zi in self.zip.infolist():
                parts = zi.filename.rstrip("/").split("/")
                for i in range(1, len(parts) + 1):
                    sub = "/".join(parts[:i])
                    if sub in seen:
                        continue
                    seen.add(sub)
                    is_dir = i < len(parts) or zi.filename.endswith("/")
                    entries.append({"name": parts[i - 1], "path": sub + ("/" if is_dir else ""),
                                    "type": "directory" if is_dir else "file",
                                    "size": 0 if is_dir else zi.file_size,
                                    "mode": "%o" % (0o40755 if i < len(parts) else
                                                    (zi.external_attr >> 16) or
                                                    (0o40755 if is_dir else 0o100644)),
                                    "_parent": "/".join(parts[:i - 1])})
            self._tree = entries
        return self._tree


_indexes = {}
_indexes_lock = threading.Lock()


def archive_index(path):
    """The cached index of an archive; raises zipfile.BadZipFile or OSError for a broken one."""
    with _indexes_lock:
        idx = _indexes.get(path)
    if idx is None:
        idx = ArchiveIndex(path)
        with _indexes_lock:
            if len(_indexes) >= 64:
                _indexes.pop(next(iter(_indexes)))
            _indexes[path] = idx
    return idx


# ---------------------------------------------------------------- the world

class World:
    """Projects, refs, pipelines and jobs from the fixture; mutated by keep/delete. One lock."""

    def __init__(self, fixture, state_dir, profile=None):
        self.lock = threading.RLock()
        self.profile = profile or PROFILES["newest"]
        self.state_dir = state_dir
        self.tokens = {t["value"]: t for t in fixture.get("tokens", [])}
        self.users = fixture.get("users", {})
        self.archives = fixture.get("archives", {})
        self.projects = {}
        self.jobs = {}
        self.pipelines = {}
        self.conflict = False
        self.on_new_archive = None  # set by an object store: called for archives built later
        for p in fixture.get("projects", []):
            self.add_project(p)

    def add_project(self, p):
        p = dict(p)
        p.setdefault("visibility", "private")
        p["members"] = {u: LEVELS.get(lv, lv) if isinstance(lv, str) else lv
                        for u, lv in p.get("members", {}).items()}
        p.setdefault("branches", {})
        p.setdefault("tags", {})
        p.setdefault("job_token_allowlist", [p["id"]])
        p.setdefault("merge_requests", [])
        pipes = p.pop("pipelines", [])
        p["pipelines"] = []
        self.projects[p["id"]] = p
        for pl in pipes:
            self.add_pipeline(p, pl)

    def add_pipeline(self, project, pl, parent=None):
        pl = dict(pl)
        pl["project_id"] = project["id"]
        pl.setdefault("status", "success")
        pl.setdefault("sha", project["branches"].get(pl["ref"]) or project["tags"].get(pl["ref"])
                      or "0" * 40)
        pl["parent"] = parent
        # the pipeline's source (app/models/concerns/enums/ci/pipeline.rb); a merge request
        # pipeline runs on refs/merge-requests/<iid>/head
        pl.setdefault("source", "parent_pipeline" if parent else
                      "merge_request_event" if pl["ref"].startswith("refs/merge-requests/")
                      else "push")
        children = pl.pop("children", [])
        jobs = pl.pop("jobs", [])
        pl["jobs"] = []
        pl["children"] = []
        self.pipelines[pl["id"]] = pl
        project["pipelines"].append(pl)
        for j in jobs:
            self.add_job(project, pl, j)
        for c in children:
            c = dict(c)
            c.setdefault("ref", pl["ref"])
            c.setdefault("sha", pl["sha"])
            self.add_pipeline(project, c, parent=pl["id"])
            pl["children"].append(c["id"])
        return pl

    def add_job(self, project, pl, j):
        j = dict(j)
        j["pipeline_id"] = pl["id"]
        j["project_id"] = project["id"]
        j.setdefault("status", pl["status"] if pl["status"] in ("success", "failed") else "running")
        j.setdefault("stage", "test")
        j.setdefault("retried", False)
        j.setdefault("allow_failure", False)
        j.setdefault("finished_at", "2026-11-20T10:15:30.000Z")
        spec = j.get("archive")
        if isinstance(spec, str):
            spec = self.archives[spec]
        j["archive_path"] = None
        if spec is not None:
            path = os.path.join(self.state_dir, "job-%d.zip" % j["id"])
            build_archive(spec, path)
            j["archive_path"] = path
            if self.on_new_archive:
                self.on_new_archive(j)
        self.jobs[j["id"]] = j
        pl["jobs"].append(j["id"])

    # -- lookups
    def project(self, ident):
        ident = urllib.parse.unquote(ident)
        if ident.isdigit():
            return self.projects.get(int(ident))
        for p in self.projects.values():
            if p["path"] == ident:
                return p
        return None

    def expired(self, j):
        exp = j.get("expire_at")
        if not exp:
            return False
        t = time.mktime(time.strptime(exp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        return t < time.time() and not self.locked(j)

    def locked(self, j):
        """Artifacts of the latest successful pipeline of each ref are locked."""
        pl = self.pipelines[j["pipeline_id"]]
        while pl["parent"]:
            pl = self.pipelines[pl["parent"]]
        newest = self.newest_pipeline(self.projects[j["project_id"]], pl["ref"])
        return newest is not None and newest["id"] == pl["id"]

    def ref_pipelines(self, project, ref):
        """ci_pipelines.latest_successful_for_ref(ref) (app/models/ci/pipeline.rb), every
        candidate newest first: successful, of the ref, not of a dangling source
        (Enums::Ci::Pipeline.dangling_sources, app/models/concerns/enums/ci/pipeline.rb, as the
        profile's release has them; Project#ci_pipelines leaves them out), and on old releases
        only among the ref's profile["ref_window"] newest pipelines."""
        mine = sorted((pl for pl in project["pipelines"] if pl["ref"] == ref and not pl["parent"]),
                      key=lambda pl: pl["id"], reverse=True)
        if self.profile["ref_window"]:
            mine = mine[:self.profile["ref_window"]]
        return [pl for pl in mine
                if pl["status"] == "success" and pl["source"] not in self.profile["dangling"]]

    def newest_pipeline(self, project, ref):
        cands = self.ref_pipelines(project, ref)
        return cands[0] if cands else None

    def has_archive(self, j):
        return j.get("archive_path") is not None

    def downloadable(self, j):
        """with_downloadable_artifacts (app/models/ci/build.rb): the archive or any report
        (Ci::JobArtifact::DOWNLOADABLE_TYPES), not the metadata or the trace."""
        return self.has_archive(j) or bool(j.get("reports"))

    def job_for_ref(self, project, ref, name, search_recent=False):
        """Project#latest_successful_build_for_ref (app/models/project.rb) ->
        Ci::Pipeline#build_with_artifacts_in_self_and_project_descendants (app/models/ci/
        pipeline.rb): builds_in_self_and_project_descendants.ordered_by_pipeline.latest
        .with_downloadable_artifacts.find_by_name(name). No status filter; `latest` drops
        retried jobs; a report-only job matches (and the caller then fails on its archive).
        Old releases look at the parent pipeline only (profile ref_descendants); with
        search_recent (search_recent_successful_pipelines=true, 18.7+ download, 18.9+ raw) a
        newest pipeline that lacks the job is passed for the next successful one."""
        for pl in self.ref_pipelines(project, ref):
            j = self.job_in_family(pl, name)
            if j or not search_recent:
                return j
        return None

    def job_in_family(self, pl, name):
        family = [pl["id"]] + (self.descendants(pl) if self.profile["ref_descendants"] else [])
        for pid in sorted(family):
            cands = [self.jobs[i] for i in self.pipelines[pid]["jobs"]]
            cands = [j for j in cands if j["name"] == name and not j["retried"]
                     and self.downloadable(j)]
            if cands:
                return max(cands, key=lambda j: j["id"])
        return None

    def descendants(self, pl):
        """self_and_project_descendants minus self: every same-project child, grandchild...,
        also children of retried trigger jobs (all of pl["children"])."""
        out = []
        for c in pl["children"]:
            out.append(c)
            out.extend(self.descendants(self.pipelines[c]))
        return out

    def job_json(self, j, base):
        project = self.projects[j["project_id"]]
        pl = self.pipelines[j["pipeline_id"]]
        arts = []
        if self.has_archive(j):
            arts.append({"file_type": "archive", "size": os.path.getsize(j["archive_path"]),
                         "filename": "artifacts.zip", "file_format": "zip"})
            arts.append({"file_type": "metadata", "size": 153, "filename": "metadata.gz",
                         "file_format": "gzip"})
        for r in j.get("reports", []):
            arts.append({"file_type": r, "size": 1024, "filename": r + ".xml.gz",
                         "file_format": "gzip"})
        out = {
            "id": j["id"], "name": j["name"], "stage": j["stage"], "status": j["status"],
            "allow_failure": j["allow_failure"],
            "ref": pl["ref"], "tag": pl.get("tag", pl["ref"] in project["tags"]),
            "created_at": "2026-11-20T10:10:00.000Z", "started_at": "2026-11-20T10:11:00.000Z",
            "finished_at": j["finished_at"],
            "web_url": "%s/%s/-/jobs/%d" % (base, project["path"], j["id"]),
            "pipeline": {"id": pl["id"], "project_id": project["id"], "ref": pl["ref"],
                         "sha": pl["sha"], "status": pl["status"]},
            "commit": {"id": pl["sha"], "short_id": pl["sha"][:8], "title": "A commit"},
            "artifacts_expire_at": j.get("expire_at"),
            "artifacts": arts,
            "erased_at": j.get("erased_at"),
        }
        if self.has_archive(j) and not self.expired(j):
            out["artifacts_file"] = {"filename": "artifacts.zip",
                                     "size": os.path.getsize(j["archive_path"])}
        return out


# ---------------------------------------------------------------- faults

class Faults:
    def __init__(self, spec=""):
        self.set(spec)

    def set(self, spec):
        self.rate, self.kinds, self.nth, self.nth_kind = 0.0, [], None, None
        self.paths, self.retry_after, self.stall_s = None, 1, 30
        self.rng = random.Random(0)
        self.count = 0
        self.window_s, self.window_headers, self.window_end = 0.0, None, None
        for part in filter(None, (spec or "").split(",")):
            k, _, v = part.partition("=")
            if k == "rate":
                self.rate = float(v)
            elif k == "kinds":
                self.kinds = v.split("+")
            elif k == "seed":
                self.rng = random.Random(int(v))
            elif k == "paths":
                self.paths = re.compile(v)
            elif k == "retry_after":
                self.retry_after = int(v)
            elif k == "stall_s":
                self.stall_s = float(v)
            elif k == "ratelimit":  # a rate-limit window of v seconds (at most 600)
                self.window_s = min(600.0, float(v))
            elif k == "ratelimit_headers":  # 1: Rack::Attack's; 0: a bare application
                self.window_headers = v not in ("0", "")  # limit; unset: the profile's
            elif k == "nth":
                n, _, kind = v.partition(":")
                self.nth, self.nth_kind = int(n), kind or "reset"
            else:
                raise ValueError("unknown fault option " + k)

    def pick(self, path):
        if self.paths and not self.paths.search(path):
            return None
        self.count += 1
        if self.window_s:  # the window opens at the first matching request
            if self.window_end is None:
                self.window_end = time.time() + self.window_s
            if time.time() < self.window_end:
                return "ratelimit"
        if self.nth is not None and self.count == self.nth:
            return self.nth_kind
        if self.rate and self.kinds and self.rng.random() < self.rate:
            return self.rng.choice(self.kinds)
        return None


# ---------------------------------------------------------------- HTTP

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, socket.timeout)):
            return  # a client that refused our certificate, or went away: expected in tests
        super().handle_error(request, client_address)


class Sim:
    def __init__(self, args, fixture):
        self.args = args
        self.state_dir = args.state_dir or tempfile.mkdtemp(prefix="gitlab-sim-")
        os.makedirs(self.state_dir, exist_ok=True)
        self.profile = PROFILES[args.gitlab_version]
        self.world = World(fixture, self.state_dir, self.profile)
        self.faults = Faults(args.faults)
        self.link = Link(args.link_rate, args.link_delay_ms)
        self.fault_lock = threading.Lock()
        self.released = threading.Event()  # ends every "hold" fault (POST /-/sim/release)
        self.log_lock = threading.Lock()
        self.busy = 0  # requests being answered and not yet logged
        self.busy_cv = threading.Condition()
        self.log_lines = []
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        self.secret = os.urandom(16)
        self.api_server = Server((args.host, args.port), make_handler(self, "api"))
        self.tls = bool(args.tls_cert)
        if self.tls:  # https with the certificate given (tests make a throwaway CA)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            # the handshake runs in the handler's thread (setup), never in the accept loop
            self.api_server.socket = ctx.wrap_socket(self.api_server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.base = "%s://%s:%d" % ("https" if self.tls else "http", args.host,
                                    self.api_server.server_address[1])
        self.etags = {}  # archive path -> sha256 ETag, computed once (archives never change)
        self.external = (args.external_url or self.base).rstrip("/")
        self.store_server = None
        if args.storage == "redirect":
            self.store_server = Server(("127.0.0.2", 0), make_handler(self, "store"))
            self.store_base = "http://127.0.0.2:%d" % self.store_server.server_address[1]
        self.s3 = S3Store(args, self.world) if args.storage == "s3" else None

    def drop_archive(self, j):
        """A job's archive is gone (deleted, erased): from the object store too."""
        if self.s3 and j.get("archive_path"):
            self.s3.delete(j)
        j["archive_path"] = None

    def settle(self, timeout=2.0):
        """Waits until every request has been logged: a client sees its response whole before
        the handler writes the log line, so a reader right after a call could miss it."""
        with self.busy_cv:
            self.busy_cv.wait_for(lambda: self.busy == 0, timeout)

    def log(self, rec):
        line = json.dumps(rec, sort_keys=True)
        with self.log_lock:
            self.log_lines.append(line)
            if self.log_file:
                self.log_file.write(line + "\n")
                self.log_file.flush()

    def pick_fault(self, path):
        with self.fault_lock:
            return self.faults.pick(path)

    def sign(self, name, expires, method="GET"):
        # a presigned URL is signed for one method, as S3's are (a HEAD on a GET URL: 403)
        msg = ("%s:%d" % (name, expires) + ("" if method == "GET" else ":" + method)).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()


class S3Store:
    """The archives in a real S3 bucket (radosgw in the suite), as GitLab keeps them with object
    storage: uploaded at start (and when a pipeline is added), removed when deleted, and reached
    through SigV4 presigned URLs that expire after --url-lifetime. Keys come from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never from the command line. The object's key is
    the archive's file name (one per job: an archive is never replaced, doc/GITLAB-API.md)."""

    def __init__(self, args, world):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            sys.exit("gitlab_sim: --storage s3 needs boto3 (python3-boto3; run /usr/bin/python3)")
        if not args.s3_endpoint or not re.match(r"^https?://", args.s3_endpoint):
            sys.exit("gitlab_sim: --storage s3 needs --s3-endpoint http(s)://HOST:PORT")
        if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            sys.exit("gitlab_sim: --storage s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                     "in the environment")
        self.bucket = args.s3_bucket
        self.lifetime = args.url_lifetime
        # path-style addressing (radosgw without a wildcard DNS name); the region is signed but
        # radosgw does not check it
        self.client = boto3.client(
            "s3", endpoint_url=args.s3_endpoint,
            region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 3}))
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                pass
            with world.lock:
                jobs = [j for j in world.jobs.values() if j.get("archive_path")]
            for j in jobs:
                self.put(j)
        except (BotoCoreError, ClientError) as e:
            sys.exit("gitlab_sim: the S3 store at %s refused the archives: %s" % (args.s3_endpoint, e))
        world.on_new_archive = self.put

    @staticmethod
    def key(j):
        return os.path.basename(j["archive_path"])

    def put(self, j):
        # one PUT, not multipart: the ETag is then the archive's MD5, as tests may check
        with open(j["archive_path"], "rb") as f:
            self.client.put_object(Bucket=self.bucket, Key=self.key(j), Body=f,
                                   ContentType="application/zip")

    def delete(self, j):
        self.client.delete_object(Bucket=self.bucket, Key=self.key(j))

    def url(self, j, method):
        op = "head_object" if method == "HEAD" else "get_object"
        return self.client.generate_presigned_url(
            op, Params={"Bucket": self.bucket, "Key": self.key(j)}, ExpiresIn=self.lifetime)


class Link:
    """A network link between the client and both hosts (API and storage): every answer waits
    delay_ms before its status line, and each connection sends at most rate bytes a second.
    Not GitLab behaviour: the wire it is reached over (object storage caps each connection)."""

    def __init__(self, rate=0, delay_ms=0):
        self.set("rate=%d,delay_ms=%d" % (rate, delay_ms))

    def set(self, spec):
        kv = dict(p.split("=", 1) for p in spec.split(",") if "=" in p)
        self.rate = parse_rate(kv.get("rate", "0"))
        self.delay_ms = float(kv.get("delay_ms", "0"))


def parse_rate(s):
    """Bytes a second: 100M, 512k, or a number."""
    s = str(s).strip()
    mult = {"k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1]]) if s and s[-1] in mult else int(float(s or 0))


class PacedWriter:
    """The connection's output at no more than the link's rate: each write is sent in pieces of
    10 ms worth, sleeping until the bytes sent since the request began are due."""

    def __init__(self, raw, h):
        self.raw = raw
        self.h = h

    def write(self, data):
        rate = self.h.link_rate
        if not rate:
            return self.raw.write(data)
        view = memoryview(data)
        step = max(1024, rate // 100)
        for i in range(0, len(view), step):
            piece = view[i:i + step]
            self.raw.write(piece)
            self.h.link_sent += len(piece)
            due = self.h.link_t0 + self.h.link_sent / rate
            if due > time.monotonic():
                self.raw.flush()
                time.sleep(due - time.monotonic() if due > time.monotonic() else 0)
        return len(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def make_handler(sim, role):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "gitlab-sim"
        # GitLab's nginx sends with tcp_nodelay; without it a body written after its headers
        # waits out the client's delayed ACK (40 ms a request on Linux loopback)
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            pass

        # -- plumbing
        def setup(self):
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(10)
                self.request.do_handshake()
                self.request.settimeout(None)
            super().setup()
            self.wfile = PacedWriter(self.wfile, self)

        def handle_one_request(self):
            self.sent = 0
            self.status_sent = None
            self.fault = None
            self.link_rate = 0  # until the request line is known: admin calls are not paced
            self.link_sent = 0
            self.t_start = time.time()
            super().handle_one_request()

        def send_response(self, code, message=None):
            self.status_sent = code
            if not getattr(self, "path", "/-/sim/").startswith("/-/sim/"):
                if sim.link.delay_ms:
                    time.sleep(sim.link.delay_ms / 1000)
                self.link_rate = sim.link.rate
                self.link_t0 = time.monotonic()
            super().send_response(code, message)

        def _auth_names(self):
            names = [h for h in ("PRIVATE-TOKEN", "JOB-TOKEN", "Authorization") if self.headers.get(h)]
            if "job_token=" in (self.path.split("?", 1) + [""])[1]:
                names.append("job_token")
            return names

        def _finish_log(self):
            if self.path.startswith("/-/sim/"):
                return
            host = "%s:%d" % self.server.server_address[:2]
            # as GitLab filters its logs: a job_token in the query is never written down
            path = re.sub(r"(?<=[?&]job_token=)[^&]*", "[FILTERED]", self.path)
            sim.log({"t0": self.t_start, "t": time.time(), "host": host, "method": self.command, "path": path,
                     "status": self.status_sent, "bytes": self.sent,
                     "range": self.headers.get("Range"), "auth": self._auth_names(),
                     "fault": self.fault})

        def _dispatch(self):
            try:
                # always consumed, or the next request on this connection starts with it
                self.body = self.read_body()
                if self.path.startswith("/-/sim/"):
                    return admin(sim, self)
                with sim.busy_cv:
                    sim.busy += 1
                    self.counted = True
                self.fault = sim.pick_fault(self.path)
                if self.fault and self._early_fault():
                    return
                if role == "store":
                    return serve_store(sim, self)
                return route(sim, self)
            except HTTPError as e:
                self.send_error_json(e)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception:  # a simulator bug: say so, answer 500 if nothing was sent yet
                traceback.print_exc()
                self.close_connection = True
                if self.status_sent is None:
                    self.send_error_json(HTTPError(500))
            finally:
                self._finish_log()
                if getattr(self, "counted", False):
                    self.counted = False
                    with sim.busy_cv:
                        sim.busy -= 1
                        sim.busy_cv.notify_all()

        do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _dispatch

        def _early_fault(self):
            f = self.fault
            if f == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.status_sent = 0
                return True
            if f == "hang":  # accepted, never answered: a server wedged before its headers
                stall(sim, self.path)
                self.close_connection = True
                self.status_sent = 0
                return True
            if f == "expired":  # object storage refusing a signed URL past its life
                raise HTTPError(403, "AccessDenied: Request has expired", plain=True)
            if f == "429":
                self.send_error_json(HTTPError(429, "429 Too Many Requests",
                                               headers={"Retry-After": str(sim.faults.retry_after),
                                                        "RateLimit-Reset": str(int(time.time()) + sim.faults.retry_after)}))
                return True
            if f == "429bare" or (f == "ratelimit" and not sim.faults.window_headers):
                # application limits (check_rate_limit! in lib/api/helpers.rb ->
                # render_api_error!): a JSON 429 without RateLimit-Reset; newer releases add
                # Retry-After (the window's rest), older ones and ratelimit_headers=0 no header
                headers = {}
                if (f == "ratelimit" and sim.faults.window_headers is None
                        and sim.profile["limit_retry_after"]):
                    left = sim.faults.window_end - time.time()
                    headers["Retry-After"] = str(max(1, int(left + 0.999)))
                self.send_error_json(HTTPError(429, "This endpoint has been requested too many "
                                                    "times. Try again later.", headers=headers))
                return True
            if f == "ratelimit":  # Rack::Attack throttles (lib/gitlab/rack_attack.rb)
                end = sim.faults.window_end
                self.send_error_json(HTTPError(429, "Retry later", plain=True, headers={
                    "Retry-After": str(max(1, int(end - time.time() + 0.999))),
                    "RateLimit-Reset": str(int(end + 0.999))}))
                return True
            if f in ("500", "502", "503", "504"):
                self.send_error_json(HTTPError(int(f)))
                return True
            return False

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def send_error_json(self, e):
            if e.plain:
                body = (e.message + "\n").encode()
                ctype = "text/plain; charset=utf-8"
            else:
                key = "error" if e.status == 400 else "message"
                body = json.dumps({key: e.message}).encode()
                ctype = "application/json"
            self.send_response(e.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in e.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
                self.sent += len(body)

        def send_json(self, obj, status=200, headers=None):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.write_body(body)

        def write_body(self, body):
            """Writes a body, applying a truncate or stall fault halfway."""
            if self.command == "HEAD":
                return
            if self.fault in ("truncate", "stall", "hold") and len(body) > 1:
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.sent += half
                self.wfile.flush()
                if self.fault in ("stall", "hold"):
                    stall(sim, self.path, self.fault == "hold")
                self.close_connection = True
                raise ConnectionResetError
            self.wfile.write(body)
            self.sent += len(body)

        def send_file_range(self, path, start, length):
            """sendfile() of [start, start+length) of path, with truncate/stall faults."""
            if self.command == "HEAD":
                return
            self.wfile.flush()
            with open(path, "rb") as f:
                if self.fault == "drip":  # above any low-speed limit, far below any use
                    self.drip(f, start, length)
                    return
                if self.fault in ("truncate", "stall", "hold"):
                    length_now = max(1, length // 2)
                else:
                    length_now = length
                off, left = start, length_now
                while left > 0 and (sim.tls or self.link_rate):  # sendfile would bypass both
                    f.seek(off)
                    data = f.read(min(left, 1 << 20))
                    if not data:
                        break
                    self.wfile.write(data)
                    off += len(data)
                    left -= len(data)
                    self.sent += len(data)
                while left > 0:
                    n = os.sendfile(self.connection.fileno(), f.fileno(), off, min(left, 1 << 24))
                    if n == 0:
                        break
                    off += n
                    left -= n
                    self.sent += n
            if length_now < length:
                if self.fault in ("stall", "hold"):
                    stall(sim, self.path, self.fault == "hold")
                self.close_connection = True
                raise ConnectionResetError

        def drip(self, f, start, length):
            """Sends 256 bytes every 0.1 s (2.5 KiB/s) until done or the client hangs up."""
            print("gitlab_sim: dripping %s" % self.path, flush=True)
            f.seek(start)
            left = length
            while left > 0:
                data = f.read(min(left, 256))
                if not data:
                    break
                self.wfile.write(data)
                self.wfile.flush()
                self.sent += len(data)
                left -= len(data)
                time.sleep(0.1)

    return Handler


def stall(sim, path, hold=False):
    """Stops sending mid-body for stall_s seconds, or (a hold) until POST /-/sim/release, at
    most that long; says so on stdout for tests to wait on, a hold's end too."""
    print("gitlab_sim: stalling %s" % path, flush=True)
    if not hold:
        time.sleep(sim.faults.stall_s)
        return
    released = sim.released.wait(sim.faults.stall_s)
    print("gitlab_sim: hold of %s ended: %s" % (path, "released" if released else "timed out"),
          flush=True)


# ---------------------------------------------------------------- admin

def admin_job(sim, spec):
    """The job an admin request's body names ({"job": ID}), world lock held; 404 if none."""
    j = sim.world.jobs.get(int(spec["job"]))
    if not j:
        raise HTTPError(404)
    return j


def admin(sim, h):
    path = h.path.split("?")[0]
    body = h.body
    if path == "/-/sim/log":
        sim.settle()
        with sim.log_lock:
            data = ("\n".join(sim.log_lines) + ("\n" if sim.log_lines else "")).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        return
    if path == "/-/sim/settle":
        sim.settle()
    elif path == "/-/sim/log/reset":
        sim.settle()  # a request still being answered must not land in the new log
        with sim.log_lock:
            sim.log_lines = []
            if sim.log_file:
                sim.log_file.seek(0)
                sim.log_file.truncate()
    elif path == "/-/sim/link":
        sim.link.set(body.decode().strip())
    elif path == "/-/sim/faults":
        with sim.fault_lock:
            sim.faults.set(body.decode().strip())
    elif path == "/-/sim/release":
        sim.released.set()
    elif path == "/-/sim/conflict":
        sim.world.conflict = body.decode().strip() == "on"
    elif path == "/-/sim/pipeline":
        spec = json.loads(body)
        with sim.world.lock:
            project = sim.world.project(str(spec["project"]))
            new_id = max(sim.world.pipelines) + 1
            next_job = max(sim.world.jobs) + 1
            jobs = []
            for j in spec["jobs"]:
                j = dict(j)
                j.setdefault("id", next_job)
                next_job = max(next_job, j["id"]) + 1
                jobs.append(j)
            pl = {"id": new_id, "ref": spec["ref"], "jobs": jobs}
            for key in ("status", "source"):  # a failed or a dangling pipeline, on request
                if key in spec:
                    pl[key] = spec[key]
            sim.world.add_pipeline(project, pl)
    elif path == "/-/sim/job-status":
        # a job ends (its job token dies with it: 401 from then on). Body {"job": ID,
        # "status": "success"}
        spec = json.loads(body)
        with sim.world.lock:
            admin_job(sim, spec)["status"] = spec["status"]
    elif path == "/-/sim/job-access":
        # a job's `artifacts:access` changes (or a member's role does): who may download its
        # artifacts from now on. Body {"job": ID, "access": "developer"|"maintainer"|"none"|"all"}
        spec = json.loads(body)
        with sim.world.lock:
            admin_job(sim, spec)["artifacts_access"] = spec["access"]
    elif path == "/-/sim/delete-artifacts":
        # server-side deletion (an admin removing leaked artifacts; Ci::JobArtifacts::
        # DeleteService): the job stays, its archive is gone. Body {"job": ID}
        with sim.world.lock:
            sim.drop_archive(admin_job(sim, json.loads(body)))
    elif path == "/-/sim/shutdown":
        threading.Thread(target=shutdown, args=(sim,), daemon=True).start()
    else:
        raise HTTPError(404)
    h.send_json({"ok": True})


def shutdown(sim):
    sim.api_server.shutdown()
    if sim.store_server:
        sim.store_server.shutdown()


# ---------------------------------------------------------------- auth

class Principal:
    def __init__(self, kind, token=None):
        self.kind = kind  # "anon", "user", "job"
        self.token = token or {}
        self.user = self.token.get("user")
        self.scopes = self.token.get("scopes", ["api"])

    def level(self, project):
        if self.kind == "user":
            return project["members"].get(self.user, 0)
        return 0


def principal(sim, h, query, job_token_allowed=True):
    """Who asks. A job token on a route that is not job_token_allowed is not even looked at:
    find_user_from_job_token returns nothing there (lib/gitlab/auth/auth_finders.rb), so the
    request is anonymous, as if no token had come."""
    tok, kind = None, None
    if h.headers.get("PRIVATE-TOKEN"):
        tok, kind = h.headers["PRIVATE-TOKEN"], "private"
    elif (h.headers.get("Authorization") or "").startswith("Bearer "):
        tok, kind = h.headers["Authorization"][7:], "bearer"
    elif h.headers.get("JOB-TOKEN"):
        tok, kind = h.headers["JOB-TOKEN"], "job"
    elif query.get("job_token"):
        tok, kind = query["job_token"][0], "job"
    if tok is None or (kind == "job" and not job_token_allowed):
        return Principal("anon")
    t = sim.world.tokens.get(tok)
    if not t or t.get("expired") or t.get("revoked"):
        raise HTTPError(401)
    if kind == "bearer" and t.get("kind") == "job":
        # a job token as Bearer (lib/gitlab/auth/auth_finders.rb): taken where job tokens are,
        # elsewhere 401, never the anonymous treatment the JOB-TOKEN header gets
        if not (job_token_allowed and sim.profile["bearer_job_token_401"]):
            raise HTTPError(401)
        kind = "job"
    if kind == "job":
        if t.get("kind") != "job":
            raise HTTPError(401)
        j = sim.world.jobs.get(t.get("job"))
        if not j or j["status"] != "running":  # a job token dies with its job
            raise HTTPError(401)
        if t.get("jwt_expired") and sim.profile["jwt_job_tokens"]:
            # a JWT job token (lib/gitlab/ci/job_token/jwt.rb) carries its own expiry, which can
            # pass while the job still runs
            raise HTTPError(401)
        return Principal("job", t)
    if t.get("kind") == "job":
        raise HTTPError(401)
    if kind == "bearer" and t.get("kind") not in ("oauth", "personal", "project", "group"):
        raise HTTPError(401)
    if kind == "private" and t.get("kind") == "oauth":
        raise HTTPError(401)
    return Principal("user", t)


def readable(sim, who, project, job_token_ok):
    """The project if who may read it; 404 as GitLab answers for no access."""
    if project is None:
        raise HTTPError(404, "404 Project Not Found")
    if who.kind == "job":
        src = who.token.get("project")
        if src not in project.get("job_token_allowlist", [project["id"]]):
            # handle_job_token_failure! (lib/api/helpers.rb): 403, whatever the visibility
            source = sim.world.projects.get(src, {}).get("path", "?").split("/")[-1]
            raise HTTPError(403, "Authentication by CI/CD job token not allowed from %s to %s."
                            % (source, project["path"].split("/")[-1]))
        return project
    if project["visibility"] == "public" or who.level(project) > 0:
        return project
    raise HTTPError(404, "404 Project Not Found")


def need_write(who, project, level):
    if who.kind == "job":
        raise HTTPError(401)
    if who.kind == "anon":
        raise HTTPError(401)
    if "api" not in who.scopes:
        raise HTTPError(403, "403 Forbidden - insufficient_scope")
    if who.level(project) < level:
        raise HTTPError(403)


# ---------------------------------------------------------------- routing

ROUTES = []


def route_to(method, pattern, job_token=False):
    def deco(fn):
        ROUTES.append((method, re.compile("^" + API + pattern + "$"), fn, job_token))
        return fn
    return deco


def route(sim, h):
    raw_path, _, qs = h.path.partition("?")
    query = urllib.parse.parse_qs(qs, keep_blank_values=True)
    for method, rx, fn, job_ok in ROUTES:
        m = rx.match(raw_path)
        if not m:
            continue
        if h.command != method and not (method == "GET" and h.command == "HEAD"):
            continue
        if isinstance(job_ok, str):  # a profile entry: taken on some releases only
            job_ok = sim.profile[job_ok]
        who = principal(sim, h, query, job_ok)
        if who.kind == "anon" and h.command not in ("GET", "HEAD"):
            raise HTTPError(401)  # `before { authenticate_non_get! }` (lib/api/ci/job_artifacts.rb)
        # the world is locked while deciding; bodies are sent after, so a stalled or slow
        # transfer never holds up other requests
        with sim.world.lock:
            send = fn(sim, h, who, query, *m.groups())
        if callable(send):
            send()
        return
    if not raw_path.startswith(API):
        raise HTTPError(404, "404 Not Found", plain=True)
    raise HTTPError(404, "404 Not Found")


def paginate(sim, h, items, query, total_ok=True, keyset=False):
    if keyset and query.get("pagination", [""])[0] == "keyset":
        per = max(1, min(sim.args.max_per_page, int(query.get("per_page", ["20"])[0] or 20)))
        after = int(query.get("id_after", ["0"])[0] or 0)
        rest = [i for i in items if i["id"] > after]
        page = rest[:per]
        headers = {}
        if len(rest) > per:
            q = dict((k, v[0]) for k, v in query.items())
            q["id_after"] = str(page[-1]["id"])
            url = sim.external + h.path.split("?")[0] + "?" + urllib.parse.urlencode(q)
            headers["Link"] = '<%s>; rel="next"' % url
        return h.send_json(page, headers=headers)
    try:
        page_no = max(1, int(query.get("page", ["1"])[0] or 1))
        per = int(query.get("per_page", ["20"])[0] or 20)
    except ValueError:
        raise HTTPError(400, "page is invalid")
    per = max(1, min(sim.args.max_per_page, per))
    if keyset and (page_no - 1) * per >= 50000:
        raise HTTPError(405, "405 Method Not Allowed")
    total = len(items)
    pages = max(1, (total + per - 1) // per)
    chunk = items[(page_no - 1) * per: page_no * per]
    q = dict((k, v[0]) for k, v in query.items())

    def link(n):
        q2 = dict(q)
        q2["page"] = str(n)
        q2["per_page"] = str(per)
        return sim.external + h.path.split("?")[0] + "?" + urllib.parse.urlencode(q2)

    headers = {"X-Page": str(page_no), "X-Per-Page": str(per),
               "X-Next-Page": str(page_no + 1) if page_no < pages else "",
               "X-Prev-Page": str(page_no - 1) if page_no > 1 else ""}
    links = []
    if page_no > 1:
        links.append('<%s>; rel="prev"' % link(page_no - 1))
    if page_no < pages:
        links.append('<%s>; rel="next"' % link(page_no + 1))
    links.append('<%s>; rel="first"' % link(1))
    if total_ok and total <= 10000:
        links.append('<%s>; rel="last"' % link(pages))
        headers["X-Total"] = str(total)
        headers["X-Total-Pages"] = str(pages)
    headers["Link"] = ", ".join(links)
    h.send_json(chunk, headers=headers)


def project_json(sim, p):
    return {"id": p["id"], "name": p["path"].split("/")[-1], "path": p["path"].split("/")[-1],
            "path_with_namespace": p["path"], "name_with_namespace": p["path"].replace("/", " / "),
            "default_branch": p.get("default_branch", "main"), "visibility": p["visibility"],
            "web_url": "%s/%s" % (sim.external, p["path"])}


@route_to("GET", r"/version")
def get_version(sim, h, who, query):
    if who.kind == "anon":
        raise HTTPError(401)
    h.send_json({"version": sim.profile["version"], "revision": "sim"})


@route_to("GET", r"/user")
def get_user(sim, h, who, query):
    if who.kind != "user":
        raise HTTPError(401)
    u = sim.world.users.get(who.user, {})
    h.send_json({"id": u.get("id", 1), "username": who.user, "name": who.user, "state": "active",
                 "web_url": "%s/%s" % (sim.external, who.user)})


@route_to("GET", r"/job", job_token=True)
def get_job_of_token(sim, h, who, query):
    if who.kind != "job":
        raise HTTPError(401)
    j = sim.world.jobs.get(who.token.get("job"))
    if not j:
        raise HTTPError(401)
    h.send_json(sim.world.job_json(j, sim.external))


@route_to("GET", r"/projects")
def list_projects(sim, h, who, query):
    items = []
    membership = query.get("membership", ["false"])[0] == "true"
    for p in sorted(sim.world.projects.values(), key=lambda p: p["id"]):
        if who.kind == "user" and who.level(p) > 0:
            items.append(project_json(sim, p))
        elif not membership and p["visibility"] == "public":
            items.append(project_json(sim, p))
    if membership and who.kind == "anon":
        items = []
    paginate(sim, h, items, query, keyset=True)


@route_to("GET", r"/projects/([^/]+)")
def get_project(sim, h, who, query, pid):
    p = readable(sim, who, sim.world.project(pid), False)
    h.send_json(project_json(sim, p))


def ref_json(sim, p, kind, name, sha):
    out = {"name": name, "commit": {"id": sha, "short_id": sha[:8], "title": "A commit"}}
    if kind == "branches":
        out.update({"merged": False, "protected": name == p.get("default_branch"),
                    "default": name == p.get("default_branch"), "developers_can_push": False,
                    "developers_can_merge": False, "can_push": False,
                    "web_url": "%s/%s/-/tree/%s" % (sim.external, p["path"], name)})
    else:
        out.update({"message": "", "target": sha, "release": None, "protected": False})
    return out


def ref_list(sim, h, who, query, pid, kind):
    p = readable(sim, who, sim.world.project(pid), False)
    refs = p["branches"] if kind == "branches" else p["tags"]
    items = [ref_json(sim, p, kind, n, sha) for n, sha in sorted(refs.items())]
    paginate(sim, h, items, query)


@route_to("GET", r"/projects/([^/]+)/repository/branches")
def list_branches(sim, h, who, query, pid):
    ref_list(sim, h, who, query, pid, "branches")


@route_to("GET", r"/projects/([^/]+)/repository/tags")
def list_tags(sim, h, who, query, pid):
    ref_list(sim, h, who, query, pid, "tags")


@route_to("GET", r"/projects/([^/]+)/repository/branches/(.+)")
def get_branch(sim, h, who, query, pid, name):
    p = readable(sim, who, sim.world.project(pid), False)
    name = urllib.parse.unquote(name)
    if name not in p["branches"]:
        raise HTTPError(404, "404 Branch Not Found")
    h.send_json(ref_json(sim, p, "branches", name, p["branches"][name]))


@route_to("GET", r"/projects/([^/]+)/repository/tags/(.+)")
def get_tag(sim, h, who, query, pid, name):
    """GET /projects/:id/repository/tags/:tag_name (lib/api/tags.rb)."""
    p = readable(sim, who, sim.world.project(pid), False)
    name = urllib.parse.unquote(name)
    if name not in p["tags"]:
        raise HTTPError(404, "404 Tag Not Found")
    h.send_json(ref_json(sim, p, "tags", name, p["tags"][name]))


def pipeline_json(sim, pl):
    project = sim.world.projects[pl["project_id"]]
    return {"id": pl["id"], "iid": pl["id"], "project_id": pl["project_id"], "ref": pl["ref"],
            "sha": pl["sha"], "status": pl["status"],
            "source": pl["source"],
            "created_at": "2026-11-20T10:%02d:00.000Z" % (pl["id"] % 60),
            "updated_at": "2026-11-20T10:%02d:30.000Z" % (pl["id"] % 60),
            "web_url": "%s/%s/-/pipelines/%d" % (sim.external, project["path"], pl["id"])}


@route_to("GET", r"/projects/([^/]+)/pipelines", job_token="pipeline_job_token")
def list_pipelines(sim, h, who, query, pid):
    p = readable(sim, who, sim.world.project(pid), False)
    # Ci::PipelinesFinder leaves out child pipelines only: the other dangling sources
    # (security_orchestration_policy...) are listed (lib/api/ci/pipelines.rb)
    items = [pl for pl in p["pipelines"] if not pl["parent"]]
    for key in ("ref", "status", "sha", "source"):
        if key in query:
            items = [pl for pl in items if pl[key] == query[key][0]]
    items.sort(key=lambda pl: pl["id"], reverse=query.get("sort", ["desc"])[0] != "asc")
    paginate(sim, h, [pipeline_json(sim, pl) for pl in items], query)


def mr_of(sim, p, iid):
    for mr in p["merge_requests"]:
        if mr["iid"] == int(iid):
            return mr
    raise HTTPError(404, "404 Not found")


def mr_pipelines(sim, p, mr):
    """A merge request's pipelines: those on refs/merge-requests/<iid>/head, /merge (merged
    results) and /train (merge trains), newest first."""
    refs = {"refs/merge-requests/%d/%s" % (mr["iid"], k) for k in sim.profile["mr_refs"]}
    return sorted([pl for pl in p["pipelines"] if pl["ref"] in refs and not pl["parent"]],
                  key=lambda pl: pl["id"], reverse=True)


@route_to("GET", r"/projects/([^/]+)/merge_requests/(\d+)")
def get_mr(sim, h, who, query, pid, iid):
    """GET /projects/:id/merge_requests/:iid (lib/api/merge_requests.rb): head_pipeline is
    the newest pipeline of the MR."""
    p = readable(sim, who, sim.world.project(pid), False)
    mr = mr_of(sim, p, iid)
    pipes = mr_pipelines(sim, p, mr)
    sha = pipes[0]["sha"] if pipes else p["branches"].get(mr["source_branch"], "0" * 40)
    out = mr_json(sim, p, mr)
    out.update({"sha": sha, "head_pipeline": pipeline_json(sim, pipes[0]) if pipes else None})
    h.send_json(out)


def mr_json(sim, p, mr):
    return {"id": 70000 + mr["iid"], "iid": mr["iid"], "project_id": p["id"],
            "title": mr.get("title", "A change"), "state": mr.get("state", "opened"),
            "source_branch": mr["source_branch"],
            "target_branch": mr.get("target_branch", p.get("default_branch", "main")),
            "updated_at": mr.get("updated_at", "2026-11-20T11:%02d:00.000Z" % (mr["iid"] % 60)),
            "web_url": "%s/%s/-/merge_requests/%d" % (sim.external, p["path"], mr["iid"])}


@route_to("GET", r"/projects/([^/]+)/merge_requests")
def list_mrs(sim, h, who, query, pid):
    """GET /projects/:id/merge_requests (lib/api/merge_requests.rb, MergeRequestsFinder): state
    (default all), order_by created_at (default) or updated_at, sort desc (default); the list
    entries carry no head_pipeline (Entities::MergeRequestBasic)."""
    p = readable(sim, who, sim.world.project(pid), False)
    items = list(p["merge_requests"])
    state = query.get("state", ["all"])[0]
    if state != "all":
        items = [mr for mr in items if mr.get("state", "opened") == state]
    key = query.get("order_by", ["created_at"])[0]
    items = [mr_json(sim, p, mr) for mr in items]
    items.sort(key=lambda m: (m["updated_at"] if key == "updated_at" else m["id"], m["id"]),
               reverse=query.get("sort", ["desc"])[0] != "asc")
    paginate(sim, h, items, query)


@route_to("GET", r"/projects/([^/]+)/repository/commits/([0-9a-fA-F]+)", job_token=True)
def get_commit(sim, h, who, query, pid, sha):
    """GET /projects/:id/repository/commits/:sha (lib/api/commits.rb, job_token_allowed with
    the read_repositories policy): a full or abbreviated sha; an unknown or ambiguous one is
    404 Commit Not Found."""
    p = readable(sim, who, sim.world.project(pid), True)
    known = set(p["branches"].values()) | set(p["tags"].values())
    known |= {sim.world.pipelines[i]["sha"] for i in sim.world.pipelines
              if sim.world.pipelines[i]["project_id"] == p["id"]}
    found = sorted(k for k in known if k and k.startswith(sha.lower()))
    if len(found) != 1:
        raise HTTPError(404, "404 Commit Not Found")
    h.send_json({"id": found[0], "short_id": found[0][:8], "title": "A commit"})


@route_to("GET", r"/projects/([^/]+)/jobs/(\d+)/trace")
def get_trace(sim, h, who, query, pid, jid):
    """GET /projects/:id/jobs/:job_id/trace (lib/api/ci/jobs.rb): authorize_read_builds!, then
    the raw trace as text/plain (an empty body when there is none). Not job_token_allowed."""
    if who.kind == "anon" and sim.profile["jobs_routes_anonymous_401"]:
        raise HTTPError(401)  # `before { authenticate! }`, public projects too
    p = readable(sim, who, sim.world.project(pid), False)
    j = job_of(sim, p, jid)
    body = j.get("trace")
    if body is None:
        body = ("\x1b[0KRunning with gitlab-runner 17.0.0\n\x1b[32;1m$ make %s\x1b[0;m\n"
                "building %s\n\x1b[32;1mJob succeeded\x1b[0;m\n" % (j["name"], j["name"]))
    data = body.encode()
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Content-Disposition", 'infile; filename="%d.log"' % j["id"])
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.write_body(data)


@route_to("GET", r"/projects/([^/]+)/merge_requests/(\d+)/pipelines")
def list_mr_pipelines(sim, h, who, query, pid, iid):
    p = readable(sim, who, sim.world.project(pid), False)
    pipes = mr_pipelines(sim, p, mr_of(sim, p, iid))
    paginate(sim, h, [pipeline_json(sim, pl) for pl in pipes], query)


def pipeline_of(sim, p, plid):
    pl = sim.world.pipelines.get(int(plid))
    if not pl or pl["project_id"] != p["id"]:
        raise HTTPError(404, "404 Not found")
    return pl


@route_to("GET", r"/projects/([^/]+)/pipelines/(\d+)", job_token="pipeline_job_token")
def get_pipeline(sim, h, who, query, pid, plid):
    p = readable(sim, who, sim.world.project(pid), False)
    h.send_json(pipeline_json(sim, pipeline_of(sim, p, plid)))


@route_to("GET", r"/projects/([^/]+)/pipelines/(\d+)/jobs", job_token="pipeline_job_token")
def list_pipeline_jobs(sim, h, who, query, pid, plid):
    p = readable(sim, who, sim.world.project(pid), True)
    pl = pipeline_of(sim, p, plid)
    jobs = [sim.world.jobs[i] for i in pl["jobs"]]
    scopes = query.get("scope[]", []) + query.get("scope", [])
    if scopes:
        jobs = [j for j in jobs if j["status"] in scopes]
    if query.get("include_retried", ["false"])[0] != "true":
        jobs = [j for j in jobs if not j["retried"]]
    jobs.sort(key=lambda j: j["id"], reverse=True)
    paginate(sim, h, [sim.world.job_json(j, sim.external) for j in jobs], query, total_ok=False)


@route_to("GET", r"/projects/([^/]+)/pipelines/(\d+)/trigger_jobs", job_token="pipeline_job_token")
def list_trigger_jobs(sim, h, who, query, pid, plid):
    if not sim.profile["trigger_jobs"]:  # 19.2+ (lib/api/ci/jobs.rb): no such route before
        raise HTTPError(404, "404 Not Found")
    return list_bridges(sim, h, who, query, pid, plid)


@route_to("GET", r"/projects/([^/]+)/pipelines/(\d+)/bridges", job_token="pipeline_job_token")
def list_bridges(sim, h, who, query, pid, plid):
    p = readable(sim, who, sim.world.project(pid), False)
    pl = pipeline_of(sim, p, plid)
    items = []
    for n, c in enumerate(pl["children"]):
        child = sim.world.pipelines[c]
        items.append({"id": 900000 + c, "name": "trigger-%d" % n, "status": child["status"],
                      "pipeline": pipeline_json(sim, pl),
                      "downstream_pipeline": pipeline_json(sim, child)})
    paginate(sim, h, items, query)


def artifacts_visible(sim, who, p, j):
    """`artifacts:access: developer|maintainer|none` (app/policies/ci/build_policy.rb,
    read_job_artifacts; GITLAB-API.md "Identity"): a job whose artifacts are for that level or
    none answers 403 on the artifact endpoints (download and raw) to anyone below it, the job
    itself staying visible. A job token counts as its user. Fixture/admin job key
    "artifacts_access" (or "access")."""
    need = j.get("artifacts_access") or j.get("access")
    if not need or need == "all" or not sim.profile["artifacts_access_403"]:
        return
    level = p["members"].get(who.user, 0) if who.kind in ("user", "job") else 0
    if need == "none" or level < LEVELS[need]:
        raise HTTPError(403, "403 Forbidden")


def search_recent(sim, query, entry):
    return (sim.profile[entry]
            and query.get("search_recent_successful_pipelines", [""])[0] == "true")


def job_of(sim, p, jid):
    j = sim.world.jobs.get(int(jid))
    if not j or j["project_id"] != p["id"]:
        raise HTTPError(404, "404 Not found")
    return j


@route_to("GET", r"/projects/([^/]+)/jobs")
def list_jobs(sim, h, who, query, pid):
    if who.kind == "anon":
        raise HTTPError(401)  # `before { authenticate! }` (lib/api/ci/jobs.rb)
    p = readable(sim, who, sim.world.project(pid), False)
    jobs = [j for j in sim.world.jobs.values() if j["project_id"] == p["id"]]
    scopes = query.get("scope[]", []) + query.get("scope", [])
    if scopes:
        jobs = [j for j in jobs if j["status"] in scopes]
    jobs.sort(key=lambda j: j["id"], reverse=True)
    paginate(sim, h, [sim.world.job_json(j, sim.external) for j in jobs], query)


@route_to("GET", r"/projects/([^/]+)/jobs/(\d+)")
def get_job(sim, h, who, query, pid, jid):
    if who.kind == "anon" and sim.profile["jobs_routes_anonymous_401"]:
        raise HTTPError(401)  # `before { authenticate! }` (lib/api/ci/jobs.rb), public too
    p = readable(sim, who, sim.world.project(pid), False)
    h.send_json(sim.world.job_json(job_of(sim, p, jid), sim.external))


# -- artifacts

@route_to("GET", r"/projects/([^/]+)/jobs/(\d+)/artifacts", job_token=True)
def download_by_id(sim, h, who, query, pid, jid):
    p = readable(sim, who, sim.world.project(pid), True)
    j = job_of(sim, p, jid)
    if not sim.world.has_archive(j):
        raise HTTPError(404, "404 Not found")
    artifacts_visible(sim, who, p, j)
    return serve_archive(sim, h, j)


# `requirements: { ref_name: /.+/ }` (lib/api/ci/job_artifacts.rb): a ref may come with its
# slashes unencoded (python-gitlab sends refs/merge-requests/7/head so)
@route_to("GET", r"/projects/([^/]+)/jobs/artifacts/(.+)/download", job_token=True)
def download_by_ref(sim, h, who, query, pid, ref):
    p = readable(sim, who, sim.world.project(pid), True)
    name = query.get("job", [""])[0]
    j = sim.world.job_for_ref(p, urllib.parse.unquote(ref), name,
                              search_recent(sim, query, "search_recent_download"))
    if not j or not sim.world.has_archive(j):
        # a report-only job matched: `not_found! unless artifacts_file.exists?`
        # (present_artifacts_file! in lib/api/helpers.rb)
        raise HTTPError(404, "404 Not found")
    artifacts_visible(sim, who, p, j)
    return serve_archive(sim, h, j)


def decode_member_path(raw):
    """The member name a member route matches (COMMON member_path_rails): `//` collapsed on the
    raw path (an encoded %2F stays), a `..` segment 400 (path traversal), NUL or invalid UTF-8
    400 Bad Request, both plain text as middleware answers. serve_member drops a trailing `/`
    unless a literal folder entry has it (GITLAB-API.md says both)."""
    raw = re.sub(r"/{2,}", "/", raw)
    if ".." in raw.split("/"):  # a literal segment; an encoded ..%2Fx names a member
        raise HTTPError(400, "Potential path traversal attempt detected.", plain=True)
    b = urllib.parse.unquote_to_bytes(raw)
    if b"\0" in b:
        raise HTTPError(400, "Bad Request", plain=True)
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "Bad Request", plain=True)


@route_to("GET", r"/projects/([^/]+)/jobs/(\d+)/artifacts/tree", job_token=True)
def tree(sim, h, who, query, pid, jid):
    if sim.args.no_tree or not sim.profile["tree"]:
        # before 18.8 there is no tree route: the member route answers, for a member named
        # `tree` (404 when the archive has none)
        return raw_by_id(sim, h, who, query, pid, jid, "tree")
    p = readable(sim, who, sim.world.project(pid), True)
    j = job_of(sim, p, jid)
    if not sim.world.has_archive(j) or sim.world.expired(j):
        raise HTTPError(404, "404 Not found")
    artifacts_visible(sim, who, p, j)
    base = query.get("path", [""])[0].strip("/")
    recursive = query.get("recursive", ["false"])[0] == "true"
    try:
        all_entries = archive_index(j["archive_path"]).tree()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise HTTPError(404, "404 Not found")
    if recursive:
        entries = [e for e in all_entries if base == "" or e["path"].startswith(base + "/")]
    else:
        entries = [e for e in all_entries if e["_parent"] == base]
    entries = [{k: v for k, v in e.items() if k != "_parent"} for e in entries]
    paginate(sim, h, entries, query, total_ok=False)


@route_to("GET", r"/projects/([^/]+)/jobs/(\d+)/artifacts/(.+)", job_token=True)
def raw_by_id(sim, h, who, query, pid, jid, path):
    p = readable(sim, who, sim.world.project(pid), True)
    j = job_of(sim, p, jid)
    if not sim.world.has_archive(j) or sim.world.expired(j):
        raise HTTPError(404, "404 Not found")
    artifacts_visible(sim, who, p, j)
    return serve_member(sim, h, j, decode_member_path(path), sniff=False)


@route_to("GET", r"/projects/([^/]+)/jobs/artifacts/(.+)/raw/(.+)", job_token=True)
def raw_by_ref(sim, h, who, query, pid, ref, path):
    p = readable(sim, who, sim.world.project(pid), True)
    name = query.get("job", [""])[0]
    j = sim.world.job_for_ref(p, urllib.parse.unquote(ref), name,
                              search_recent(sim, query, "search_recent_raw"))
    if not j:
        raise HTTPError(404, "404 Not found")
    artifacts_visible(sim, who, p, j)
    if not sim.world.has_archive(j):
        # a report-only job matched: send_artifacts_entry on a nil archive raises (500)
        raise HTTPError(500, "500 Internal Server Error")
    return serve_member(sim, h, j, decode_member_path(path), sniff=True)


@route_to("POST", r"/projects/([^/]+)/jobs/(\d+)/artifacts/keep")
def keep(sim, h, who, query, pid, jid):
    p = readable(sim, who, sim.world.project(pid), False)
    need_write(who, p, LEVELS["developer"])
    j = job_of(sim, p, jid)
    if not sim.world.has_archive(j) or sim.world.expired(j):
        raise HTTPError(404, "404 Not found")
    j["expire_at"] = None
    h.send_json(sim.world.job_json(j, sim.external))


@route_to("POST", r"/projects/([^/]+)/jobs/(\d+)/erase")
def erase_job(sim, h, who, query, pid, jid):
    """POST /projects/:id/jobs/:job_id/erase (lib/api/ci/jobs.rb, Ci::BuildEraseService): GitLab's
    remedy for a secret leaked in a log. A finished job with a log or artifacts loses both and
    gets erased_at; 403 "Job is not erasable!" otherwise. 201 with the job."""
    p = readable(sim, who, sim.world.project(pid), False)
    need_write(who, p, LEVELS["maintainer"])
    j = job_of(sim, p, jid)
    if j["status"] not in ("success", "failed", "canceled") or j.get("erased_at"):
        raise HTTPError(403, "403 Forbidden - Job is not erasable!")
    j["archive_path"] = None
    j["reports"] = []
    j["trace"] = ""
    j["erased_at"] = "2026-11-21T09:00:00.000Z"
    h.send_json(sim.world.job_json(j, sim.external), status=201)


@route_to("DELETE", r"/projects/([^/]+)/jobs/(\d+)/artifacts")
def delete_job_artifacts(sim, h, who, query, pid, jid):
    p = readable(sim, who, sim.world.project(pid), False)
    need_write(who, p, LEVELS["maintainer"])
    j = job_of(sim, p, jid)
    if sim.world.conflict:
        raise HTTPError(409, "409 Conflict: project statistics are being refreshed")
    sim.drop_archive(j)
    h.send_response(204)
    h.send_header("Content-Length", "0")
    h.end_headers()


@route_to("DELETE", r"/projects/([^/]+)/artifacts")
def delete_project_artifacts(sim, h, who, query, pid):
    p = readable(sim, who, sim.world.project(pid), False)
    need_write(who, p, LEVELS["maintainer"])
    if sim.world.conflict:
        raise HTTPError(409, "409 Conflict: project statistics are being refreshed")
    for j in sim.world.jobs.values():
        if j["project_id"] == p["id"] and sim.world.has_archive(j) and not sim.world.locked(j):
            j["expire_at"] = "2000-01-01T00:00:00.000Z"
    h.send_json({"message": "202 Accepted"}, status=202)


# ---------------------------------------------------------------- serving bytes

def parse_range(header, size):
    """(start, length) for a single byte range, None when absent, 'bad' when unsatisfiable."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or multiple ranges: ignored, as servers do
    if not m.group(1):
        n = int(m.group(2))
        if n == 0:
            return "bad"
        start = max(0, size - n)
        return (start, size - start)
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "bad"
    end = min(end, size - 1)
    return (start, end - start + 1)


def serve_archive(sim, h, j):
    path = j["archive_path"]
    if sim.s3:
        # object storage, direct download (present_carrierwave_file! in lib/api/helpers.rb):
        # 302 to a presigned GET; HEAD 303 to a URL signed for HEAD only (GITLAB-API.md)
        h.send_response(303 if h.command == "HEAD" else 302)
        h.send_header("Location", sim.s3.url(j, h.command))
        h.send_header("Content-Length", "0")
        h.end_headers()
        return None
    if sim.args.storage == "redirect":
        name = os.path.basename(path)
        expires = int(time.time()) + sim.args.url_lifetime
        # workhorse/internal/sendurl: HEAD gets 303 to a URL signed for HEAD only
        head = h.command == "HEAD" and sim.profile["head_303_signed_for_head"]
        url = "%s/store/%s?expires=%d&sig=%s" % (sim.store_base, name, expires,
                                                 sim.sign(name, expires, "HEAD" if head else "GET"))
        h.send_response(303 if head else 302)
        h.send_header("Location", url)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return None
    if sim.args.storage == "proxied" and h.fault in STORE_ERRORS:
        # the store's own answer passes straight through (workhorse/internal/sendurl)
        status, code, message = STORE_ERRORS[h.fault]
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s'
                '</Message><Key>%s</Key><RequestId>sim</RequestId></Error>'
                % (code, message, os.path.basename(path))).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.write_body(body)
        return None
    proxied = sim.args.storage == "proxied"
    return lambda: send_bytes(sim, h, path, chunked=proxied, multi=not proxied)


# fault kinds of --storage proxied: an S3 store's error answers (status, Code, Message)
STORE_ERRORS = {"store403": (403, "AccessDenied", "Access Denied"),
                "store404": (404, "NoSuchKey", "The specified key does not exist."),
                "store503": (503, "SlowDown", "Please reduce your request rate.")}


def send_bytes(sim, h, path, chunked=False, multi=False):
    st = os.stat(path)
    size = st.st_size
    lm = email.utils.formatdate(st.st_mtime, usegmt=True)
    etag = archive_etag(sim, path, st)
    if etag == WEAK_CONSTANT_ETAG and h.headers.get("If-None-Match") == etag:
        # those servers answer 304 to their constant tag even after the artifact changed
        h.send_response(304)
        h.send_header("ETag", etag)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return
    ims = h.headers.get("If-Modified-Since")
    if ims and not h.headers.get("Range"):
        try:
            if email.utils.parsedate_to_datetime(ims).timestamp() >= int(st.st_mtime):
                h.send_response(304)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        except (TypeError, ValueError):
            pass
    header = h.headers.get("Range") or ""
    if (multi and not sim.args.no_range and "," in header
            and if_range_holds(h.headers.get("If-Range"), etag, st)):
        return send_multipart(sim, h, path, header, size, lm, etag)
    rng = None if sim.args.no_range else parse_range(h.headers.get("Range"), size)
    if rng and not if_range_holds(h.headers.get("If-Range"), etag, st):
        rng = None  # another version than the client holds: the whole new body
    if rng == "bad":
        h.send_response(416)
        h.send_header("Content-Range", "bytes */%d" % size)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return
    start, length = rng if rng else (0, size)
    h.send_response(206 if rng else 200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Disposition", 'attachment; filename="artifacts.zip"')
    h.send_header("Last-Modified", lm)
    if etag:
        h.send_header("ETag", etag)
    if not sim.args.no_range:
        h.send_header("Accept-Ranges", "bytes")
    if rng:
        h.send_header("Content-Range", "bytes %d-%d/%d" % (start, start + length - 1, size))
    if chunked:
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        send_chunked(sim, h, path, start, length)
    else:
        h.send_header("Content-Length", str(length))
        h.end_headers()
        h.send_file_range(path, start, length)


def send_multipart(sim, h, path, header, size, lm, etag):
    """Several ranges in one Range header, as Go's http.ServeContent answers them on local
    storage (COMMON multipart_byteranges): the satisfiable ones as 206 multipart/byteranges,
    one of them as a plain 206, none 416, more bytes than the file the whole file (200)."""
    spec = header.strip()
    if not spec.startswith("bytes="):
        return send_bytes(sim, h, path)  # malformed: ignored, the whole body
    ranges = []
    for part in spec[len("bytes="):].split(","):
        r = parse_range("bytes=" + part.strip(), size)
        if r is None:
            return send_bytes(sim, h, path)
        if r != "bad":
            ranges.append(r)
    if not ranges:
        h.send_response(416)
        h.send_header("Content-Range", "bytes */%d" % size)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return None
    if len(ranges) == 1 or sum(n for _, n in ranges) > size:
        whole = len(ranges) > 1
        start, length = (0, size) if whole else ranges[0]
        h.send_response(200 if whole else 206)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Last-Modified", lm)
        h.send_header("Accept-Ranges", "bytes")
        if not whole:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, start + length - 1, size))
        h.send_header("Content-Length", str(length))
        h.end_headers()
        h.send_file_range(path, start, length)
        return None
    boundary = hashlib.sha1(header.encode()).hexdigest()[:30]
    parts = []
    with open(path, "rb") as f:
        for i, (start, length) in enumerate(ranges):
            f.seek(start)
            parts.append(("%s--%s\r\nContent-Range: bytes %d-%d/%d\r\nContent-Type: "
                          "application/octet-stream\r\n\r\n" % ("\r\n" if i else "", boundary, start,
                                                               start + length - 1, size)).encode()
                         + f.read(length))
    body = b"".join(parts) + ("\r\n--%s--\r\n" % boundary).encode()
    h.send_response(206)
    h.send_header("Content-Type", "multipart/byteranges; boundary=" + boundary)
    h.send_header("Last-Modified", lm)
    if etag:
        h.send_header("ETag", etag)
    h.send_header("Accept-Ranges", "bytes")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.write_body(body)
    return None


def if_range_holds(if_range, etag, st):
    """checkIfRange of Go's net/http (what Workhorse's http.ServeContent runs): a strong ETag
    must match; a date must equal Last-Modified to the second; a weak ETag never holds."""
    if not if_range:
        return True
    if if_range.startswith('"'):
        return etag is not None and not etag.startswith("W/") and if_range == etag
    try:
        return int(email.utils.parsedate_to_datetime(if_range).timestamp()) == int(st.st_mtime)
    except (TypeError, ValueError):
        return False


# Rack::ETag's digest of an empty Rails body (GitLab issue 371991): the same on every download
WEAK_CONSTANT_ETAG = 'W/"12ae32cb1ec02d01eda3581b127c1fee"'


def archive_etag(sim, path, st):
    """The download's ETag as --etag says. Workhorse serves a local archive with
    http.ServeContent(w, r, "", modtime, file) (workhorse/internal/sendfile/sendfile.go): Range,
    Last-Modified and If-Range, but no ETag of its own; one appears only if Rails set it first,
    and from object storage the store's own (S3: an MD5, "-N" for multipart). GITLAB-API.md's
    "newest servers send a strong sha256 ETag" is not confirmed by that source, so it is an
    option: inode (the default, what the simulator always sent), sha256 (strong, the
    archive's digest), weak (W/"<digest>", one per archive), weak-constant (the one tag most
    servers in the field send on every download, GITLAB-API.md "ETags"), none (closest to local
    storage per sendfile.go)."""
    kind = sim.args.etag or sim.profile["etag"] or "inode"
    if kind == "none":
        return None
    if kind == "weak-constant":
        return WEAK_CONSTANT_ETAG
    if kind == "inode":
        return '"%x-%x"' % (st.st_ino, st.st_size)
    with sim.world.lock:
        digest = sim.etags.get(path)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        with sim.world.lock:
            sim.etags[path] = digest
    return ('W/"%s"' if kind == "weak" else '"%s"') % digest


def send_chunked(sim, h, path, start, length):
    if h.command == "HEAD":
        return
    limit = length // 2 if h.fault in ("truncate", "stall") else length
    with open(path, "rb") as f:
        f.seek(start)
        left = limit
        while left > 0:
            data = f.read(min(left, 1 << 20))
            if not data:
                break
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.sent += len(data)
            left -= len(data)
    if limit < length:
        h.wfile.flush()
        if h.fault == "stall":
            stall(sim, h.path)
        h.close_connection = True
        raise ConnectionResetError
    h.wfile.write(b"0\r\n\r\n")


def serve_store(sim, h):
    m = re.fullmatch(r"/store/([^/?]+)\?expires=(\d+)&sig=([0-9a-f]+)", h.path)
    if not m:
        raise HTTPError(403, "AccessDenied", plain=True)
    name, expires, sig = m.group(1), int(m.group(2)), m.group(3)
    if (not hmac.compare_digest(sig, sim.sign(name, expires, h.command)) and not (
            h.command == "HEAD" and not sim.profile["head_303_signed_for_head"]
            and hmac.compare_digest(sig, sim.sign(name, expires)))) or expires < time.time():
        raise HTTPError(403, "AccessDenied: Request has expired", plain=True)
    path = os.path.join(sim.state_dir, name)
    if not os.path.exists(path):
        raise HTTPError(404, "NoSuchKey", plain=True)
    send_bytes(sim, h, path)


def serve_member(sim, h, j, name, sniff):
    """One member, inflated and streamed as Workhorse does: the first exact name match in the
    central directory, Content-Length = its uncompressed size, never a Range, never a redirect.
    A failure while inflating leaves the body short of Content-Length."""
    try:
        idx = archive_index(j["archive_path"])
    except (zipfile.BadZipFile, OSError, ValueError):
        raise HTTPError(500, "500 Internal Server Error")
    zi = idx.first.get(name)
    if zi is None and name.endswith("/") and sim.profile["member_path_rails"]:
        zi = idx.first.get(name[:-1])  # the trailing `/` Rails drops, for a file's name
        name = name[:-1]
    if zi is None:
        raise HTTPError(404, "404 Not Found", plain=True)
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if sim.profile["member_octet_stream"]:
        # newer Workhorse (internal/artifacts/entry.go): octet-stream for all but SVG, no sniffing
        ctype = "image/svg+xml" if name.lower().endswith(".svg") else "application/octet-stream"
        sniff = False
    try:
        src = idx.zip.open(zi) if not zi.is_dir() else io.BytesIO(b"")
        head = src.read(4096)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, zlib.error):
        raise HTTPError(500, "500 Internal Server Error")
    if sniff and head:
        try:
            head.decode("utf-8")
            if b"\0" not in head:
                ctype = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            pass
    size = 0 if zi.is_dir() else zi.file_size
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(size))
    h.send_header("Content-Disposition", 'attachment; filename="%s"' % os.path.basename(name.rstrip("/")))

    def send():
        with src:
            h.end_headers()
            stream_member(sim, h, src, head, size)
    return send


def stream_member(sim, h, src, head, size):
    if h.command == "HEAD":
        return
    limit = size // 2 if h.fault in ("truncate", "stall") and size > 1 else size
    data = head
    while data and h.sent < limit:
        data = data[:limit - h.sent]
        h.wfile.write(data)
        h.sent += len(data)
        try:
            data = src.read(1 << 20)
        except (zipfile.BadZipFile, OSError, ValueError, zlib.error):
            break  # a broken member: the body ends short, as Workhorse's does
    if h.sent < size:
        h.wfile.flush()
        if h.fault == "stall":
            stall(sim, h.path)
        h.close_connection = True
        raise ConnectionResetError


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--log")
    ap.add_argument("--storage", choices=["local", "redirect", "proxied", "s3"], default="local")
    ap.add_argument("--s3-endpoint", help="--storage s3: the S3 store's URL (keys from "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    ap.add_argument("--s3-bucket", default="artifacts", help="--storage s3: the bucket (made if "
                    "missing)")
    ap.add_argument("--no-tree", action="store_true")
    ap.add_argument("--faults", default="")
    ap.add_argument("--state-dir")
    ap.add_argument("--lifetime", type=float, default=3600)
    ap.add_argument("--external-url")
    ap.add_argument("--url-lifetime", type=int, default=600)
    ap.add_argument("--no-range", action="store_true",
                    help="ignore Range on whole-archive downloads: always 200 and everything")
    ap.add_argument("--tls-cert", help="serve the API over https with this PEM certificate")
    ap.add_argument("--tls-key", help="the certificate's PEM private key")
    ap.add_argument("--etag", choices=["inode", "sha256", "weak", "weak-constant", "none"],
                    help="the ETag of archive downloads (see archive_etag; default: the "
                         "profile's, inode on newest)")
    ap.add_argument("--gitlab-version", choices=sorted(PROFILES), default="newest",
                    help="the GitLab release to play (PROFILES); default newest")
    ap.add_argument("--link-rate", type=parse_rate, default=0,
                    help="bytes a second each connection sends at most (100M, 512k); 0: no cap")
    ap.add_argument("--link-delay-ms", type=float, default=0,
                    help="delay before every answer, API and storage alike")
    ap.add_argument("--max-per-page", type=int, default=100,
                    help="clamp per_page lower than GitLab's 100, to force many pages")
    args = ap.parse_args()
    if not re.match(r"^127\.", args.host):
        sys.exit("gitlab_sim: serves on loopback only")
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("gitlab_sim: --tls-cert and --tls-key go together")
    global FIXTURE_DIR
    FIXTURE_DIR = os.path.dirname(os.path.abspath(args.fixture))
    with open(args.fixture, encoding="utf-8") as f:
        fixture = json.load(f)
    sim = Sim(args, fixture)
    servers = [sim.api_server] + ([sim.store_server] if sim.store_server else [])
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=shutdown, args=(sim,)).start())
    signal.signal(signal.SIGINT, lambda *a: threading.Thread(target=shutdown, args=(sim,)).start())
    timer = threading.Timer(args.lifetime, shutdown, args=(sim,))
    timer.daemon = True
    timer.start()
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(sim.base + "\n")
        os.rename(tmp, args.ready_file)
    print("gitlab_sim: serving %s (storage %s)" % (sim.base, args.storage), flush=True)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.5)
    timer.cancel()
    if not args.state_dir:
        for name in os.listdir(sim.state_dir):
            os.unlink(os.path.join(sim.state_dir, name))
        os.rmdir(sim.state_dir)


if __name__ == "__main__":
    main()
