/* A stand-in for the part of Criterion's API the unit tests use, for the ThreadSanitizer pass
 * only. Criterion cannot start under TSan (its BoxFort arena needs fixed addresses that TSan's
 * shadow memory takes: "Could not initialize inheritable arena", Criterion issue #274), so the
 * TSan build puts this folder before Criterion's on the include path and links no Criterion.
 *
 * Semantics kept: each test runs in a forked child (tests may leave state behind), the suite's or
 * test's .init runs before it and .fini after it even when an assertion fails, cr_expect records
 * a failure and goes on, cr_skip_test skips. The runner prints a Criterion-like synthesis line and
 * exits non-zero when any test failed or crashed. Only what tests/unit uses is here. */
#ifndef ARTIFACTFS_CRITERION_SHIM_H
#define ARTIFACTFS_CRITERION_SHIM_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct crs_opts {
	int unused; /* lets an empty option list still be a valid initialiser */
	void (*init)(void);
	void (*fini)(void);
	double timeout; /* ctest's TIMEOUT bounds the whole binary instead */
};

struct crs_test {
	const char *suite, *name;
	void (*fn)(void);
	struct crs_opts opts;
	struct crs_test *next;
};

struct crs_suite {
	const char *name;
	struct crs_opts opts;
	struct crs_suite *next;
};

void crs_add_test(struct crs_test *t);
void crs_add_suite(struct crs_suite *s);
_Noreturn void crs_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void crs_expect_failed(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
_Noreturn void crs_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define Test(suite, name, ...)                                                             \
	static void crs_fn_##suite##_##name(void);                                         \
	static struct crs_test crs_t_##suite##_##name = {                                  \
		#suite, #name, crs_fn_##suite##_##name, {.unused = 0, __VA_ARGS__}, NULL}; \
	__attribute__((constructor)) static void crs_reg_##suite##_##name(void)            \
	{                                                                                  \
		crs_add_test(&crs_t_##suite##_##name);                                     \
	}                                                                                  \
	static void crs_fn_##suite##_##name(void)

#define TestSuite(suite, ...)                                                               \
	static struct crs_suite crs_s_##suite = {#suite, {.unused = 0, __VA_ARGS__}, NULL}; \
	__attribute__((constructor)) static void crs_sreg_##suite(void)                     \
	{                                                                                   \
		crs_add_suite(&crs_s_##suite);                                              \
	}

#define cr_assert(cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			crs_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__); \
	} while (0)
#define cr_expect(cond, ...)                                                           \
	do {                                                                           \
		if (!(cond))                                                           \
			crs_expect_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__); \
	} while (0)
#define cr_assert_fail(...) crs_fail(__FILE__, __LINE__, "cr_assert_fail", " " __VA_ARGS__)
#define cr_skip_test(...) crs_skip(" " __VA_ARGS__)
#define cr_log_info(...) (printf(__VA_ARGS__), printf("\n"))

#define cr_assert_not(c, ...) cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) cr_expect((a) == (b), __VA_ARGS__)
#define cr_expect_neq(a, b, ...) cr_expect((a) != (b), __VA_ARGS__)
#define cr_expect_null(p, ...) cr_expect((p) == NULL, __VA_ARGS__)
#define cr_expect_not_null(p, ...) cr_expect((p) != NULL, __VA_ARGS__)

#endif
