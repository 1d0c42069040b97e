#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifactfs/log.h"

static char dir[64], path[128], rotated[128], why[128];

static void setup(void)
{
	strcpy(dir, "/tmp/afs-log.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/afs.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/afs.log.1", dir);
	log_init(false, LOG_INFO);
}

static void teardown(void)
{
	log_close();
	unlink(path);
	unlink(rotated);
	rmdir(path); /* the test that puts a folder there */
	rmdir(dir);
}

/* The whole file, NUL-terminated; "" when absent. The caller frees. */
static char *slurp(const char *p)
{
	char *buf = calloc(1, 65536);
	FILE *f = fopen(p, "r");
	if (f) {
		fread(buf, 1, 65535, f);
		fclose(f);
	}
	return buf;
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, file_lines_are_timestamped_with_the_pid)
{
	cr_assert_eq(log_open_file(path, why, sizeof(why)), 0);
	log_msg(LOG_ERR, "read of %d bytes failed", 42);
	char *text = slurp(path), re[128];
	snprintf(re, sizeof(re),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
		 "artifactfs\\[%ld\\]: error: read of 42 bytes failed\n$",
		 (long)getpid());
	regex_t rx;
	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED), 0);
	cr_expect_eq(regexec(&rx, text, 0, NULL, 0), 0, "%s", text);
	regfree(&rx);
	free(text);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
}

Test(log, levels_above_the_filter_are_dropped)
{
	cr_assert_eq(log_open_file(path, why, sizeof(why)), 0);
	log_msg(LOG_DEBUG, "not this");
	log_msg(LOG_WARNING, "this");
	char *text = slurp(path);
	cr_expect_null(strstr(text, "not this"));
	cr_expect_not_null(strstr(text, "warning: this"));
	free(text);
}

Test(log, reopen_moves_to_a_new_file_at_the_same_path)
{
	cr_assert_eq(log_open_file(path, why, sizeof(why)), 0);
	log_msg(LOG_INFO, "before");
	cr_assert_eq(rename(path, rotated), 0);
	cr_assert_eq(log_reopen(), 0);
	log_msg(LOG_INFO, "after");
	char *old = slurp(rotated), *now = slurp(path);
	cr_expect_not_null(strstr(old, "before"));
	cr_expect_null(strstr(old, "after"));
	cr_expect_not_null(strstr(now, "info: log file reopened"));
	cr_expect_not_null(strstr(now, "after"));
	free(old);
	free(now);
}

Test(log, a_long_line_is_cut_but_stays_one_line)
{
	cr_assert_eq(log_open_file(path, why, sizeof(why)), 0);
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_msg(LOG_ERR, "%s", big);
	log_msg(LOG_ERR, "next");
	char *text = slurp(path);
	char *nl = strchr(text, '\n');
	cr_assert_not_null(nl);
	cr_expect(strncmp(nl + 1, "20", 2) == 0, "the next line starts on its own: %.40s", nl + 1);
	free(text);
}

Test(log, a_symbolic_link_is_not_followed)
{
	cr_assert_eq(symlink("/dev/null", path), 0);
	cr_expect_neq(log_open_file(path, why, sizeof(why)), 0);
}

/* Another user's FIFO at the path blocked start-up forever (nobody reads it). */
Test(log, a_fifo_is_refused_without_blocking)
{
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), -EINVAL);
	cr_assert_str_eq(why, "it is not a regular file");
}

Test(log, a_folder_is_refused_as_not_a_regular_file)
{
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), -EINVAL);
	cr_assert_str_eq(why, "it is not a regular file");
}

/* Root's log must not go to a file that others can read or write into. */
Test(log, a_file_others_can_write_is_refused)
{
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	fchmod(fd, 0666);
	close(fd);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), -EACCES);
	cr_assert_str_eq(why, "it can be written by group or others");
}

Test(log, another_users_file_is_refused)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away");
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fchown(fd, 65534, 65534), 0);
	close(fd);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), -EACCES);
	cr_assert_str_eq(why, "it is owned by another user");
}

Test(log, a_folder_others_can_write_is_refused_unless_sticky)
{
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), -EACCES);
	cr_assert_str_eq(why, "its folder can be written by others");
	cr_assert_eq(chmod(dir, 01777), 0);
	cr_assert_eq(log_open_file(path, why, sizeof(why)), 0);
}

static void *other_thread(void *arg)
{
	(void)arg;
	log_set_reason("GET %s: HTTP %d", "/elsewhere", 503);
	return strcmp(log_reason(), "GET /elsewhere: HTTP 503") == 0 ? (void *)1 : NULL;
}

Test(log, a_failure_reason_belongs_to_its_thread)
{
	log_clear_reason();
	cr_assert_str_eq(log_reason(), "");
	log_set_reason("GET %s: HTTP %d", "/api/v4/projects/1/jobs/2/artifacts", 500);
	pthread_t t;
	void *ok = NULL;
	cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, &ok);
	cr_assert_not_null(ok);
	cr_assert_str_eq(log_reason(), "GET /api/v4/projects/1/jobs/2/artifacts: HTTP 500");
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_set_reason("%s", big);
	cr_assert_lt(strlen(log_reason()), 400, "cut, never overflowing");
	log_clear_reason();
	cr_assert_str_eq(log_reason(), "");
}
