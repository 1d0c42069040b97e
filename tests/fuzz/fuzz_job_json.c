/* libFuzzer target: GitLab's job JSON, however malformed, parses or fails with -EIO, never
 * crashing or leaking. */
#include <stdint.h>
#include <string.h>

#include "artifactfs/gitlab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gl_job j;
	memset(&j, 0, sizeof(j));
	if (gitlab_parse_job((const char *)data, size, &j) == 0)
		gl_job_release(&j);
	return 0;
}
