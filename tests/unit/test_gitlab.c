#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "artifactfs/gitlab.h"
#include "artifactfs/http.h"

static int parse(const char *json, struct gl_job *j)
{
	memset(j, 0, sizeof(*j));
	return gitlab_parse_job(json, strlen(json), j);
}

Test(gitlab, a_job_with_an_archive_maps_every_field)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": 1101, \"name\": \"test 1/3\", \"status\": \"success\","
			   "\"ref\": \"feature/login\", \"web_url\": \"https://g/x/-/jobs/1101\","
			   "\"finished_at\": \"2026-11-20T10:15:30.000Z\", \"artifacts_expire_at\": null,"
			   "\"pipeline\": {\"id\": 510}, \"commit\": {\"id\": \"a1b2\"},"
			   "\"artifacts\": [{\"file_type\": \"junit\", \"size\": 5},"
			   "{\"file_type\": \"archive\", \"size\": 3451199, \"file_format\": \"zip\"}]}",
			   &j), 0);
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
			   "[{\"file_type\": \"codequality\", \"size\": 10}]}", &j), 0);
	cr_assert_eq(j.archive_size, -1);
	gl_job_release(&j);
	cr_assert_eq(parse("{\"id\": 2, \"name\": \"old\", \"artifacts_file\": "
			   "{\"filename\": \"artifacts.zip\", \"size\": 77}}", &j), 0);
	cr_assert_eq(j.archive_size, 77, "older servers only have artifacts_file");
	gl_job_release(&j);
}

Test(gitlab, wrong_types_are_absent_or_fatal)
{
	struct gl_job j;
	cr_assert_eq(parse("{\"id\": 3, \"name\": \"x\", \"status\": 5, \"pipeline\": \"no\","
			   "\"artifacts\": {\"not\": \"a list\"}}", &j), 0);
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
