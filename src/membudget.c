/* membudget: the process's (the mount's) accounted memory budget for archive indexes and name
 * tables (see membudget.h). One atomic counter: a take that would pass the limit is undone at
 * once, so concurrent takes never leave more than the limit taken. */
#include "artifactfs/membudget.h"

#include <errno.h>
#include <stdatomic.h>

#include "artifactfs/log.h"

static uint64_t limit_bytes = MEMBUDGET_DEFAULT; /* set before threads start, then only read */
static _Atomic uint64_t used_bytes;

void membudget_set_limit(uint64_t bytes)
{
	limit_bytes = bytes ? bytes : MEMBUDGET_DEFAULT;
}

uint64_t membudget_limit(void)
{
	return limit_bytes;
}

int membudget_take(size_t bytes, const char *what)
{
	/* bytes near 2^64 (what a hostile header declares) would wrap the sum to a fit */
	if (bytes <= limit_bytes) {
		uint64_t was = atomic_fetch_add(&used_bytes, bytes);
		if (was + bytes <= limit_bytes)
			return 0;
		atomic_fetch_sub(&used_bytes, bytes);
	}
	log_set_reason("%s needs %llu MiB more, over the mount's memory budget of %llu MiB "
		       "(--memory-limit)",
		       what, (unsigned long long)(bytes >> 20) + 1,
		       (unsigned long long)(limit_bytes >> 20));
	return -ENOMEM;
}

void membudget_give(size_t bytes)
{
	atomic_fetch_sub(&used_bytes, bytes);
}

uint64_t membudget_used(void)
{
	return atomic_load(&used_bytes);
}
