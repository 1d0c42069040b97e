#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "artifactfs/tree.h"

static struct tree_path parse_ok(const char *path)
{
	struct tree_path tp;
	int err = tree_parse(path, &tp);
	cr_assert_eq(err, 0, "tree_parse(%s) = %d", path, err);
	return tp;
}

Test(tree, root_is_the_empty_path)
{
	struct tree_path tp = parse_ok("/");
	cr_assert_eq(tp.kind, TREE_ROOT);
	cr_assert_null(tp.member);
	tree_path_release(&tp);
}

Test(tree, project_paths_decode_slashes_and_percents)
{
	struct tree_path tp = parse_ok("/acme%2Fplatform%2fapp");
	cr_assert_eq(tp.kind, TREE_PROJECT);
	cr_assert_str_eq(tp.project, "acme/platform/app");
	tree_path_release(&tp);
	tp = parse_ok("/100%25");
	cr_assert_str_eq(tp.project, "100%");
	tree_path_release(&tp);
}

Test(tree, invalid_escapes_are_enoent)
{
	struct tree_path tp;
	cr_assert_eq(tree_parse("/a%20b", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/a%2", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/a%", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/p/ref%zz", &tp), -ENOENT);
}

Test(tree, ref_job_and_member)
{
	struct tree_path tp = parse_ok("/101/feature%2Flogin/test 1%2F3/dir/file.txt");
	cr_assert_eq(tp.kind, TREE_SET_JOB);
	cr_assert_str_eq(tp.project, "101");
	cr_assert_str_eq(tp.set.name, "feature/login");
	cr_assert_str_eq(tp.job, "test 1/3");
	cr_assert_str_eq(tp.member, "dir/file.txt");
	tree_path_release(&tp);
}

Test(tree, job_folder_has_an_empty_member)
{
	struct tree_path tp = parse_ok("/101/main/build: [linux, amd64]");
	cr_assert_eq(tp.kind, TREE_SET_JOB);
	cr_assert_str_eq(tp.job, "build: [linux, amd64]");
	cr_assert_str_eq(tp.member, "");
	tree_path_release(&tp);
}

Test(tree, zip_suffix_names_the_whole_archive)
{
	struct tree_path tp = parse_ok("/101/main/build.zip");
	cr_assert_eq(tp.kind, TREE_SET_ZIP);
	cr_assert_str_eq(tp.job, "build");
	cr_assert_null(tp.member);
	tree_path_release(&tp);
	cr_assert_eq(tree_parse("/101/main/build.zip/x", &tp), -ENOTDIR);
}

Test(tree, jobs_by_id)
{
	struct tree_path tp = parse_ok("/101/-");
	cr_assert_eq(tp.kind, TREE_DASH);
	tree_path_release(&tp);
	tp = parse_ok("/101/-/jobs");
	cr_assert_eq(tp.kind, TREE_JOBS);
	tree_path_release(&tp);
	tp = parse_ok("/101/-/jobs/1234/a/b");
	cr_assert_eq(tp.kind, TREE_JOBID);
	cr_assert_eq(tp.job_id, 1234);
	cr_assert_str_eq(tp.member, "a/b");
	tree_path_release(&tp);
	tp = parse_ok("/101/-/jobs/77.zip");
	cr_assert_eq(tp.kind, TREE_JOBID_ZIP);
	cr_assert_eq(tp.job_id, 77);
	tree_path_release(&tp);
}

Test(tree, bad_job_ids_are_enoent)
{
	struct tree_path tp;
	cr_assert_eq(tree_parse("/101/-/jobs/abc", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/-/jobs/012", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/-/jobs/99999999999999999999", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/-/other", &tp), -ENOENT);
}

Test(tree, overlong_paths_are_rejected)
{
	char *p = malloc(5000);
	memset(p, 'a', 4999);
	p[0] = '/';
	p[4999] = '\0';
	struct tree_path tp;
	cr_assert_eq(tree_parse(p, &tp), -ENAMETOOLONG);
	free(p);
}

Test(tree, escape_round_trips)
{
	const char *names[] = {"test 1/3", "100%", "a/b%2Fc", "plain", "build: [linux, amd64]"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *e = tree_escape(names[i]);
		cr_assert_null(strchr(e, '/'));
		char *d = NULL;
		cr_assert_eq(tree_unescape(e, strlen(e), &d), 0);
		cr_assert_str_eq(d, names[i]);
		free(e);
		free(d);
	}
	char *e = tree_escape("a/b%");
	cr_assert_str_eq(e, "a%2Fb%25");
	free(e);
}

Test(tree, names_no_listing_can_show_are_not_listable)
{
	cr_assert(tree_name_listable("build"));
	cr_assert(tree_name_listable("..."));
	cr_assert(tree_name_listable(".hidden"));
	cr_assert_not(tree_name_listable(""));
	cr_assert_not(tree_name_listable("."));
	cr_assert_not(tree_name_listable(".."));
	char *name = malloc(1100);
	memset(name, 'a', 1020);
	name[1020] = '\0'; /* 1020 bytes and ".zip": FUSE's 1024 */
	cr_assert(tree_name_listable(name));
	name[1019] = '/'; /* "%2F" makes it 1022 */
	cr_assert_not(tree_name_listable(name));
	free(name);
}

Test(tree, dot_and_dotdot_are_never_job_names)
{
	struct tree_path tp;
	cr_assert_eq(tree_parse("/101/main/..zip", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/main/...zip", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/../build", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/./main", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/main/....zip", &tp), 0); /* the job "..." is a name */
	cr_assert_str_eq(tp.job, "...");
	tree_path_release(&tp);
}

Test(tree, a_ref_is_a_job_set)
{
	struct tree_path tp = parse_ok("/101/feature%2Flogin");
	cr_assert_eq(tp.kind, TREE_SET);
	cr_assert_eq(tp.set.by, TREE_BY_REF);
	cr_assert_str_eq(tp.set.name, "feature/login");
	cr_assert_null(tp.member);
	tree_path_release(&tp);
}

Test(tree, pipelines_merge_requests_and_commits_are_job_sets)
{
	struct tree_path tp = parse_ok("/101/-/pipelines/510/build/dir/f");
	cr_assert_eq(tp.kind, TREE_SET_JOB);
	cr_assert_eq(tp.set.by, TREE_BY_PIPELINE);
	cr_assert_eq(tp.set.id, 510);
	cr_assert_null(tp.set.name);
	cr_assert_str_eq(tp.job, "build");
	cr_assert_str_eq(tp.member, "dir/f");
	tree_path_release(&tp);
	tp = parse_ok("/101/-/merge_requests/7/test 1%2F3.zip");
	cr_assert_eq(tp.kind, TREE_SET_ZIP);
	cr_assert_eq(tp.set.by, TREE_BY_MR);
	cr_assert_eq(tp.set.id, 7);
	cr_assert_str_eq(tp.job, "test 1/3");
	tree_path_release(&tp);
	tp = parse_ok("/101/-/commits/0123456789abcdef0123456789abcdef01234567");
	cr_assert_eq(tp.kind, TREE_SET);
	cr_assert_eq(tp.set.by, TREE_BY_COMMIT);
	cr_assert_str_eq(tp.set.name, "0123456789abcdef0123456789abcdef01234567");
	tree_path_release(&tp);
	tp = parse_ok("/101/-/commits/abc1/build.log");
	cr_assert_eq(tp.kind, TREE_SET_LOG);
	cr_assert_str_eq(tp.set.name, "abc1");
	cr_assert_str_eq(tp.job, "build");
	tree_path_release(&tp);
}

Test(tree, folders_of_job_sets)
{
	const char *paths[] = {"/1/-/pipelines", "/1/-/merge_requests", "/1/-/commits"};
	enum tree_set_by by[] = {TREE_BY_PIPELINE, TREE_BY_MR, TREE_BY_COMMIT};
	for (size_t i = 0; i < 3; i++) {
		struct tree_path tp = parse_ok(paths[i]);
		cr_assert_eq(tp.kind, TREE_SETS);
		cr_assert_eq(tp.set.by, by[i]);
		tree_path_release(&tp);
	}
}

Test(tree, bad_set_names_are_enoent)
{
	struct tree_path tp;
	cr_assert_eq(tree_parse("/1/-/pipelines/0", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/1/-/pipelines/x1", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/1/-/merge_requests/-3", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/1/-/commits/abc", &tp), -ENOENT);  /* under git's 4 */
	cr_assert_eq(tree_parse("/1/-/commits/ABCD", &tp), -ENOENT); /* git prints lowercase */
	cr_assert_eq(tree_parse("/1/-/commits/abcg", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/1/-/commits/0123456789abcdef0123456789abcdef012345678", &tp),
		     -ENOENT);
	cr_assert_eq(tree_parse("/1/-/pipeline/5", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/1/-/pipelines/5/build.log/x", &tp), -ENOTDIR);
}

Test(tree, logs_by_job_id_and_by_name)
{
	struct tree_path tp = parse_ok("/101/-/jobs/1301.log");
	cr_assert_eq(tp.kind, TREE_JOBID_LOG);
	cr_assert_eq(tp.job_id, 1301);
	cr_assert_null(tp.member);
	tree_path_release(&tp);
	tp = parse_ok("/101/main/test 1%2F3.log");
	cr_assert_eq(tp.kind, TREE_SET_LOG);
	cr_assert_str_eq(tp.job, "test 1/3");
	tree_path_release(&tp);
	cr_assert_eq(tree_parse("/101/-/jobs/1301.log/x", &tp), -ENOTDIR);
	cr_assert_eq(tree_parse("/101/main/.log", &tp), 0); /* the job ".log" is a name */
	cr_assert_eq(tp.kind, TREE_SET_JOB);
	tree_path_release(&tp);
}

Test(tree, set_copies_are_deep)
{
	struct tree_path tp = parse_ok("/1/main");
	struct tree_set s;
	cr_assert_eq(tree_set_copy(&tp.set, &s), 0);
	tree_path_release(&tp);
	cr_assert_eq(s.by, TREE_BY_REF);
	cr_assert_str_eq(s.name, "main");
	tree_set_release(&s);
}

Test(tree, nesting_starts_after_a_component_ending_in_a_hash)
{
	cr_assert_eq(tree_nest_next("a/x.tar.gz#/b", 0), 11);
	cr_assert_eq(tree_nest_next("x.tar.gz#", 0), 9);
	cr_assert_eq(tree_nest_next("a.tar.gz#/inner.zip#/x", 10), 20);
	cr_assert_eq(tree_nest_next("a#b/c", 0), 0); /* '#' inside a name is a name */
	cr_assert_eq(tree_nest_next("#/x", 0), 0);   /* no member has the empty name */
	cr_assert_eq(tree_nest_next("d/##", 0), 4);  /* the inside of "#" */
	cr_assert_eq(tree_nest_next("", 0), 0);
	cr_assert_eq(tree_nest_next("plain/path", 0), 0);
}

Test(tree, member_paths_keep_their_hashes)
{
	struct tree_path tp = parse_ok("/101/-/jobs/9/a.tar.gz#/inner.zip#/x");
	cr_assert_str_eq(tp.member, "a.tar.gz#/inner.zip#/x");
	tree_path_release(&tp);
}

/* Issue 18: a job "x.log" and the log of a job "x" never share a name; each has one spelling. */
Test(tree, jobs_named_like_a_log_or_an_archive_have_the_dot_escaped)
{
	const char *names[] = {"x.log", "x.zip", "a/b.log", "100%.zip", "x.zip.log"};
	const char *want[] = {"x%2Elog", "x%2Ezip", "a%2Fb%2Elog", "100%25%2Ezip", "x.zip%2Elog"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *e = tree_escape_job(names[i]), *path = NULL;
		cr_assert_str_eq(e, want[i]);
		const char *suffix[] = {"", ".zip", ".log"};
		const enum tree_kind kind[] = {TREE_SET_JOB, TREE_SET_ZIP, TREE_SET_LOG};
		for (size_t k = 0; k < 3; k++) {
			cr_assert(asprintf(&path, "/101/main/%s%s", e, suffix[k]) > 0);
			struct tree_path tp = parse_ok(path);
			cr_assert_eq(tp.kind, kind[k], "%s", path);
			cr_assert_str_eq(tp.job, names[i], "%s", path);
			tree_path_release(&tp);
			free(path);
		}
		free(e);
	}
	char *e = tree_escape_job("build");
	cr_assert_str_eq(e, "build");
	free(e);
	e = tree_escape_job(".log"); /* the job ".log" is no log of "" */
	cr_assert_str_eq(e, ".log");
	free(e);
	struct tree_path tp = parse_ok("/101/main/x.log"); /* always the log of "x" */
	cr_assert_eq(tp.kind, TREE_SET_LOG);
	cr_assert_str_eq(tp.job, "x");
	tree_path_release(&tp);
	tp = parse_ok("/101/main/x%2elog");
	cr_assert_str_eq(tp.job, "x.log");
	tree_path_release(&tp);
	/* one spelling each: a plain dot before the suffix, or %2E anywhere else, is no name */
	cr_assert_eq(tree_parse("/101/main/x.log.log", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/main/x.zip.zip", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/main/a%2Eb", &tp), -ENOENT);
	cr_assert_eq(tree_parse("/101/x%2Elog/build", &tp), -ENOENT); /* refs are not jobs */
	/* the %2E counts against FUSE's 1024 bytes */
	char *name = malloc(1100);
	memset(name, 'a', 1016);
	memcpy(name + 1016, ".log", 5); /* 1020 bytes, 1022 escaped, then ".zip" */
	cr_assert_not(tree_name_listable(name));
	name[1016] = '_';
	cr_assert(tree_name_listable(name));
	free(name);
}
