/* gitlab: job JSON mapping without a server; the REST calls against the loopback peer's small
 * GitLab (tests/unit/http_peer.py): ref resolution through pages and child pipelines, escaping,
 * archive reads through a redirect, Content-Range checks, the start-up check. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "artifactfs/gitlab.h"
#include "artifactfs/http.h"
#include "http_peer.h"

static int parse(const char *json, struct gl_job *j)
{
	memset(j, 0, sizeof(*j));
	return gitlab_parse_job(json, strlen(json), j);
}

Test(gitlab, a_job_with_an_archive_maps_every_field)
{
	struct gl_job j;
	cr_assert_eq(
		parse("{\"id\": 1101, \"name\": \"test 1/3\", \"status\": \"success\","
		      "\"ref\": \"feature/login\", \"web_url\": \"https://g/x/-/jobs/1101\","
		      "\"finished_at\": \"2026-11-20T10:15:30.000Z\", \"artifacts_expire_at\": "
		      "null,"
		      "\"pipeline\": {\"id\": 510}, \"commit\": {\"id\": \"a1b2\"},"
		      "\"artifacts\": [{\"file_type\": \"junit\", \"size\": 5},"
		      "{\"file_type\": \"archive\", \"size\": 3451199, \"file_format\": \"zip\"}]}",
		      &j),
		0);
	cr_assert_eq(j.id, 1101);
	cr_assert_str_eq(j.name, "test 1/3");
	cr_assert_str_eq(j.ref, "feature/login");
	cr_assert_str_eq(j.sha, "a1b2");
	cr_assert_eq(j.pipeline_id, 510);
	cr_assert_null(j.artifacts_expire_at);
	cr_assert_eq(j.archive_size, 3451199, "the archive entry, not the report");
	gl_job_release(&j);
}

Test(gitlab, report_only_jobs_have_no_archive)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": 1, \"name\": \"lint\", \"artifacts\": "
			   "[{\"file_type\": \"codequality\", \"size\": 10}]}",
			   &j),
		     0);
	cr_assert_eq(j.archive_size, -1);
	gl_job_release(&j);
	cr_assert_eq(parse("{\"id\": 2, \"name\": \"old\", \"artifacts_file\": "
			   "{\"filename\": \"artifacts.zip\", \"size\": 77}}",
			   &j),
		     0);
	cr_assert_eq(j.archive_size, 77, "older servers only have artifacts_file");
	gl_job_release(&j);
}

Test(gitlab, wrong_types_are_absent_or_fatal)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": 3, \"name\": \"x\", \"status\": 5, \"pipeline\": \"no\","
			   "\"artifacts\": {\"not\": \"a list\"}}",
			   &j),
		     0);
	cr_assert_null(j.status);
	cr_assert_eq(j.pipeline_id, 0);
	cr_assert_eq(j.archive_size, -1);
	gl_job_release(&j);
	cr_assert_eq(parse("{\"id\": \"3\", \"name\": \"x\"}", &j), -EIO, "the id is required");
	cr_assert_eq(parse("{\"id\": 3}", &j), -EIO, "the name is required");
	cr_assert_eq(parse("[1, 2]", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 3, \"name\": ", &j), -EIO, "malformed");
	cr_assert_eq(parse("", &j), -EIO);
}

Test(gitlab, statuses_map_to_the_spec_errno)
{
	cr_assert_eq(http_status_to_errno(200), 0);
	cr_assert_eq(http_status_to_errno(206), 0);
	cr_assert_eq(http_status_to_errno(404), -ENOENT);
	cr_assert_eq(http_status_to_errno(401), -EACCES);
	cr_assert_eq(http_status_to_errno(403), -EACCES);
	cr_assert_eq(http_status_to_errno(409), -EBUSY);
	cr_assert_eq(http_status_to_errno(429), -EIO);
	cr_assert_eq(http_status_to_errno(503), -EIO);
}

Test(gitlab, names_are_escaped_as_one_path_segment)
{
	char *e = http_escape("group/sub/app");
	cr_assert_str_eq(e, "group%2Fsub%2Fapp");
	free(e);
	e = http_escape("build: [linux, amd64]");
	cr_assert_str_eq(e, "build%3A%20%5Blinux%2C%20amd64%5D");
	free(e);
}

/* A job as GitLab 17 returns it from GET /projects/:id/jobs/:job_id, trimmed of user details. */
static const char realistic_job[] =
	"{\"id\": 8812, \"status\": \"success\", \"stage\": \"build\", \"name\": \"build: [linux, "
	"amd64]\","
	" \"ref\": \"main\", \"tag\": false, \"coverage\": null, \"allow_failure\": false,"
	" \"created_at\": \"2026-11-20T10:10:00.000Z\", \"started_at\": "
	"\"2026-11-20T10:11:00.000Z\","
	" \"finished_at\": \"2026-11-20T10:15:30.000Z\", \"erased_at\": null, \"duration\": 270.1,"
	" \"queued_duration\": 1.2, \"user\": {\"id\": 1, \"username\": \"dev\"},"
	" \"commit\": {\"id\": \"0b4bc9a49b562e85de7cc9e834518ea6828729b9\", \"short_id\": "
	"\"0b4bc9a4\","
	"   \"title\": \"Fix\", \"parent_ids\": []},"
	" \"pipeline\": {\"id\": 6001, \"iid\": 12, \"project_id\": 42, \"ref\": \"main\","
	"   \"sha\": \"0b4bc9a4\", \"status\": \"success\", \"source\": \"push\"},"
	" \"web_url\": \"https://gitlab.example.com/group/app/-/jobs/8812\","
	" \"project\": {\"ci_job_token_scope_enabled\": false},"
	" \"artifacts_file\": {\"filename\": \"artifacts.zip\", \"size\": 1000},"
	" \"artifacts\": [{\"file_type\": \"archive\", \"size\": 1000, \"filename\": "
	"\"artifacts.zip\","
	"   \"file_format\": \"zip\"}, {\"file_type\": \"metadata\", \"size\": 153,"
	"   \"filename\": \"metadata.gz\", \"file_format\": \"gzip\"}, {\"file_type\": \"junit\","
	"   \"size\": 1024, \"filename\": \"junit.xml.gz\", \"file_format\": \"gzip\"}],"
	" \"runner\": null, \"artifacts_expire_at\": \"2026-12-20T10:15:30.000Z\", \"tag_list\": "
	"[],"
	" \"archived\": false}";

Test(gitlab, a_realistic_job_keeps_its_expiry_and_archive_size)
{
	struct gl_job j;
	cr_assert_eq(parse(realistic_job, &j), 0);
	cr_assert_eq(j.id, 8812);
	cr_assert_str_eq(j.name, "build: [linux, amd64]");
	cr_assert_str_eq(j.status, "success");
	cr_assert_str_eq(j.sha, "0b4bc9a49b562e85de7cc9e834518ea6828729b9");
	cr_assert_eq(j.pipeline_id, 6001);
	cr_assert_str_eq(j.created_at, "2026-11-20T10:10:00.000Z");
	cr_assert_str_eq(j.finished_at, "2026-11-20T10:15:30.000Z");
	cr_assert_str_eq(j.artifacts_expire_at, "2026-12-20T10:15:30.000Z");
	cr_assert_str_eq(j.web_url, "https://gitlab.example.com/group/app/-/jobs/8812");
	cr_assert_eq(j.archive_size, 1000);
	gl_job_release(&j);
}

Test(gitlab, an_expired_or_erased_archive_is_no_archive)
{
	struct gl_job j;
	/* after expiry GitLab drops artifacts_file and the archive entry; reports may stay */
	cr_assert_eq(parse("{\"id\": 9, \"name\": \"old\", \"artifacts_expire_at\": null,"
			   "\"artifacts\": [{\"file_type\": \"junit\", \"size\": 1}],"
			   "\"artifacts_file\": null}",
			   &j),
		     0);
	cr_assert_eq(j.archive_size, -1);
	cr_assert_null(j.artifacts_expire_at);
	gl_job_release(&j);
	cr_assert_eq(parse("{\"id\": 9, \"name\": \"none\", \"artifacts\": []}", &j), 0);
	cr_assert_eq(j.archive_size, -1);
	gl_job_release(&j);
}

Test(gitlab, wrong_types_in_optional_fields_count_as_absent)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": 4, \"name\": \"x\", \"ref\": [\"main\"], \"web_url\": 1,"
			   "\"commit\": {\"id\": 5}, \"pipeline\": {\"id\": \"6001\"},"
			   "\"finished_at\": false, \"artifacts_expire_at\": 7,"
			   "\"artifacts\": [\"archive\", {\"file_type\": 1, \"size\": 5},"
			   "{\"file_type\": \"archive\", \"size\": \"big\"}],"
			   "\"artifacts_file\": {\"size\": 88}}",
			   &j),
		     0);
	cr_assert_null(j.ref);
	cr_assert_null(j.web_url);
	cr_assert_null(j.sha);
	cr_assert_eq(j.pipeline_id, 0);
	cr_assert_null(j.finished_at);
	cr_assert_null(j.artifacts_expire_at);
	cr_assert_eq(j.archive_size, 88, "a size of the wrong type falls back to artifacts_file");
	gl_job_release(&j);
	cr_assert_eq(parse("{\"id\": 4, \"name\": \"x\", \"artifacts_file\": \"zip\"}", &j), 0);
	cr_assert_eq(j.archive_size, -1);
	gl_job_release(&j);
}

Test(gitlab, required_fields_and_malformed_json_are_eio)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": null, \"name\": \"x\"}", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 1.5, \"name\": \"x\"}", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 1, \"name\": null}", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 1, \"name\": [\"x\"]}", &j), -EIO);
	cr_assert_eq(parse("\"job\"", &j), -EIO);
	cr_assert_eq(parse("null", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 1, \"name\": \"x\"} trailing", &j), -EIO);
	cr_assert_eq(parse("{\"id\": 1, \"name\": \"x\", \"id\": 2}", &j), -EIO, "duplicate keys");
	cr_assert_eq(parse("<html>502 Bad Gateway</html>", &j), -EIO);
	cr_assert_eq(gitlab_parse_job(NULL, 0, &j), -EIO);
	cr_assert_eq(gitlab_parse_job("{\"id\": 1, \"name\": \"x\"}", 10, &j), -EIO, "cut short");
}

/* ---- against the peer ---- */

static struct gitlab *gl_client(struct http **h)
{
	struct http_config cfg = {.base_url = base,
				  .auth = HTTP_AUTH_PRIVATE_TOKEN,
				  .token = TOKEN,
				  .max_retries = -1,
				  .retry_base_ms = 10};
	struct gitlab *gl = NULL;
	cr_assert_eq(http_new(&cfg, h), 0);
	cr_assert_eq(gitlab_new(*h, &gl), 0);
	return gl;
}

Test(gitlab, ref_jobs_walk_every_page_and_child_pipelines, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_job *jobs = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_ref_jobs(gl, "group/app", "feature/x", &jobs, &n), 0);
	static const char *want[] = {"build", "test 1/3", "child-only", "grandchild"};
	static const int64_t ids[] = {503, 501, 602, 611};
	cr_assert_eq(n, 4, "%s", peer_log());
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(jobs[i].name, want[i]);
		cr_assert_eq(jobs[i].id, ids[i], "the newest of a name, the parent's first");
		cr_assert_eq(jobs[i].archive_size, 1000);
	}
	gl_jobs_free(jobs, n);
	cr_assert_eq(count_lines("GET /api/v4/projects/group%2Fapp/pipelines?ref=feature%2Fx&"), 1,
		     "%s", peer_log());
	cr_assert_eq(count_lines("per_page=100&page=2 token=yes"), 1, "the Link came home");
	cr_assert_eq(count_lines("/pipelines/70/"), 0, "another project's pipeline is no child");
	cr_assert_eq(count_lines("token=no"), 0);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, recent_jobs_are_one_page_of_successful_jobs_with_an_archive, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_job *jobs = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_recent_jobs(gl, "group/app", &jobs, &n), 0);
	cr_assert_eq(n, 2, "a malformed entry and a report-only job are left out");
	cr_assert_eq(jobs[0].id, 611);
	cr_assert_eq(jobs[1].id, 501, "an archive named only by artifacts_file counts");
	cr_assert_eq(jobs[1].archive_size, 1000);
	gl_jobs_free(jobs, n);
	cr_assert_eq(
		count_lines(
			"GET /api/v4/projects/group%2Fapp/jobs?scope%5B%5D=success&per_page=100 "
			"token=yes"),
		1, "%s", peer_log());
	cr_assert_eq(gitlab_recent_jobs(gl, "nobody/else", &jobs, &n), -ENOENT, "a 404");
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, a_ref_without_a_successful_pipeline_is_enoent, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_job *jobs = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_ref_jobs(gl, "group/app", "main", &jobs, &n), -ENOENT);
	cr_assert_eq(gitlab_ref_jobs(gl, "nobody/else", "main", &jobs, &n), -ENOENT, "a 404");
	gitlab_free(gl);
	http_free(h);
}

struct bytes {
	unsigned char buf[1000];
	int64_t lo, hi;
};

static int bytes_put(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct bytes *b = ctx;
	cr_assert_leq(off + len, sizeof(b->buf));
	memcpy(b->buf + off, data, len);
	if (b->lo < 0 || (int64_t)off < b->lo)
		b->lo = (int64_t)off;
	if ((int64_t)(off + len) > b->hi)
		b->hi = (int64_t)(off + len);
	return 0;
}

Test(gitlab, archive_reads_by_ref_and_through_a_redirect_honour_the_range, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_archive by_ref = {
		.project = "group/app", .ref = "feature/x", .job_name = "test 1/3"};
	struct gl_archive by_id = {.project = "group/app", .job_id = 503};
	struct bytes b = {.lo = -1};
	int64_t total = 0;
	bool whole = true;
	cr_assert_eq(gitlab_archive_read(gl, &by_ref, 100, 50, bytes_put, &b, &total, &whole), 0);
	cr_assert_eq(b.lo, 100);
	cr_assert_eq(b.hi, 150);
	cr_assert_eq(b.buf[149], 149 % 251);
	cr_assert_eq(total, 1000);
	cr_assert_not(whole);
	cr_assert_eq(count_lines("/jobs/artifacts/feature%2Fx/download?job=test%201%2F3 token=yes "
				 "range=bytes=100-149"),
		     1, "%s", peer_log());
	b = (struct bytes){.lo = -1};
	cr_assert_eq(gitlab_archive_read(gl, &by_id, -1, 22, bytes_put, &b, &total, NULL), 0);
	cr_assert_eq(b.lo, 978, "a suffix range");
	cr_assert_eq(b.hi, 1000);
	cr_assert_eq(count_lines("127.0.0.2:"), 1);
	cr_assert_eq(count_lines("/signed/blob?X-Amz-Signature=s token=no range=bytes=-22"), 1);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, archive_reads_refuse_a_range_that_starts_elsewhere, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_archive a = {.project = "group/app", .job_id = 504};
	struct gl_archive missing = {.project = "group/app", .job_id = 999};
	struct bytes b = {.lo = -1};
	cr_assert_eq(gitlab_archive_read(gl, &a, 500, 10, bytes_put, &b, NULL, NULL), -EIO);
	cr_assert_eq(gitlab_archive_read(gl, &missing, 0, 10, bytes_put, &b, NULL, NULL), -ENOENT);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, the_startup_check_tells_bad_tokens_from_non_gitlab_servers, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	cr_assert_eq(gitlab_check(gl, HTTP_AUTH_PRIVATE_TOKEN), 0);
	cr_assert_eq(gitlab_check(gl, HTTP_AUTH_JOB_TOKEN), -EACCES);
	cr_assert_eq(gitlab_check(gl, HTTP_AUTH_NONE), -EIO, "an HTML page is no API");
	gitlab_free(gl);
	http_free(h);
}

/* ---- by-ref resolution exactly as GitLab's (doc/GITLAB-API.md "Ref resolution") ---- */

Test(gitlab, ref_resolve_follows_gitlab_rules, .init = peer_start, .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_job *jobs = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_ref_resolve(gl, "group/res", "main", &jobs, &n), 0, "%s", peer_log());
	/* pipeline 80 (90 is dangling), then children 81 and 83 in id order */
	static const char *want[] = {"e2e", "junit-only", "child-a", "child-b"};
	static const int64_t ids[] = {803, 802, 812, 832};
	cr_assert_eq(n, 4, "%s", peer_log());
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(jobs[i].name, want[i]);
		cr_assert_eq(jobs[i].id, ids[i], "%s", want[i]);
		cr_assert(jobs[i].downloadable);
	}
	cr_assert_str_eq(jobs[0].status, "failed", "no job-status filter");
	cr_assert_eq(jobs[1].archive_size, -1, "report-only, yet it shadows 811");
	cr_assert_eq(jobs[0].project_id, 9);
	gl_jobs_free(jobs, n);
	cr_assert_eq(count_lines("/pipelines/90/"), 0, "a dangling pipeline is never walked");
	cr_assert_eq(count_lines("scope"), 0, "jobs of any status are asked for");

	cr_assert_eq(gitlab_ref_jobs(gl, "group/res", "main", &jobs, &n), 0);
	cr_assert_eq(n, 3, "the report-only job's name serves nothing");
	cr_assert_str_eq(jobs[1].name, "child-a");
	gl_jobs_free(jobs, n);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, one_ref_is_checked_without_listing_branches, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	cr_assert_eq(gitlab_ref_check(gl, "group/res", "refs/merge-requests/7/head"), 0);
	cr_assert_eq(count_lines("GET "), 1, "one call for a ref with pipelines");
	cr_assert_eq(gitlab_ref_check(gl, "group/res", "main"), 0);
	cr_assert_eq(gitlab_ref_check(gl, "group/res", "v1"), 0, "a tag");
	cr_assert_eq(gitlab_ref_check(gl, "group/res", "nope"), -ENOENT);
	cr_assert_eq(count_lines("/repository/branches?"), 0, "%s", peer_log());
	cr_assert_eq(count_lines("refs%2Fmerge-requests%2F7%2Fhead"), 1, "fully encoded");
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, a_job_token_names_its_job_and_project, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http_config cfg = {.base_url = base,
				  .auth = HTTP_AUTH_JOB_TOKEN,
				  .token = "glcbt-running",
				  .max_retries = -1};
	struct http *h;
	struct gitlab *gl;
	struct gl_job j;
	cr_assert_eq(http_new(&cfg, &h), 0);
	cr_assert_eq(gitlab_new(h, &gl), 0);
	cr_assert_eq(gitlab_token_job(gl, &j), 0);
	cr_assert_eq(j.id, 803);
	cr_assert_eq(j.project_id, 9);
	cr_assert_eq(j.pipeline_id, 80);
	cr_assert_str_eq(j.ref, "main");
	gl_job_release(&j);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, a_merge_request_names_its_head_pipeline, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_merge_request mr;
	cr_assert_eq(gitlab_mr_get(gl, "group/res", 7, &mr), 0);
	cr_assert_eq(mr.iid, 7);
	cr_assert_eq(mr.head.id, 95);
	cr_assert_str_eq(mr.head.ref, "refs/merge-requests/7/head");
	cr_assert_str_eq(mr.source_branch, "feature/login");
	gl_merge_request_release(&mr);
	cr_assert_eq(gitlab_mr_get(gl, "group/res", 8, &mr), -ENOENT);
	gitlab_free(gl);
	http_free(h);
}

static int no_bytes(void *ctx, uint64_t off, const void *data, size_t len)
{
	(void)ctx, (void)off, (void)data, (void)len;
	cr_assert_fail("no byte of another archive may be delivered");
	return -EIO;
}

static int count_bytes(void *ctx, uint64_t off, const void *data, size_t len)
{
	(void)off, (void)data;
	*(size_t *)ctx += len;
	return 0;
}

Test(gitlab, a_read_pinned_to_an_etag_fails_when_the_archive_changed, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_archive a = {.project = "group/res", .job_id = 803};
	struct gl_read_info info = {0};
	size_t got = 0;
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 0, 100, count_bytes, &got, &info), 0);
	cr_assert_str_eq(info.etag, "\"sha-A\"");
	cr_assert_eq(got, 100);
	cr_assert_eq(info.total, 1000);
	info.expect_etag = "\"sha-A\"";
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 100, 100, count_bytes, &got, &info), 0);
	cr_assert_eq(got, 200);
	info.expect_etag = "\"sha-OLD\"";
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 200, 100, no_bytes, NULL, &info), -ESTALE);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, with_a_job_token_a_404_off_its_routes_means_cannot_tell, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http_config cfg = {.base_url = base,
				  .auth = HTTP_AUTH_JOB_TOKEN,
				  .token = "glcbt-running",
				  .max_retries = -1};
	struct http *h;
	struct gitlab *gl;
	struct gl_job *jobs = NULL;
	struct gl_project p;
	char **names = NULL;
	size_t n = 0;
	cr_assert_eq(http_new(&cfg, &h), 0);
	cr_assert_eq(gitlab_new(h, &gl), 0);
	cr_assert_eq(gitlab_ref_check(gl, "group/res", "main"), -EACCES);
	cr_assert_eq(gitlab_ref_resolve(gl, "group/res", "main", &jobs, &n), -EACCES);
	cr_assert_eq(gitlab_project_get(gl, "group/res", &p), -EACCES);
	cr_assert_eq(gitlab_refs_list(gl, "group/res", &names, &n), -EACCES);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, ref_names_are_listed_once_branches_first, .init = peer_start, .fini = peer_stop,
     .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	char **names = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_refs_list(gl, "group/res", &names, &n), 0);
	static const char *want[] = {"main", "b", "a", "v1", "v2"};
	cr_assert_eq(n, 5, "a name in both listings (or twice in one) comes once");
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(names[i], want[i]);
	cr_assert_null(names[n]);
	gitlab_strv_free(names);
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, child_pipeline_fan_out_is_capped, .init = peer_start, .fini = peer_stop, .timeout = 60)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_job *jobs = NULL;
	size_t n = 0;
	cr_assert_eq(gitlab_ref_resolve(gl, "group/fan", "main", &jobs, &n), 0);
	cr_assert_eq(n, 0);
	gl_jobs_free(jobs, n);
	int walked = count_lines("/jobs?per_page=100");
	cr_assert_eq(walked, 201, "the pipeline and 200 children, not 300 + 600 (%d)", walked);
	cr_assert_eq(count_lines("/bridges?"), 1, "a full family asks for no more bridges");
	gitlab_free(gl);
	http_free(h);
}

Test(gitlab, without_an_etag_a_read_is_pinned_by_last_modified, .init = peer_start,
     .fini = peer_stop, .timeout = 30)
{
	struct http *h;
	struct gitlab *gl = gl_client(&h);
	struct gl_archive a = {.project = "group/res", .job_id = 804};
	struct gl_read_info info = {0};
	size_t got = 0;
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 0, 100, count_bytes, &got, &info), 0);
	cr_assert_str_eq(info.etag, "");
	cr_assert_str_eq(info.last_modified, "Fri, 20 Nov 2026 10:15:30 GMT");
	info.expect_last_modified = "Fri, 20 Nov 2026 10:15:30 GMT";
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 100, 100, count_bytes, &got, &info), 0);
	cr_assert_eq(got, 200);
	info.expect_last_modified = "Thu, 19 Nov 2026 08:00:00 GMT";
	cr_assert_eq(gitlab_archive_read_pinned(gl, &a, 200, 100, no_bytes, NULL, &info), -ESTALE);
	gitlab_free(gl);
	http_free(h);
}
