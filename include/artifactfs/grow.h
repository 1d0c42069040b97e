/* grow: the one way arrays grow (zipindex.c, unpack.c, cache.c's evicted files): capacity
 * doubles from 16, so appending n elements costs O(n) copies in all. */
#ifndef ARTIFACTFS_GROW_H
#define ARTIFACTFS_GROW_H

#include <errno.h>
#include <stdlib.h>

/* Makes room for need elements of size bytes in *v (capacity *cap). Returns 0 or -ENOMEM, in
 * which case *v and *cap are unchanged and still owned by the caller. */
static inline int array_grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *p = realloc(*v, c * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

#endif
