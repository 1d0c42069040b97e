/* libFuzzer target: the path grammar must never crash or leak on any path, and what it accepts
 * must round-trip through tree_escape(). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifactfs/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 2);
	if (!path)
		return 0;
	path[0] = '/';
	memcpy(path + 1, data, size);
	path[size + 1] = '\0';
	struct tree_path tp;
	if (tree_parse(path, &tp) == 0) {
		if (tp.project) {
			char *e = tree_escape(tp.project), *d = NULL;
			assert(e && !strchr(e, '/'));
			assert(tree_unescape(e, strlen(e), &d) == 0 && strcmp(d, tp.project) == 0);
			free(e);
			free(d);
		}
		tree_path_release(&tp);
	}
	free(path);
	return 0;
}
