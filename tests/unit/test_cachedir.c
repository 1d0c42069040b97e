#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifactfs/cachedir.h"

static char base[64];
static char why[512];

static void setup(void)
{
	strcpy(base, "/tmp/afs-cachedir.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_expect_eq(system(cmd), 0);
}

/* base/rel, in one of four buffers so that a call can take two */
static char *at(const char *rel)
{
	static char p[4][256];
	static unsigned next;
	char *s = p[next++ % 4];
	snprintf(s, sizeof(p[0]), "%s/%s", base, rel);
	return s;
}

TestSuite(cachedir, .init = setup, .fini = teardown);

Test(cachedir, creates_missing_folders_0700)
{
	cr_assert_eq(cachedir_prepare(at("a/b/c"), NULL, why, sizeof(why)), 0, "%s", why);
	struct stat st;
	cr_assert_eq(stat(at("a/b/c"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(stat(at("a"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
}

Test(cachedir, refuses_a_folder_others_can_write)
{
	mkdir(at("open"), 0700);
	chmod(at("open"), 0777);
	cr_assert_eq(cachedir_prepare(at("open"), NULL, why, sizeof(why)), -EACCES);
	cr_assert(strstr(why, "written by group or others"), "%s", why);
	cr_assert_eq(cachedir_prepare(at("open/below"), NULL, why, sizeof(why)), -EACCES);
}

Test(cachedir, accepts_a_sticky_parent_others_can_write)
{
	mkdir(at("sticky"), 0700);
	chmod(at("sticky"), 01777);
	cr_assert_eq(cachedir_prepare(at("sticky/mine"), NULL, why, sizeof(why)), 0, "%s", why);
}

Test(cachedir, refuses_a_folder_of_another_user)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to give a folder away");
	mkdir(at("theirs"), 0700);
	cr_assert_eq(chown(at("theirs"), 65534, 65534), 0);
	cr_assert_eq(cachedir_prepare(at("theirs"), NULL, why, sizeof(why)), -EACCES);
	cr_assert(strstr(why, "owned by another user (uid 65534)"), "%s", why);
	cr_assert_eq(cachedir_prepare(at("theirs/x"), NULL, why, sizeof(why)), -EACCES);
}

Test(cachedir, refuses_a_link_below_home_and_follows_one_above)
{
	mkdir(at("real"), 0700);
	cr_assert_eq(symlink(at("real"), at("home")), 0);
	/* the home folder itself is a link: followed */
	cr_assert_eq(cachedir_prepare(at("home/.cache/a"), at("home"), why, sizeof(why)), 0, "%s",
		     why);
	cr_assert_eq(symlink(at("real"), at("real/link")), 0);
	cr_assert_eq(cachedir_prepare(at("home/link/a"), at("home"), why, sizeof(why)), -ELOOP);
	cr_assert(strstr(why, "symbolic link"), "%s", why);
	/* outside home, every link is refused */
	cr_assert_eq(cachedir_prepare(at("home/x"), NULL, why, sizeof(why)), -ELOOP);
}

Test(cachedir, refuses_dotdot_and_files)
{
	cr_assert_eq(cachedir_prepare(at("a/../b"), NULL, why, sizeof(why)), -EINVAL);
	FILE *f = fopen(at("file"), "w");
	fclose(f);
	cr_assert_eq(cachedir_prepare(at("file/x"), NULL, why, sizeof(why)), -ENOTDIR);
}
