/* The runner behind tsan/criterion/criterion.h: runs each registered test in a forked child
 * (init, test, fini; an assertion longjmps to fini) and prints one line per test and a synthesis
 * line. Exit 0 only when no test failed or crashed. Arguments (Criterion's --jobs etc.) are
 * ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define SKIP_STATUS 77

static struct crs_test *tests, **tests_tail = &tests;
static struct crs_suite *suites;
static jmp_buf failed_jump;
static bool expect_failed;

void crs_add_test(struct crs_test *t)
{
	*tests_tail = t; /* registration order is file order, as Criterion prints it */
	tests_tail = &t->next;
}

void crs_add_suite(struct crs_suite *s)
{
	s->next = suites;
	suites = s;
}

static void report(const char *file, int line, const char *expr, const char *fmt, va_list ap)
{
	fprintf(stderr, "[----] %s:%d: Assertion failed: %s\n[----]   ", file, line, expr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void crs_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(file, line, expr, fmt, ap);
	va_end(ap);
	longjmp(failed_jump, 1);
}

void crs_expect_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(file, line, expr, fmt, ap);
	va_end(ap);
	expect_failed = true;
}

void crs_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[SKIP] ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(NULL);
	_exit(SKIP_STATUS);
}

static const struct crs_opts *suite_opts(const char *name)
{
	for (struct crs_suite *s = suites; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return &s->opts;
	return NULL;
}

static _Noreturn void run_child(const struct crs_test *t)
{
	const struct crs_opts *so = suite_opts(t->suite);
	void (*init)(void) = t->opts.init ? t->opts.init : so ? so->init : NULL;
	void (*fini)(void) = t->opts.fini ? t->opts.fini : so ? so->fini : NULL;
	volatile bool failed = false;

	if (init)
		init();
	if (setjmp(failed_jump) == 0)
		t->fn();
	else
		failed = true;
	if (fini)
		fini();
	fflush(NULL);
	_exit(failed || expect_failed ? 1 : 0);
}

int main(void)
{
	int n = 0, passed = 0, failed = 0, crashed = 0, skipped = 0;

	for (struct crs_test *t = tests; t; t = t->next, n++) {
		fflush(NULL);
		pid_t pid = fork();
		int status;
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0)
			run_child(t);
		while (waitpid(pid, &status, 0) < 0)
			;
		const char *verdict = "PASS";
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passed++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS) {
			skipped++;
			verdict = "SKIP";
		} else if (WIFEXITED(status)) {
			failed++;
			verdict = "FAIL";
		} else {
			crashed++;
			verdict = "CRASH";
		}
		printf("[%s] %s::%s\n", verdict, t->suite, t->name);
	}
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d"
	       " | Skipped: %d\n",
	       n, passed, failed, crashed, skipped);
	return failed || crashed ? 1 : 0;
}
