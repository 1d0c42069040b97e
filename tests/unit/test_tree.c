#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

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
	cr_assert_eq(tp.kind, TREE_REF_JOB);
	cr_assert_str_eq(tp.project, "101");
	cr_assert_str_eq(tp.ref, "feature/login");
	cr_assert_str_eq(tp.job, "test 1/3");
	cr_assert_str_eq(tp.member, "dir/file.txt");
	tree_path_release(&tp);
}

Test(tree, job_folder_has_an_empty_member)
{
	struct tree_path tp = parse_ok("/101/main/build: [linux, amd64]");
	cr_assert_eq(tp.kind, TREE_REF_JOB);
	cr_assert_str_eq(tp.job, "build: [linux, amd64]");
	cr_assert_str_eq(tp.member, "");
	tree_path_release(&tp);
}

Test(tree, zip_suffix_names_the_whole_archive)
{
	struct tree_path tp = parse_ok("/101/main/build.zip");
	cr_assert_eq(tp.kind, TREE_REF_ZIP);
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
