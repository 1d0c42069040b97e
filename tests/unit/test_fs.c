#include <criterion/criterion.h>

#include "artifactfs/fs.h"

Test(fs, gitlab_times_parse_to_the_epoch)
{
	cr_assert_eq(fs_parse_time("2026-11-20T10:15:30.000Z"), 1795169730);
	cr_assert_eq(fs_parse_time("2026-11-20T10:15:30Z"), 1795169730);
	cr_assert_eq(fs_parse_time("2026-11-20T11:15:30.123+01:00"), 1795169730);
	cr_assert_eq(fs_parse_time(NULL), 0);
	cr_assert_eq(fs_parse_time("yesterday"), 0);
}

/* ---- the operations, called directly on a catalog over the fake backend ---- */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fake_backend.h"
#include "tmpdir.h"

static char *dir;
static struct cache *cache;
static struct catalog *cat;
static struct fs_config fsc;

static void setup(void)
{
	fake_init();
	dir = tmpdir_new("fs");
	cr_assert_eq(cache_open(dir, 1 << 30, &cache), 0);
	struct catalog_config cc = {.backend = &fake_backend,
				    .cache = cache,
				    .base_url = "http://gitlab.test",
				    .ttl_s = 60};
	cr_assert_eq(catalog_new(&cc, &cat), 0);
	fsc = (struct fs_config){.cat = cat,
				 .cache = cache,
				 .ttl_s = 60,
				 .uid = 1234,
				 .gid = 5678,
				 .mounted_at = 1000};
	fs_use_config(&fsc);
}

static void teardown(void)
{
	fs_operations.destroy(&fsc); /* frees handles a failed test left open */
	catalog_free(cat);
	cache_close(cache);
	tmpdir_remove(dir);
	free(fake.zip);
}

TestSuite(ops, .init = setup, .fini = teardown);

static int getattr(const char *path, struct stat *st)
{
	return fs_operations.getattr(path, st, NULL);
}

struct listing {
	char names[32][64];
	int n;
};

static int collect(void *buf, const char *name, const struct stat *st, off_t off,
		   enum fuse_fill_dir_flags flags)
{
	(void)st, (void)off, (void)flags;
	struct listing *l = buf;
	if (l->n < 32)
		snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", name);
	return 0;
}

static bool listed(const struct listing *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return true;
	return false;
}

Test(ops, getattr_of_every_level)
{
	struct stat st;
	cr_assert_eq(getattr("/", &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_uid, 1234);
	cr_assert_eq(st.st_mtime, 1000);
	cr_assert_eq(getattr("/grp%2Fapp", &st), 0);
	cr_assert_eq(getattr("/grp%2Fapp/main", &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0555, "no rm without allow_delete");
	cr_assert_eq(getattr("/grp%2Fapp/main/build.zip", &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_size, (off_t)fake.zip_len);
	cr_assert_eq(st.st_mtime, 1795169730, "the job's finished_at");
	cr_assert_eq(getattr("/grp%2Fapp/main/build/hello.txt", &st), 0);
	cr_assert_eq(st.st_size, 13);
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs/101/dir", &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(getattr("/grp%2Fnope", &st), -ENOENT);
	cr_assert_eq(getattr("/grp%2Fapp/nope", &st), -ENOENT);
	cr_assert_eq(getattr("/grp%2Fapp/main/nope", &st), -ENOENT);
	cr_assert_eq(getattr("/grp%2Fapp/main/build/nope.txt", &st), -ENOENT);
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs/103", &st), -ENOENT, "no archive");
}

Test(ops, readdir_of_every_level)
{
	struct listing l = {0};
	cr_assert_eq(fs_operations.readdir("/", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, ".") && listed(&l, "grp%2Fapp"));
	l.n = 0;
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "main") && listed(&l, "dev") && listed(&l, "-"));
	l.n = 0;
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/main", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "build") && listed(&l, "build.zip") && listed(&l, "test.zip"));
	l.n = 0;
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/main/build", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "hello.txt") && listed(&l, "dir"));
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/main/build.zip", &l, collect, 0, NULL, 0),
		     -ENOTDIR);
	cr_assert_eq(
		fs_operations.readdir("/grp%2Fapp/main/build/hello.txt", &l, collect, 0, NULL, 0),
		-ENOTDIR);
}

static int read_file(const char *path, char *buf, size_t size)
{
	struct fuse_file_info fi = {.flags = O_RDONLY};
	int err = fs_operations.open(path, &fi);
	if (err)
		return err;
	int n = fs_operations.read(path, buf, size, 0, &fi);
	fs_operations.release(path, &fi);
	return n;
}

Test(ops, open_and_read)
{
	char buf[64] = {0};
	cr_assert_eq(read_file("/grp%2Fapp/main/build/hello.txt", buf, sizeof(buf)), 13);
	cr_assert_str_eq(buf, "hello, world\n");
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(read_file("/grp%2Fapp/-/jobs/101/dir/inner.txt", buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "inner\n");
	cr_assert_eq(read_file("/grp%2Fapp/main/build.zip", buf, 4), 4);
	cr_assert_eq(memcmp(buf, "PK\3\4", 4), 0);
	cr_assert_eq(read_file("/grp%2Fapp/main/build/dir", buf, 4), -EISDIR);
	cr_assert_eq(read_file("/grp%2Fapp/main", buf, 4), -EISDIR);
	cr_assert_eq(read_file("/grp%2Fapp/main/build/nope", buf, 4), -ENOENT);
}

Test(ops, keep_cache_only_where_content_cannot_change)
{
	struct fuse_file_info fi = {.flags = O_RDONLY};
	cr_assert_eq(fs_operations.open("/grp%2Fapp/-/jobs/101.zip", &fi), 0);
	cr_assert(fi.keep_cache);
	fs_operations.release("/grp%2Fapp/-/jobs/101.zip", &fi);
}

Test(ops, every_change_is_erofs)
{
	struct fuse_file_info fi = {.flags = O_WRONLY};
	const char *f = "/grp%2Fapp/main/build/hello.txt";
	cr_assert_eq(fs_operations.open(f, &fi), -EROFS);
	fi.flags = O_RDONLY | O_TRUNC;
	cr_assert_eq(fs_operations.open(f, &fi), -EROFS);
	cr_assert_eq(fs_operations.unlink(f), -EROFS);
	cr_assert_eq(fs_operations.unlink("/grp%2Fapp/main/build.zip"), -EROFS,
		     "rm needs allow_delete");
	cr_assert_eq(atomic_load(&fake.del), 0, "nothing was sent");
	cr_assert_eq(fs_operations.mkdir("/grp%2Fapp/x", 0755), -EROFS);
	cr_assert_eq(fs_operations.rename(f, "/x", 0), -EROFS);
	cr_assert_eq(fs_operations.setxattr(f, "user.other", "1", 1, 0), -EROFS);
	cr_assert_eq(fs_operations.removexattr(f, "user.gitlab.keep"), -EROFS);
}

Test(ops, unlink_with_allow_delete)
{
	fsc.allow_delete = true;
	struct stat st;
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs", &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0755);
	cr_assert_eq(fs_operations.unlink("/grp%2Fapp/-/jobs/250.zip"), 0);
	cr_assert_eq(atomic_load(&fake.del), 1);
}

static int getxattr(const char *path, const char *name, char *buf, size_t size)
{
	memset(buf, 0, size);
	return fs_operations.getxattr(path, name, buf, size - 1);
}

Test(ops, xattrs)
{
	char v[256];
	const char *job = "/grp%2Fapp/main/build";
	cr_assert_eq(getxattr(job, "user.gitlab.job.id", v, sizeof(v)), 3);
	cr_assert_str_eq(v, "101");
	cr_assert_gt(getxattr(job, "user.gitlab.job.name", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "build");
	cr_assert_eq(getxattr(job, "user.gitlab.nope", v, sizeof(v)), -ENODATA);
	cr_assert_eq(getxattr("/grp%2Fapp/main/build/hello.txt", "user.gitlab.crc32", v, sizeof(v)),
		     8);
	cr_assert_eq(getxattr("/grp%2Fapp/main/build/dir", "user.gitlab.crc32", v, sizeof(v)),
		     -ENODATA);
	cr_assert_eq(fs_operations.getxattr(job, "user.gitlab.job.id", v, 1), -ERANGE);
	cr_assert_eq(fs_operations.getxattr(job, "user.gitlab.job.id", NULL, 0), 3, "the size");
	cr_assert_eq(getxattr("/grp%2Fnope/main/build", "user.gitlab.job.id", v, sizeof(v)),
		     -ENOENT);
}

Test(ops, setxattr_keep)
{
	char v[256];
	const char *job = "/grp%2Fapp/-/jobs/101";
	fake.expire_at = "2030-01-01T00:00:00.000Z";
	cr_assert_eq(fs_operations.setxattr(job, "user.gitlab.keep", "2", 1, 0), -EINVAL);
	cr_assert_eq(fs_operations.setxattr("/grp%2Fapp/-/jobs/101/hello.txt", "user.gitlab.keep",
					    "1", 1, 0),
		     -EROFS);
	cr_assert_eq(atomic_load(&fake.keep), 0);
	cr_assert_eq(fs_operations.setxattr(job, "user.gitlab.keep", "1\n", 2, 0), 0);
	cr_assert_eq(atomic_load(&fake.keep), 1);
	cr_assert_gt(getxattr(job, "user.gitlab.artifacts.expire_at", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "2030-01-01T00:00:00.000Z");
	cr_assert_eq(
		fs_operations.setxattr("/grp%2Fapp", "user.gitlab.delete_artifacts", "1", 1, 0),
		-EROFS, "needs allow_delete");
}

Test(ops, job_token_errors)
{
	fake.job_token = true;
	struct listing l = {0};
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/main", &l, collect, 0, NULL, 0), -EACCES);
	l.n = 0;
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "-"), "- is there though refs cannot be listed");
	cr_assert_eq(fs_operations.setxattr("/grp%2Fapp/main/build", "user.gitlab.keep", "1", 1, 0),
		     -EACCES);
	char buf[16] = {0};
	cr_assert_eq(read_file("/grp%2Fapp/main/build/hello.txt", buf, sizeof(buf)), 13);
}

/* ---- job sets other than refs, logs and archives inside members ---- */

Test(ops, dash_lists_every_kind_of_set)
{
	struct listing l = {0};
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/-", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "jobs") && listed(&l, "pipelines") && listed(&l, "merge_requests") &&
		  listed(&l, "commits"));
	l.n = 0;
	cr_assert_eq(fs_operations.readdir("/grp%2Fapp/-/pipelines", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "7"));
	l.n = 0;
	cr_assert_eq(
		fs_operations.readdir("/grp%2Fapp/-/merge_requests/5", &l, collect, 0, NULL, 0), 0);
	cr_assert(listed(&l, "build") && listed(&l, "build.zip") && listed(&l, "build.log"));
	struct stat st;
	cr_assert_eq(getattr("/grp%2Fapp/-/commits/c0ffee00", &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(getattr("/grp%2Fapp/-/pipelines/8", &st), -ENOENT);
	char buf[64] = {0};
	cr_assert_eq(read_file("/grp%2Fapp/-/pipelines/7/build/hello.txt", buf, sizeof(buf)), 13);
}

Test(ops, set_folders_carry_their_pipeline_and_merge_request)
{
	char v[256];
	const char *mr = "/grp%2Fapp/-/merge_requests/5";
	cr_assert_eq(getxattr(mr, "user.gitlab.pipeline.id", v, sizeof(v)), 1);
	cr_assert_str_eq(v, "7");
	cr_assert_gt(getxattr(mr, "user.gitlab.merge_request.title", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "Make it faster");
	cr_assert_gt(
		getxattr("/grp%2Fapp/-/pipelines/7", "user.gitlab.pipeline.source", v, sizeof(v)),
		0);
	cr_assert_str_eq(v, "push");
	cr_assert_eq(getxattr("/grp%2Fapp/-/pipelines/7", "user.gitlab.merge_request.title", v,
			      sizeof(v)),
		     -ENODATA, "a pipeline is no merge request");
	cr_assert_eq(getxattr("/grp%2Fapp/main", "user.gitlab.pipeline.id", v, sizeof(v)), -ENODATA,
		     "a ref's folder has none");
	char list[1024];
	int n = fs_operations.listxattr(mr, list, sizeof(list));
	cr_assert_gt(n, 0);
	cr_assert_not_null(memmem(list, (size_t)n, "user.gitlab.merge_request.web_url", 33));
}

/* A stat fetches no log (issue 18): the size is unknown (0) until it was read to its end. */
Test(ops, a_log_is_stat_without_a_fetch_and_reads_to_its_end)
{
	struct stat st;
	cr_assert_eq(getattr("/grp%2Fapp/main/build.log", &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_size, 0, "unknown before it is read");
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs/103.log", &st), 0, "a job without an archive");
	cr_assert_eq(st.st_size, 0);
	cr_assert_eq(st.st_mtime, 1795169730, "the job's finished_at");
	cr_assert_eq(atomic_load(&fake.trace), 0, "no trace asked for");
	char buf[64] = {0};
	cr_assert_eq(read_file("/grp%2Fapp/-/jobs/102.log", buf, sizeof(buf)), 11);
	cr_assert_str_eq(buf, "log of 102\n");
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs/102.log", &st), 0);
	cr_assert_eq(st.st_size, (off_t)strlen("log of 102\n"), "exact once read");
	struct fuse_file_info fi = {.flags = O_RDONLY};
	cr_assert_eq(fs_operations.open("/grp%2Fapp/-/jobs/103.log", &fi), 0);
	cr_assert(fi.direct_io, "read to its end whatever size the kernel was told");
	fs_operations.release("/grp%2Fapp/-/jobs/103.log", &fi);
	cr_assert_eq(getattr("/grp%2Fapp/-/jobs/99.log", &st), -ENOENT, "no such job");
}

Test(ops, a_member_that_is_no_archive_has_no_inside)
{
	struct stat st;
	struct listing l = {0};
	cr_assert_eq(getattr("/grp%2Fapp/main/build/hello.txt#", &st), -ENOENT);
	cr_assert_eq(
		fs_operations.readdir("/grp%2Fapp/main/build/hello.txt#", &l, collect, 0, NULL, 0),
		-ENOENT);
	cr_assert_eq(getattr("/grp%2Fapp/main/build/dir#/inner.txt", &st), -ENOENT,
		     "a folder is no archive");
}
