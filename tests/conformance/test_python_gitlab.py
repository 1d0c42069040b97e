#!/usr/bin/python3
"""Conformance: the simulator driven by python-gitlab, a GitLab client nobody here wrote.

If python-gitlab and the simulator disagree, the simulator is wrong. Every wait has a deadline;
the simulator is started on loopback and stopped at the end, also on failure. GITLAB_VERSION
(a key of the simulator's PROFILES, default newest) picks the GitLab release it plays: the
fidelity checks run on every release, the storage, ETag and TLS modes on the newest only.
"""
import importlib.util
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request
import warnings
import zipfile

import gitlab

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.environ.get("ARTIFACTFS_SIM", os.path.join(HERE, "..", "sim", "gitlab_sim.py"))
FIXTURE = os.path.join(os.path.dirname(SIM), "fixtures", "default.json")
TOKENS = {t["role"]: t["value"] for t in json.load(open(FIXTURE, encoding="utf-8"))["tokens"]}
VERSION = os.environ.get("GITLAB_VERSION") or "newest"
_spec = importlib.util.spec_from_file_location("gitlab_sim", SIM)
_sim_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sim_module)
PROFILE = _sim_module.PROFILES[VERSION]  # what this release does, as the simulator's table says

passed = 0
failed = 0


def check(desc, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + desc)
    else:
        failed += 1
        print("not ok - %s %s" % (desc, detail))


def raises(fn, code):
    try:
        fn()
    except gitlab.exceptions.GitlabError as e:
        return e.response_code == code
    return False


def fetch(url, method="GET", headers=None, body=None):
    """(status, headers, body) of one plain HTTP request, no redirect followed."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


class Sim:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="conformance-")
        self.log = os.path.join(self.dir, "log")
        ready = os.path.join(self.dir, "ready")
        self.proc = subprocess.Popen(
            [sys.executable, SIM, "--fixture", FIXTURE, "--port", "0", "--ready-file", ready,
             "--log", self.log, "--lifetime", "300", "--state-dir", os.path.join(self.dir, "st"),
             "--gitlab-version", VERSION]
            + list(extra), stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("the simulator did not start: " + open(os.path.join(self.dir, "stderr")).read()[-2000:])
            time.sleep(0.05)
        self.url = open(ready).read().strip()

    def requests(self):
        self.admin("settle")  # the last response may be out before its log line is written
        with open(self.log, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def archive(self, job_id):
        with open(os.path.join(self.dir, "st", "job-%d.zip" % job_id), "rb") as f:
            return f.read()

    def admin(self, what, body=""):
        status, _, data = fetch(self.url + "/-/sim/" + what, "POST", body=body.encode())
        if status != 200:
            raise RuntimeError("admin %s: %d %r" % (what, status, data))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def local_mode(sim):
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"], per_page=2)
    projects = gl.projects.list(membership=True, get_all=True)
    check("projects list follows pagination over several pages",
          sorted(p.id for p in projects) == [101, 102, 103, 104], [p.id for p in projects])
    check("keyset pagination lists the same projects",
          sorted(p.id for p in gl.projects.list(membership=True, pagination="keyset",
                                               order_by="id", sort="asc", get_all=True))
          == [101, 102, 103, 104])
    app = gl.projects.get("acme/platform/app")
    check("a project by full path", app.id == 101 and app.path_with_namespace == "acme/platform/app")
    check("a project by id", gl.projects.get(101).path_with_namespace == "acme/platform/app")
    check("branches", sorted(b.name for b in app.branches.list(get_all=True)) == ["feature/login", "main"])
    check("tags", [t.name for t in app.tags.list(get_all=True)] == ["v1.0"])
    pls = app.pipelines.list(ref="main", status="success", order_by="id", sort="desc", get_all=True)
    # the listing leaves out child pipelines only: the scan-policy pipeline 560 is listed
    check("successful pipelines of main, newest first, children excluded, dangling ones kept",
          [p.id for p in pls] == [560, 510, 500] and pls[0].source == "security_orchestration_policy",
          [p.id for p in pls])
    jobs = app.pipelines.get(510).jobs.list(scope=["success"], get_all=True)
    check("a pipeline's jobs, retried excluded, newest first",
          [j.id for j in jobs] == [1106, 1105, 1104, 1103, 1102, 1101], [j.id for j in jobs])
    bridges = app.pipelines.get(510).bridges.list(get_all=True)
    check("bridges name the child pipeline", [b.downstream_pipeline["id"] for b in bridges] == [511])
    job = app.jobs.get(1101)
    check("a job has its archive in artifacts[]",
          any(a["file_type"] == "archive" for a in job.attributes["artifacts"]) and job.artifacts_file["size"] > 0)
    data = job.artifacts()
    check("job.artifacts() is the built archive", data == sim.archive(1101))
    by_ref = app.artifacts.download(ref_name="main", job="build")
    check("download by ref picks the newest successful pipeline's parent job", by_ref == sim.archive(1101))
    check("download by ref for a child pipeline's job",
          app.artifacts.download(ref_name="main", job="package") == sim.archive(1111))
    check("download by ref is 404 when the newest pipeline lacks the job",
          raises(lambda: app.artifacts.download(ref_name="main", job="legacy"), 404))
    member = app.artifacts.raw("main", "my report.txt", "build")
    expect = zipfile.ZipFile(io.BytesIO(data)).read("my report.txt")
    check("raw member by ref", member == expect)
    check("raw member by job id", job.artifact("lib/hello.c") ==
          zipfile.ZipFile(io.BytesIO(data)).read("lib/hello.c"))
    check("a raw folder without a slash is 404", raises(lambda: job.artifact("lib"), 404))
    check("a missing member is 404", raises(lambda: job.artifact("nope"), 404))
    check("dup.txt: the first duplicate wins, as Workhorse",
          app.jobs.get(1105).artifact("dup.txt") == b"first\n")
    check("a corrupt archive's member is 500", raises(lambda: app.jobs.get(1106).artifact("x"), 500))
    more_local_checks(sim, gl, app)
    kept = app.jobs.get(1101)
    kept.keep_artifacts()
    check("keep clears the expiry", app.jobs.get(1101).artifacts_expire_at is None)
    n = len(sim.requests())
    app.jobs.get(1102).delete_artifacts()
    check("delete removes the archive", raises(lambda: app.jobs.get(1102).artifacts(), 404)
          and not hasattr(app.jobs.get(1102), "artifacts_file"))
    app.artifacts.delete()
    statuses = [r["status"] for r in sim.requests()[n:] if r["method"] == "DELETE"]
    check("project-wide delete is 202, job delete 204", statuses == [204, 202], statuses)
    old = gl.projects.get(103).jobs.get(1701)
    check("an expired archive is still served whole", old.artifacts() == sim.archive(1701))
    check("an expired archive's member is 404 by job id", raises(lambda: old.artifact("README"), 404))
    check("by ref, a job missing from the newest pipeline is 404 though an older one had it",
          raises(lambda: gl.projects.get(103).artifacts.raw("main", "README", "build"), 404))

    reporter = gitlab.Gitlab(sim.url, private_token=TOKENS["reporter"])
    check("read_api cannot delete (403)",
          raises(lambda: reporter.projects.get(101, lazy=True).jobs.get(1101, lazy=True).delete_artifacts(), 403))
    check("a private project without access is 404",
          raises(lambda: reporter.projects.get("acme/secret"), 404))
    bad = gitlab.Gitlab(sim.url, private_token=TOKENS["expired"])
    check("an expired token is 401", raises(lambda: bad.projects.get(101), 401))
    oauth = gitlab.Gitlab(sim.url, oauth_token=TOKENS["oauth"])
    check("an OAuth token reads the private project", oauth.projects.get(102).id == 102)
    anon = gitlab.Gitlab(sim.url)
    check("anonymous reads a public project", anon.projects.get(101).id == 101)
    check("anonymous gets 404 for a private one", raises(lambda: anon.projects.get(102), 404))

    jt = gitlab.Gitlab(sim.url, job_token=TOKENS["job"])
    p = jt.projects.get(101, lazy=True)
    check("a job token downloads by ref", p.artifacts.download(ref_name="main", job="build") == sim.archive(1101))
    check("a job token downloads from an allowlisted private project",
          jt.projects.get(102, lazy=True).jobs.get(1601, lazy=True).artifacts() == sim.archive(1601))
    check("a job token cannot keep (401)",
          raises(lambda: p.jobs.get(1101, lazy=True).keep_artifacts(), 401))
    # a job token is ignored off the job_token_allowed routes: the anonymous listing
    check("a job token on /projects is ignored: the anonymous listing",
          sorted(p.id for p in jt.projects.list(get_all=True)) == [101, 103])

    req = urllib.request.Request(sim.url + "/api/v4/projects/101/jobs/1101/artifacts",
                                 headers={"Range": "bytes=10-19", "PRIVATE-TOKEN": TOKENS["maintainer"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
        check("Range gives 206 and the exact bytes",
              r.status == 206 and body == sim.archive(1101)[10:20]
              and r.headers["Content-Range"].endswith("/%d" % len(sim.archive(1101))))
    req = urllib.request.Request(sim.url + "/api/v4/projects/101/jobs/1101/artifacts",
                                 headers={"Range": "bytes=99999999-", "PRIVATE-TOKEN": TOKENS["maintainer"]})
    try:
        urllib.request.urlopen(req, timeout=30)
        check("an unsatisfiable Range is 416", False)
    except urllib.error.HTTPError as e:
        check("an unsatisfiable Range is 416", e.code == 416 and e.headers["Content-Range"].startswith("bytes */"))
    req = urllib.request.Request(sim.url + "/api/v4/projects/101/jobs/1101/artifacts/my%20report.txt",
                                 headers={"Range": "bytes=0-3", "PRIVATE-TOKEN": TOKENS["maintainer"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        check("a single member ignores Range (200, whole)", r.status == 200 and r.read() == expect)

    # Last: from here on the ref's newest pipeline is this one.
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "main", "jobs": [
        {"id": 1900, "name": "build", "archive": {"members": [{"path": "NEW", "text": "new\n"}]}}]}))
    check("a pipeline added at run time is the ref's newest",
          app.artifacts.raw("main", "NEW", "build") == b"new\n"
          and raises(lambda: app.artifacts.download(ref_name="main", job="package"), 404))


def more_local_checks(sim, gl, app):
    gl.auth()
    check("auth() with a PAT names its user", gl.user.username == "maria")
    check("version()", gl.version()[0] == PROFILE["version"])
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    api = sim.url + "/api/v4/projects/101/jobs/"
    status, _, body = fetch(api + "1101/artifacts/tree?path=bin", headers=tok)
    check("tree lists a folder (no folder entry in the zip) with modes",
          status == 200 and json.loads(body) == [{"name": "hello", "path": "bin/hello", "type": "file",
                                                  "size": 40, "mode": "100755"}], body)
    status, hdrs, body = fetch(api + "1101/artifacts/tree?recursive=true&per_page=100", headers=tok)
    paths = [e["path"] for e in json.loads(body)]
    check("recursive tree has implied folders, empty folders and deep files, no X-Total",
          "deep/a/b/c/" in paths and "empty-dir/" in paths and "deep/a/b/c/d/e.txt" in paths
          and "X-Total" not in hdrs, paths)
    whole = sim.archive(1101)
    status, hdrs, body = fetch(api + "1101/artifacts", headers=tok)
    check("whole archive headers as GitLab's local storage",
          status == 200 and hdrs["Content-Type"] == "application/octet-stream"
          and hdrs["Content-Disposition"] == 'attachment; filename="artifacts.zip"'
          and hdrs["Accept-Ranges"] == "bytes" and hdrs["ETag"] and hdrs["Last-Modified"]
          and int(hdrs["Content-Length"]) == len(whole) and body == whole, dict(hdrs))
    status, _, body = fetch(api + "1101/artifacts", headers=dict(tok, **{"If-Modified-Since": hdrs["Last-Modified"]}))
    check("If-Modified-Since gives 304", status == 304 and body == b"", status)
    status, hdrs, body = fetch(api + "1101/artifacts", headers=dict(tok, Range="bytes=-5"))
    check("a suffix Range gives the last bytes", status == 206 and body == whole[-5:]
          and hdrs["Content-Range"] == "bytes %d-%d/%d" % (len(whole) - 5, len(whole) - 1, len(whole)))
    status, _, body = fetch(api + "1101/artifacts/%2Fetc%2Fpasswd", headers=tok)
    check("a missing member is a plain-text 404", status == 404 and not body.startswith(b"{"), body)
    status, _, body = fetch(api + "1105/artifacts/..%2Fx", headers=tok)
    check("'../x' matches only the member literally named so", status == 200 and body == b"escaped!\n")
    status, _, _ = fetch(api + "1105/artifacts/a%00b", headers=tok)
    check("a NUL in a member path is 400", status == 400)
    status, _, _ = fetch(api + "1101/artifacts/empty-dir/", headers=tok)
    check("'dir/' matches a literal folder entry", status == 200)
    status, _, _ = fetch(api + "1101/artifacts/bin/", headers=tok)
    check("'dir/' without a folder entry is 404", status == 404)

    fin = gitlab.Gitlab(sim.url, job_token=TOKENS["job-finished"])
    check("a job token whose job has finished is 401",
          raises(lambda: fin.projects.get(101, lazy=True).artifacts.download(ref_name="main", job="build"), 401))
    rev = gitlab.Gitlab(sim.url, private_token=TOKENS["revoked"])
    check("a revoked token is 401", raises(lambda: rev.projects.get(101), 401))
    jt = gitlab.Gitlab(sim.url, job_token=TOKENS["job"])
    check("a job token outside the target's allowlist is 403",
          raises(lambda: jt.projects.get(103, lazy=True).jobs.get(1701, lazy=True).artifacts(), 403))
    status, _, _ = fetch(sim.url + "/api/v4/projects/102/jobs/artifacts/main/raw/secret.txt?job=build&job_token="
                        + TOKENS["job"])
    check("the job_token query parameter works too", status == 200)
    dev = gitlab.Gitlab(sim.url, private_token=TOKENS["developer"])
    before = app.jobs.get(1102).artifacts_expire_at
    dj = dev.projects.get(101, lazy=True).jobs.get(1102, lazy=True)
    dj.keep_artifacts()
    check("a developer may keep: the expiry is cleared",
          before and app.jobs.get(1102).artifacts_expire_at is None, before)
    check("a developer may not delete (403)", raises(dj.delete_artifacts, 403))
    reporter = gitlab.Gitlab(sim.url, private_token=TOKENS["reporter"])
    check("read_api cannot keep (403)",
          raises(lambda: reporter.projects.get(101, lazy=True).jobs.get(1103, lazy=True).keep_artifacts(), 403))
    sim.admin("conflict", "on")
    check("deletes answer 409 while statistics refresh",
          raises(lambda: app.jobs.get(1103, lazy=True).delete_artifacts(), 409)
          and raises(app.artifacts.delete, 409))
    sim.admin("conflict", "off")

    sim.admin("faults", "nth=1:429,retry_after=0")
    check("python-gitlab obeys a 429's Retry-After and succeeds", gl.projects.get(101).id == 101)
    last = sim.requests()[-2:]
    check("the log shows the 429 fault then the retry",
          [(r["status"], r["fault"]) for r in last] == [(429, "429"), (200, None)], last)
    # python-gitlab on Debian 12 (urllib3 1.26 does not enforce Content-Length) hands back a
    # truncated body as if it were whole, so the truncation is checked on the wire.
    sim.admin("faults", "nth=1:truncate,paths=/artifacts$")
    u = urllib.parse.urlsplit(api + "1101/artifacts")
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", u.path, headers=tok)
        r = c.getresponse()
        promised = int(r.headers["Content-Length"])
        try:
            r.read()
            got = None
        except http.client.IncompleteRead as e:
            got = len(e.partial)
    finally:
        c.close()
    check("a truncate fault promises the whole archive and sends less",
          promised == len(whole) and got is not None and got < promised, (promised, got))
    for kind in ("reset", "500"):
        sim.admin("faults", "nth=1:%s,paths=/artifacts$" % kind)
        failed_loud = False
        try:
            app.jobs.get(1101, lazy=True).artifacts()
        except Exception:
            failed_loud = True
        check("a %s fault on a whole archive fails the download, never short data" % kind, failed_loud)
    sim.admin("faults", "rate=1,kinds=500")
    status, _, _ = fetch(sim.url + "/-/sim/log")
    check("faults never touch admin endpoints", status == 200)
    sim.admin("faults", "")
    check("cleared faults: the archive arrives", app.jobs.get(1101, lazy=True).artifacts() == whole)
    sim.admin("settle")
    text = open(sim.log, encoding="utf-8").read()
    check("the request log never carries a token value",
          not any(v in text for v in TOKENS.values()) and "job_token=[FILTERED]" in text)


def redirect_mode(sim):
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"])
    data = gl.projects.get(101).jobs.get(1101).artifacts()
    check("redirect: python-gitlab follows the 302 to object storage", data == sim.archive(1101))
    store = [r for r in sim.requests() if r["host"].startswith("127.0.0.2")]
    check("redirect: the object store was asked, on its own host", len(store) >= 1)
    # requests drops only Authorization on a cross-host redirect: python-gitlab sends a
    # PRIVATE-TOKEN to object storage. The log must show it, as it shows what artifactfs sends.
    check("redirect: the log records python-gitlab's PRIVATE-TOKEN reaching the object store",
          all(r["auth"] == ["PRIVATE-TOKEN"] for r in store), [r["auth"] for r in store])
    oauth = gitlab.Gitlab(sim.url, oauth_token=TOKENS["oauth"])
    n = len(store)
    check("redirect: with OAuth the archive arrives too",
          oauth.projects.get(101).jobs.get(1101).artifacts() == sim.archive(1101))
    store = [r for r in sim.requests() if r["host"].startswith("127.0.0.2")][n:]
    check("redirect: and the Bearer token is not forwarded", store and all(not r["auth"] for r in store),
          [r["auth"] for r in store])
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    status, hdrs, _ = fetch(sim.url + "/api/v4/projects/101/jobs/1101/artifacts", headers=tok)
    loc = hdrs.get("Location", "")
    check("redirect: 302 to a signed, expiring URL on 127.0.0.2",
          status == 302 and loc.startswith("http://127.0.0.2:") and "expires=" in loc and "sig=" in loc, loc)
    status, hdrs, body = fetch(loc, headers={"Range": "bytes=0-3"})
    check("redirect: the object store serves Range", status == 206 and body == b"PK\x03\x04")
    status, _, _ = fetch(loc[:-1] + ("0" if loc[-1] != "0" else "1"))
    check("redirect: a bad signature is 403", status == 403)
    status, _, _ = fetch(loc.replace("expires=", "expires=1"))
    check("redirect: a changed expiry is 403", status == 403)
    status, hdrs, _ = fetch(sim.url + "/api/v4/projects?per_page=1", headers=tok)
    check("Link headers carry the configured external URL",
          "http://gitlab.example.invalid/api/v4/projects?" in hdrs["Link"], hdrs["Link"])
    kb = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"], per_page=1, keep_base_url=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = [p.id for p in kb.projects.list(membership=True, get_all=True)]
    check("python-gitlab with keep_base_url pages through a foreign Link host",
          sorted(ids) == [101, 102, 103, 104], ids)


def proxied_mode(sim):
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"])
    data = gl.projects.get(101).jobs.get(1101).artifacts()
    check("proxied: the chunked body is the archive", data == sim.archive(1101))
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    status, hdrs, body = fetch(sim.url + "/api/v4/projects/101/jobs/1101/artifacts",
                              headers=dict(tok, Range="bytes=100-199"))
    check("proxied: Range is forwarded, 206 chunked without Content-Length",
          status == 206 and body == sim.archive(1101)[100:200] and "Content-Length" not in hdrs
          and hdrs["Transfer-Encoding"] == "chunked")
    status, _, _ = fetch(sim.url + "/api/v4/projects/101/jobs/1101/artifacts/tree", headers=tok)
    check("--no-tree: /artifacts/tree is 404 as before GitLab 18.8", status == 404)
    # the store's own errors pass through the proxy (PROFILES COMMON proxied_store_errors)
    for kind, want, code in (("store403", 403, b"AccessDenied"), ("store404", 404, b"NoSuchKey"),
                             ("store503", 503, b"SlowDown")):
        sim.admin("faults", "rate=1,kinds=%s,paths=/jobs/1101/artifacts$" % kind)
        status, hdrs, body = fetch(sim.url + "/api/v4/projects/101/jobs/1101/artifacts", headers=tok)
        check("proxied: the store's %d %s passes through with its XML body" % (want, code.decode()),
              status == want and hdrs["Content-Type"] == "application/xml"
              and body.startswith(b"<?xml") and b"<Code>%s</Code>" % code in body, (status, body))
    sim.admin("faults", "")


def job_token_checks(sim):
    """GitLab ignores a job token off job_token_allowed routes (lib/gitlab/auth/auth_finders.rb):
    the caller is anonymous there. Project 104 is private; its running job 1990 holds the token."""
    jt = gitlab.Gitlab(sim.url, job_token=TOKENS["job-private"])
    lazy = jt.projects.get(104, lazy=True)
    check("job token: GET /projects/:id of its own private project is 404 (anonymous)",
          raises(lambda: jt.projects.get(104), 404))
    check("job token: its branches are 404", raises(lambda: lazy.branches.list(), 404))
    check("job token: its tags are 404", raises(lambda: lazy.tags.list(), 404))
    if PROFILE["pipeline_job_token"]:  # 19.2+ (lib/api/ci/pipelines.rb)
        check("job token: its pipelines list (19.2+)",
              [p.id for p in lazy.pipelines.list(ref="main", get_all=True)] == [802, 800])
    else:
        check("job token: its pipelines are 404 (anonymous before 19.2)",
              raises(lambda: lazy.pipelines.list(), 404))
    check("job token: /projects/:id/jobs is 401", raises(lambda: lazy.jobs.list(), 401))
    check("job token: by-ref download works", lazy.artifacts.download(ref_name="main", job="build")
          == sim.archive(1981))
    check("job token: a merge request ref works",
          lazy.artifacts.download(ref_name="refs/merge-requests/3/head", job="build")
          == sim.archive(1985))
    check("job token: the failed allow_failure job is served by ref",
          lazy.artifacts.download(ref_name="main", job="e2e") == sim.archive(1982))
    check("job token: keep is 401", raises(lambda: lazy.jobs.get(1981, lazy=True).keep_artifacts(), 401))
    check("job token: delete is 401",
          raises(lambda: lazy.jobs.get(1981, lazy=True).delete_artifacts(), 401))
    status, _, body = fetch(sim.url + "/api/v4/projects/102/jobs/1601/artifacts",
                            headers={"JOB-TOKEN": TOKENS["job-private"]})
    check("job token: another project without it in the allowlist is 403",
          status == 403 and b"Authentication by CI/CD job token not allowed" in body, (status, body))
    status, _, body = fetch(sim.url + "/api/v4/job", headers={"JOB-TOKEN": TOKENS["job-private"]})
    job = json.loads(body)
    check("job token: GET /job names its job, ref and project",
          status == 200 and job["id"] == 1990 and job["pipeline"]["project_id"] == 104)


def by_ref_checks(sim):
    """Project#latest_successful_build_for_ref (app/models/project.rb)."""
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"])
    app = gl.projects.get(101)
    check("by ref: a newer scan-policy pipeline does not replace main's build",
          app.artifacts.download(ref_name="main", job="build") == sim.archive(1101))
    check("by ref: a dangling pipeline's job is not served",
          raises(lambda: app.artifacts.download(ref_name="main", job="secret-detection"), 404))
    check("by ref: a failed allow_failure job with artifacts is served",
          app.artifacts.download(ref_name="main", job="e2e") == sim.archive(1107))
    check("by ref: a report-only job shadows the child's archive (download 404)",
          raises(lambda: app.artifacts.download(ref_name="main", job="junit-only"), 404))
    check("by ref: and raw answers 500",
          raises(lambda: app.artifacts.raw(ref_name="main", artifact_path="README",
                                           job="junit-only"), 500))
    if PROFILE["ref_descendants"]:
        check("by ref: the child's job is found after the parent's",
              app.artifacts.download(ref_name="main", job="package") == sim.archive(1111))
    else:
        check("by ref: the child's job is not found (the parent pipeline only)",
              raises(lambda: app.artifacts.download(ref_name="main", job="package"), 404))
    mr = app.mergerequests.get(7)
    check("merge request: head_pipeline on refs/merge-requests/7/head",
          mr.head_pipeline["id"] == 570 and mr.head_pipeline["ref"] == "refs/merge-requests/7/head"
          and mr.head_pipeline["source"] == "merge_request_event", mr.head_pipeline)
    check("merge request: its pipelines", [p.id for p in mr.pipelines.list(get_all=True)] == [570])
    check("merge request: its ref serves by-ref downloads",
          app.artifacts.download(ref_name="refs/merge-requests/7/head", job="build")
          == sim.archive(1951))
    sha = app.branches.get("feature/login").commit["id"]
    check("pipelines?sha=", [p.id for p in app.pipelines.list(sha=sha, get_all=True)] == [540])
    check("one branch", app.branches.get("main").name == "main")
    check("one tag", app.tags.get("v1.0").name == "v1.0")
    check("an unknown tag is 404", raises(lambda: app.tags.get("v9"), 404))


def fault_checks(sim):
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    url = sim.url + "/api/v4/projects/101/jobs/1101/artifacts"
    sim.admin("faults", "ratelimit=2,paths=/jobs/1101/artifacts$")
    status, hdrs, body = fetch(url, headers=tok)
    if PROFILE["limit_retry_after"]:
        check("an application limit's 429: JSON, Retry-After (newer releases), no RateLimit-Reset",
              status == 429 and 1 <= int(hdrs.get("Retry-After", "0")) <= 2
              and "RateLimit-Reset" not in hdrs and json.loads(body)["message"], dict(hdrs))
    else:
        check("an application limit's 429: JSON, neither Retry-After nor RateLimit-Reset",
              status == 429 and "Retry-After" not in hdrs and "RateLimit-Reset" not in hdrs
              and json.loads(body)["message"], dict(hdrs))
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"], retry_transient_errors=True)
    t0 = time.monotonic()
    data = gl.projects.get(101, lazy=True).jobs.get(1101, lazy=True).artifacts()
    check("python-gitlab waits out the bare 429 window", data == sim.archive(1101)
          and time.monotonic() - t0 < 30)
    sim.admin("faults", "ratelimit=40,ratelimit_headers=1,paths=/jobs/1101/artifacts$")
    status, hdrs, _ = fetch(url, headers=tok)
    check("a throttle's 429 says how long: Retry-After up to the window, RateLimit-Reset",
          status == 429 and 30 <= int(hdrs["Retry-After"]) <= 40
          and int(hdrs["RateLimit-Reset"]) > time.time() + 30, dict(hdrs))
    sim.admin("faults", "")
    sim.admin("delete-artifacts", json.dumps({"job": 1102}))
    job = gl.projects.get(101, lazy=True).jobs.get(1102)
    check("server-side deletion: the job stays, without artifacts_file",
          "artifacts_file" not in job.attributes)
    check("server-side deletion: its download is 404", raises(lambda: job.artifacts(), 404))


def etag_mode(sim):
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    url = sim.url + "/api/v4/projects/101/jobs/1101/artifacts"
    import hashlib
    want = '"%s"' % hashlib.sha256(sim.archive(1101)).hexdigest()
    status, hdrs, _ = fetch(url, headers=tok)
    check("--etag sha256: the ETag is the archive's sha256", hdrs.get("ETag") == want, hdrs.get("ETag"))
    status, _, body = fetch(url, headers=dict(tok, Range="bytes=0-9", **{"If-Range": want}))
    check("If-Range with the current ETag: 206", status == 206 and len(body) == 10)
    status, _, body = fetch(url, headers=dict(tok, Range="bytes=0-9", **{"If-Range": '"old"'}))
    check("If-Range with another ETag: 200 and the whole archive",
          status == 200 and body == sim.archive(1101))
    _, hdrs, _ = fetch(url, headers=tok)
    status, _, body = fetch(url, headers=dict(tok, Range="bytes=0-9",
                                              **{"If-Range": hdrs["Last-Modified"]}))
    check("If-Range with the Last-Modified date: 206", status == 206 and len(body) == 10)
    status, _, body = fetch(url, headers=dict(tok, Range="bytes=0-9",
                                              **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}))
    check("If-Range with another date: 200 and the whole archive",
          status == 200 and body == sim.archive(1101))


def make_ca(where):
    """A throwaway CA and a certificate for 127.0.0.1 signed by it, made with openssl."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=where,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=artifactfs test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(where, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "1", "-extfile", "ext")
    return [os.path.join(where, n) for n in ("ca.pem", "srv.pem", "srv.key")]


def tls_mode(sim, ca):
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"], ssl_verify=ca)
    check("https with a private CA: python-gitlab trusting the CA reads a job",
          sim.url.startswith("https://") and gl.projects.get(101).jobs.get(1101).id == 1101)
    check("https with a private CA: the archive over TLS is exact",
          gl.projects.get(101, lazy=True).jobs.get(1101, lazy=True).artifacts() == sim.archive(1101))
    plain = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"])
    try:
        plain.projects.get(101)
        refused = False
    except Exception as e:  # requests' SSLError, wrapped or not
        refused = "CERTIFICATE_VERIFY_FAILED" in repr(e) or "certificate" in repr(e).lower()
    check("https with a private CA: without it the certificate is refused", refused)


def fidelity_mode(sim):
    job_token_checks(sim)
    by_ref_checks(sim)
    fault_checks(sim)
    version_checks(sim)


def version_checks(sim):
    """One check per entry of the release's profile (gitlab_sim.py PROFILES), each answer as
    that release gives it. Runs last: it adds pipelines."""
    P = PROFILE
    tok = {"PRIVATE-TOKEN": TOKENS["maintainer"]}
    api = sim.url + "/api/v4/projects/"
    status, _, body = fetch(api + "101/jobs/1101/artifacts/tree", headers=tok)
    check("%s: /artifacts/tree %s" % (VERSION, "lists (18.8+)" if P["tree"] else "is 404"),
          status == (200 if P["tree"] else 404), status)
    bearer = {"Authorization": "Bearer " + TOKENS["job-private"]}
    status, _, _ = fetch(api + "104/pipelines?ref=main", headers=bearer)
    check("%s: a Bearer job token on /pipelines: %s" % (VERSION, "taken (19.2+)" if
          P["pipeline_job_token"] else "401, not anonymous"),
          status == (200 if P["pipeline_job_token"] else 401), status)
    status, _, _ = fetch(api + "104/pipelines/800/bridges", headers={"JOB-TOKEN": TOKENS["job-private"]})
    check("%s: JOB-TOKEN on /bridges of its private project: %s" % (VERSION, "taken" if
          P["pipeline_job_token"] else "anonymous, 404"),
          status == (200 if P["pipeline_job_token"] else 404), status)
    status, _, _ = fetch(api + "104", headers=bearer)
    check("%s: a Bearer job token on GET /projects/:id is 401" % VERSION, status == 401, status)
    status, _, body = fetch(api + "104/jobs/artifacts/main/download?job=build", headers=bearer)
    check("%s: a Bearer job token downloads by ref" % VERSION,
          status == 200 and body == sim.archive(1981), status)
    for route in ("jobs", "jobs/1101", "jobs/1101/trace"):
        status, _, _ = fetch(api + "101/" + route)
        check("%s: anonymous /projects/101/%s is 401 (public project)" % (VERSION, route),
              status == 401, status)
    for route in ("pipelines?ref=main", "pipelines/510", "pipelines/510/jobs", "pipelines/510/bridges"):
        status, _, _ = fetch(api + "101/" + route)
        check("%s: anonymous /projects/101/%s serves a public project" % (VERSION, route),
              status == 200, status)
    status, _, _ = fetch(sim.url + "/api/v4/job", headers={"JOB-TOKEN": TOKENS["job-jwt-expired"]})
    check("%s: a JWT job token past its expiry, its job running: %s" % (VERSION, "401" if
          P["jwt_job_tokens"] else "no JWT tokens, 200"),
          status == (401 if P["jwt_job_tokens"] else 200), status)
    whole = api + "101/jobs/1101/artifacts"
    status, hdrs, _ = fetch(whole, headers=tok)
    if P["etag"] == "weak-constant":
        etag = hdrs.get("ETag")
        check("%s: the constant weak ETag" % VERSION, etag == _sim_module.WEAK_CONSTANT_ETAG, etag)
        status, _, _ = fetch(api + "101/jobs/1111/artifacts", headers=dict(tok, **{"If-None-Match": etag}))
        check("%s: and a false 304 for another archive carrying it" % VERSION, status == 304, status)
    status, hdrs, _ = fetch(whole + "/my%20report.txt", headers=tok)
    want = "application/octet-stream" if P["member_octet_stream"] else "text/plain"
    check("%s: a member's Content-Type is %s" % (VERSION, want),
          status == 200 and hdrs["Content-Type"] == want, hdrs.get("Content-Type"))
    # several ranges in one Range header: 206 multipart/byteranges (local storage, shared)
    arc = sim.archive(1101)
    status, hdrs, body = fetch(whole, headers=dict(tok, Range="bytes=0-9,20-29"))
    check("%s: two ranges in one Range header: 206 multipart/byteranges" % VERSION,
          P["multipart_byteranges"] and status == 206
          and hdrs["Content-Type"].startswith("multipart/byteranges; boundary=")
          and b"Content-Range: bytes 0-9/%d\r\n" % len(arc) in body
          and b"\r\n\r\n" + arc[0:10] + b"\r\n--" in body
          and b"\r\n\r\n" + arc[20:30] + b"\r\n--" in body, (status, hdrs.get("Content-Type")))
    # a member route's path as Rails and its middleware see it (shared: member_path_rails)
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "paths", "jobs": [
        {"id": 4010, "name": "build", "archive": {"members": [
            {"path": "a/b.txt", "text": "ab\n"}, {"path": "d/"}, {"path": "d/f", "text": "f"},
            {"path": "x/../y", "text": "literal\n"}]}}]}))
    member = api + "101/jobs/4010/artifacts/"
    for path, want_status, want_body in (
            ("a//b.txt", 200, b"ab\n"), ("a/b.txt/", 200, b"ab\n"), ("d", 404, None),
            ("d/", 200, b""), ("d%2F", 200, b""), ("a/", 404, None),
            ("x/../y", 400, b"Potential path traversal attempt detected.\n"),
            ("a/b.txt%00", 400, b"Bad Request\n"), ("a/%FF", 400, b"Bad Request\n")):
        status, hdrs, body = fetch(member + path, headers=tok)
        check("%s: member route %s: %d%s" % (VERSION, path, want_status, " (plain text)"
              if want_status == 400 else ""), P["member_path_rails"] and status == want_status
              and (want_body is None or body == want_body)
              and (want_status != 400 or hdrs["Content-Type"].startswith("text/plain")),
              (status, body[:80]))
    # /trigger_jobs: 19.2+ (the deprecated /bridges stays)
    for who, hdr, proj in (("a PAT", tok, "101/pipelines/510"),
                           ("a job token", {"JOB-TOKEN": TOKENS["job-private"]}, "104/pipelines/800")):
        status, _, body = fetch(api + proj + "/trigger_jobs", headers=hdr)
        _, _, bridges = fetch(api + proj + "/bridges", headers=hdr)
        check("%s: /trigger_jobs with %s: %s" % (VERSION, who, "the bridges (19.2+)"
              if P["trigger_jobs"] else "404"),
              (status == 200 and body == bridges) if P["trigger_jobs"] else status == 404,
              (status, body[:80]))
    # artifacts:access hides a visible job's artifacts: 403 to those below the level
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "hidden", "jobs": [
        {"id": 4001, "name": "build", "access": "none", "archive": {"members": [{"path": "a", "text": "a"}]}},
        {"id": 4002, "name": "dev", "access": "developer", "archive": {"members": [{"path": "b", "text": "b"}]}}]}))
    status, _, _ = fetch(api + "101/jobs/4001", headers=tok)
    check("%s: artifacts:access none: the job is visible" % VERSION, status == 200, status)
    status, _, _ = fetch(api + "101/jobs/4001/artifacts", headers=tok)
    check("%s: and its artifacts are 403, even to a maintainer" % VERSION, status == 403, status)
    status, _, _ = fetch(api + "101/jobs/artifacts/hidden/download?job=dev", headers=tok)
    check("%s: artifacts:access developer serves a maintainer" % VERSION, status == 200, status)
    status, _, _ = fetch(api + "101/jobs/artifacts/hidden/raw/b?job=dev",
                         headers={"PRIVATE-TOKEN": TOKENS["reporter"]})
    check("%s: and refuses a reporter (403)" % VERSION, status == 403, status)
    # a root member named `tree` and a member path holding /raw/
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "names", "jobs": [
        {"id": 4003, "name": "build", "archive": {"members": [
            {"path": "tree", "text": "a file named tree\n"}, {"path": "x/raw/y", "text": "y\n"}]}}]}))
    status, _, body = fetch(api + "101/jobs/4003/artifacts/tree", headers=tok)
    if P["tree"]:
        check("%s: /artifacts/tree shadows a root member named tree (18.8+)" % VERSION,
              status == 200 and body.startswith(b"["), status)
    else:
        check("%s: a root member named tree is served by the member route" % VERSION,
              status == 200 and body == b"a file named tree\n", status)
    status, _, _ = fetch(api + "101/jobs/artifacts/names/raw/x/raw/y?job=build", headers=tok)
    check("%s: a /raw/ segment in a member path splits the by-ref raw route (404)" % VERSION,
          status == 404, status)
    status, _, body = fetch(api + "101/jobs/4003/artifacts/x/raw/y", headers=tok)
    check("%s: by job id it reads" % VERSION, status == 200 and body == b"y\n", status)
    # merge request refs: /merge (merged results) and /train (merge trains)
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "refs/merge-requests/7/merge", "jobs": [
        {"id": 4004, "name": "build", "archive": {"members": [{"path": "M", "text": "merged\n"}]}}]}))
    gl = gitlab.Gitlab(sim.url, private_token=TOKENS["maintainer"])
    mr = gl.projects.get(101).mergerequests.get(7)
    check("%s: a merged-results pipeline is the MR's head_pipeline, ref verbatim" % VERSION,
          mr.head_pipeline["ref"] == "refs/merge-requests/7/merge", mr.head_pipeline)
    check("%s: and serves by ref" % VERSION, gl.projects.get(101, lazy=True).artifacts.raw(
        "refs/merge-requests/7/merge", "M", "build") == b"merged\n")
    # a newer pipeline without the job: search_recent_successful_pipelines (18.7+/18.9+)
    sim.admin("pipeline", json.dumps({"project": 103, "ref": "main", "jobs": [
        {"id": 4005, "name": "other", "archive": {"members": [{"path": "o", "text": "o"}]}}]}))
    status, _, _ = fetch(api + "103/jobs/artifacts/main/download?job=build", headers=tok)
    check("%s: a newest pipeline without the job: 404" % VERSION, status == 404, status)
    status, _, _ = fetch(api + "103/jobs/artifacts/main/download?job=build"
                         "&search_recent_successful_pipelines=true", headers=tok)
    check("%s: search_recent_successful_pipelines on download: %s" % (VERSION, "the older one"
          if P["search_recent_download"] else "ignored"),
          status == (200 if P["search_recent_download"] else 404), status)
    status, _, _ = fetch(api + "103/jobs/artifacts/main/raw/README?job=build"
                         "&search_recent_successful_pipelines=true", headers=tok)
    check("%s: search_recent_successful_pipelines on raw: %s" % (VERSION, "the older one"
          if P["search_recent_raw"] else "ignored"),
          status in ((200, 404) if P["search_recent_raw"] else (404,)) and
          (status == 200) == P["search_recent_raw"], status)
    # dangling sources as the release knows them: a newer duo_workflow pipeline on a ref
    sim.admin("pipeline", json.dumps({"project": 101, "ref": "feature/login", "source": "duo_workflow",
                                      "jobs": [{"id": 4006, "name": "build", "archive": {
                                          "members": [{"path": "duo", "text": "duo\n"}]}}]}))
    status, _, body = fetch(api + "101/jobs/artifacts/feature%2Flogin/download?job=build", headers=tok)
    duo = "duo_workflow" in P["dangling"]
    check("%s: a newer duo_workflow pipeline %s the ref's" % (VERSION, "is not" if duo else "is"),
          status == 200 and (body == sim.archive(4006)) != duo, status)
    # the ref's 100 newest pipelines only (older releases): 100 failed ones hide the success
    for i in range(100):
        sim.admin("pipeline", json.dumps({"project": 103, "ref": "old-window", "status": "failed",
                                          "jobs": []}) if i else json.dumps(
            {"project": 103, "ref": "old-window", "jobs": [{"id": 4007, "name": "build", "archive": {
                "members": [{"path": "w", "text": "w"}]}}]}))
    status, _, _ = fetch(api + "103/jobs/artifacts/old-window/download?job=build", headers=tok)
    check("%s: a success behind 99 newer failed pipelines: %s" % (VERSION, "found" if
          not P["ref_window"] or P["ref_window"] >= 100 else "beyond the window"),
          status == 200, status)
    sim.admin("pipeline", json.dumps({"project": 103, "ref": "old-window", "status": "failed", "jobs": []}))
    status, _, _ = fetch(api + "103/jobs/artifacts/old-window/download?job=build", headers=tok)
    check("%s: behind 100 newer failed pipelines: %s" % (VERSION, "beyond the window (404)"
          if P["ref_window"] else "still found"),
          status == (404 if P["ref_window"] else 200), status)


def main():
    tls_dir = tempfile.mkdtemp(prefix="conformance-ca-")
    ca, cert, key = make_ca(tls_dir)
    runs = (("local", local_mode, ()),
            ("redirect", redirect_mode, ("--external-url", "http://gitlab.example.invalid")),
            ("proxied", proxied_mode, ("--no-tree",)),
            ("fidelity", fidelity_mode, ()),
            ("etag", etag_mode, ("--etag", "sha256")),
            ("tls", lambda sim: tls_mode(sim, ca), ("--tls-cert", cert, "--tls-key", key)))
    if VERSION != "newest":  # the storage, ETag and TLS modes are release-independent
        runs = [r for r in runs if r[0] == "fidelity"]
    for mode, fn, extra in runs:
        sim = Sim("--storage", mode if mode in ("local", "redirect", "proxied") else "local", *extra)
        try:
            fn(sim)
        except Exception as e:  # a crash is a failed check, never a hang
            traceback.print_exc()
            check("%s mode ran to the end" % mode, False, repr(e))
        finally:
            sim.stop()
    for name in os.listdir(tls_dir):
        os.unlink(os.path.join(tls_dir, name))
    os.rmdir(tls_dir)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
