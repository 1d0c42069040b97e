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
