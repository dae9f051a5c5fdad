/* thread_pool.h - a fixed pool of worker threads for the CPU kernels.
 *
 * parallel_for splits [0, n) into contiguous chunks, one per thread, and
 * returns when every chunk is done. The calling thread works too, so a pool of
 * one thread (or a NULL pool) runs everything inline with no locking.
 * One dispatching thread at a time: a parallel_for issued from inside a
 * chunk, or by a second thread while the pool is busy, runs inline. */
#ifndef GS_THREAD_POOL_H
#define GS_THREAD_POOL_H

typedef struct gs_pool gs_pool;
typedef void (*gs_pool_fn)(void *ctx, int begin, int end);

/* n_threads <= 0 means one per online CPU. Returns NULL on failure. */
gs_pool *gs_pool_create(int n_threads);
void gs_pool_destroy(gs_pool *pool);
int gs_pool_threads(const gs_pool *pool); /* 1 for NULL */

/* Runs fn over [0, n); chunks smaller than min_chunk items are not split
 * further, so tiny loops stay on the calling thread. */
void gs_pool_parallel_for(gs_pool *pool, int n, int min_chunk, gs_pool_fn fn, void *ctx);

/* Runs fn exactly once on every thread of the pool, the caller included, and
 * returns when all are done: for per-thread setup such as opening a thread's
 * own hardware counters. thread: 0 .. gs_pool_threads - 1, a distinct ordinal
 * per thread (not a stable worker number). Returns the threads that ran fn,
 * or -1 (fn ran nowhere) when called from inside a job or while another
 * caller holds the pool. */
typedef void (*gs_pool_each_fn)(void *ctx, int thread);
int gs_pool_run_on_each(gs_pool *pool, gs_pool_each_fn fn, void *ctx);

#endif
