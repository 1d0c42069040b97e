/* A private folder per test under /tmp, removed whole at teardown: the test suites that open a
 * cache (catalog, fs, job, nest) share these two, so none leaves folders behind. */
#ifndef TMPDIR_H
#define TMPDIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new folder /tmp/afs-<name>-test.XXXXXX; the caller frees it with tmpdir_remove(). */
static char *tmpdir_new(const char *name)
{
	char *dir = NULL;
	cr_assert(asprintf(&dir, "/tmp/afs-%s-test.XXXXXX", name) > 0);
	cr_assert_not_null(mkdtemp(dir));
	return dir;
}

/* Removes the folder and all it holds, and frees its name. */
static void tmpdir_remove(char *dir)
{
	char *cmd;
	cr_assert(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	free(dir);
}

#endif
