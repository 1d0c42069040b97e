/* metrics: the Prometheus text rendering (every sample a "name{labels} value" line after its
 * family's HELP and TYPE, values as given) and the file's atomic, checked writing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifactfs/metrics.h"
#include "tmpdir.h"

static struct metrics_sample sample(void)
{
	struct metrics_sample s = {
		.http = {.server_requests = 11,
			 .server_bytes = 12345,
			 .storage_requests = 3,
			 .storage_bytes = 67890,
			 .outcomes = {9, 2, 1, 0, 2}},
		.cache = {.hit_own_bytes = 1000,
			  .hit_shared_bytes = 3000,
			  .miss_bytes = 2000,
			  .used_bytes = 4096,
			  .limit_bytes = 1u << 30,
			  .entries = 2,
			  .fetches = 5},
		.catalog = {.auth_probes = 1, .arrived_bytes = 80235},
	};
	return s;
}

/* The value of the one sample line "name value" (labels included in name), or -1. */
static long long value_of(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, name, n) == 0 && l[n] == ' ')
			return atoll(l + n + 1);
	return -1;
}

Test(metrics, render_is_prometheus_text)
{
	struct metrics_sample s = sample();
	char *t = NULL;
	cr_assert_eq(metrics_render(&s, &t), 0);
	cr_assert(t[strlen(t) - 1] == '\n', "ends with a newline");
	regex_t sample_re, help_re, type_re;
	cr_assert_eq(regcomp(&sample_re,
			     "^artifactfs_[a-z_]+(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
			     "[0-9]+$",
			     REG_EXTENDED | REG_NOSUB),
		     0);
	cr_assert_eq(
		regcomp(&help_re, "^# HELP artifactfs_[a-z_]+ [^\n]+$", REG_EXTENDED | REG_NOSUB),
		0);
	cr_assert_eq(regcomp(&type_re, "^# TYPE artifactfs_[a-z_]+ (counter|gauge)$",
			     REG_EXTENDED | REG_NOSUB),
		     0);
	char *copy = strdup(t), *save = NULL, last_type[128] = "";
	int samples = 0;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "# HELP ", 7) == 0) {
			cr_assert_eq(regexec(&help_re, l, 0, NULL, 0), 0, "%s", l);
		} else if (strncmp(l, "# TYPE ", 7) == 0) {
			cr_assert_eq(regexec(&type_re, l, 0, NULL, 0), 0, "%s", l);
			sscanf(l + 7, "%127s", last_type);
			if (strstr(l, " counter"))
				cr_assert(strstr(last_type, "_total"),
					  "a counter ends in _total: %s", l);
		} else {
			cr_assert_eq(regexec(&sample_re, l, 0, NULL, 0), 0, "%s", l);
			cr_assert_eq(strncmp(l, last_type, strlen(last_type)), 0,
				     "a sample follows its own TYPE: %s", l);
			samples++;
		}
	}
	cr_assert_geq(samples, 16);
	free(copy);
	regfree(&sample_re);
	regfree(&help_re);
	regfree(&type_re);
	cr_assert_eq(value_of(t, "artifactfs_gitlab_bytes_total"), 12345);
	cr_assert_eq(value_of(t, "artifactfs_gitlab_requests_total"), 11);
	cr_assert_eq(value_of(t, "artifactfs_storage_bytes_total"), 67890);
	cr_assert_eq(value_of(t, "artifactfs_cache_read_bytes_total{fetched_by=\"this_mount\"}"),
		     1000);
	cr_assert_eq(value_of(t, "artifactfs_cache_read_bytes_total{fetched_by=\"another_mount\"}"),
		     3000);
	cr_assert_eq(value_of(t, "artifactfs_cache_read_bytes_total"), -1,
		     "the family's samples are all labelled: a sum() gives the old total");
	cr_assert_eq(value_of(t, "artifactfs_cache_limit_bytes"), 1 << 30);
	cr_assert_eq(value_of(t, "artifactfs_authorization_probes_total"), 1);
	cr_assert_eq(value_of(t, "artifactfs_http_requests_total{outcome=\"2xx\"}"), 9);
	cr_assert_eq(value_of(t, "artifactfs_http_requests_total{outcome=\"none\"}"), 2);
	free(t);
}

Test(metrics, write_replaces_the_file_whole)
{
	char *dir = tmpdir_new("metrics"), *path = NULL, *tmp = NULL, why[256] = "", buf[64] = "";
	cr_assert(asprintf(&path, "%s/afs.prom", dir) > 0);
	cr_assert(asprintf(&tmp, "%s.tmp", path) > 0);
	cr_assert_eq(metrics_write_file(path, "a 1\n", why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(metrics_write_file(path, "b 2\n", why, sizeof(why)), 0, "%s", why);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fread(buf, 1, sizeof(buf) - 1, f), 4);
	fclose(f);
	cr_assert_str_eq(buf, "b 2\n");
	cr_assert_eq(access(tmp, F_OK), -1, "no temporary file is left");
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644, "readable by the collector, written by us only");
	free(tmp);
	free(path);
	tmpdir_remove(dir);
}

Test(metrics, refuses_unsafe_places)
{
	char *dir = tmpdir_new("metrics"), *path = NULL, *tmp = NULL, why[256] = "";
	cr_assert(asprintf(&path, "%s/afs.prom", dir) > 0);
	cr_assert(asprintf(&tmp, "%s.tmp", path) > 0);
	cr_assert_eq(symlink("/etc/passwd", tmp), 0);
	cr_assert_eq(metrics_write_file(path, "a 1\n", why, sizeof(why)), -ELOOP);
	cr_assert(strstr(why, "symbolic link"), "%s", why);
	unlink(tmp);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(metrics_write_file(path, "a 1\n", why, sizeof(why)), -EACCES);
	cr_assert(strstr(why, "folder can be written by others"), "%s", why);
	cr_assert_eq(access(path, F_OK), -1, "nothing written");
	cr_assert_eq(chmod(dir, 0700), 0);
	unlink(tmp); /* made by the refused open */
	cr_assert_eq(mkfifo(tmp, 0600), 0);
	cr_assert_eq(metrics_write_file(path, "a 1\n", why, sizeof(why)), -EINVAL, "no hang");
	free(tmp);
	free(path);
	tmpdir_remove(dir);
}
