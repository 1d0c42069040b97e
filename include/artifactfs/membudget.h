/* membudget: the one accounted budget of memory for what archives make the daemon hold (every
 * zip index with its name arena, every nested archive's index and its names while it is built).
 * One process is one mount, so the budget is the process's: main() sets the limit
 * (--memory-limit, default 512 MiB) before any thread, and every taker gives back exactly what it
 * took. A hostile archive (deep names that would cost memory quadratic in their depth, a small
 * tar.gz of 100,000 long names) then fails with -ENOMEM and one log line naming it, instead of
 * taking the machine's memory. Lock-free (one atomic counter); thread-safe. */
#ifndef ARTIFACTFS_MEMBUDGET_H
#define ARTIFACTFS_MEMBUDGET_H

#include <stddef.h>
#include <stdint.h>

#define MEMBUDGET_DEFAULT (512u << 20)

/* Sets the limit in bytes (0: the default). Called before threads start; tests call it too. */
void membudget_set_limit(uint64_t bytes);
uint64_t membudget_limit(void);

/* Takes bytes from the budget: 0, or -ENOMEM (nothing taken) when they would exceed it; sets the
 * thread's failure reason (log.h) to say so, naming what (e.g. "the archive's index"). */
int membudget_take(size_t bytes, const char *what);
/* Gives back bytes taken earlier (0 is a no-op). */
void membudget_give(size_t bytes);
/* Bytes taken now. */
uint64_t membudget_used(void);

#endif
