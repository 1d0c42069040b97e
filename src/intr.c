/* intr: the calling thread's question "was my request interrupted?" (intr.h), and the one wait
 * that asks it. The question lives in thread-local storage set by the operation's entry, so the
 * layers below need neither libfuse nor an extra argument; intr_pending() is cheap enough for a
 * per-block check (one call of the question, which takes libfuse's session lock). */
#include "artifactfs/intr.h"

#include <errno.h>
#include <time.h>

static _Thread_local intr_fn question;
static _Thread_local void *question_ctx;

void intr_begin(intr_fn fn, void *ctx)
{
	question = fn;
	question_ctx = ctx;
}

void intr_end(void)
{
	question = NULL;
	question_ctx = NULL;
}

bool intr_pending(void)
{
	return question && question(question_ctx);
}

int intr_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
{
	if (!question) {
		pthread_cond_wait(cond, mutex);
		return 0;
	}
	if (intr_pending())
		return -EINTR;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += INTR_POLL_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	/* a time-out is one more turn of the caller's loop, which asks again on entry */
	pthread_cond_clockwait(cond, mutex, CLOCK_MONOTONIC, &until);
	return intr_pending() ? -EINTR : 0;
}
