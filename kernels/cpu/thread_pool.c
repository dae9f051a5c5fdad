/* thread_pool.c - the persistent worker pool behind every threaded CPU kernel.
 *
 * A decode step of a small model runs ~50 short ops, so a dispatch must cost
 * a few microseconds, not a thread create or a futex round trip per op:
 *
 *   - workers are created once and, after a job, spin on the job word for a
 *     short while (SPIN_NS) before they sleep on a condition variable; in a
 *     decode loop the next op arrives while they still spin;
 *   - one 64-bit atomic "ticket" word carries the whole job header
 *     (generation, chunk count, next chunk), so a thread claims a chunk with a
 *     single fetch_add and can never act on a half-written job;
 *   - the caller claims chunks like any worker, so a chunk whose worker is
 *     slow to wake is simply taken by whoever is free.
 *
 * One caller at a time: a parallel_for issued from inside a chunk, or from a
 * second thread while the pool is busy, runs inline instead of waiting. */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before it sleeps. Long enough to span the
 * gap between two ops of a decode step (norms, residuals run inline in a few
 * microseconds); short enough that an idle program does not burn a core. */
#define SPIN_NS 200000L
/* Checks of the clock while spinning happen every SPIN_CHECK pauses. */
#define SPIN_CHECK 64
/* Chunk count and chunk index each live in 16 bits of the ticket. The chunk
 * field can overshoot the chunk count by at most one per thread per job, so
 * the thread count stays well below 2^15. */
#define MAX_THREADS 4096

/* ticket layout: generation (32) | chunk count (16) | next chunk (16) */
#define T_GEN(t) ((uint32_t)((t) >> 32))
#define T_NCHUNK(t) ((int)(((t) >> 16) & 0xffffu))
#define T_CHUNK(t) ((int)((t)&0xffffu))

struct gs_pool {
    int n_threads;      /* including the caller */
    int n_workers;      /* threads created: n_threads - 1 */
    pthread_t *workers;
    uint32_t gen;       /* caller's copy of the last published generation */

    /* Job parameters: written by the caller before it publishes the ticket,
     * read by a thread only after it claimed a chunk of that job, and the job
     * cannot end (and be overwritten) before that chunk is done. */
    gs_pool_fn fn;
    void *ctx;
    int n;

    /* Each hot atomic on its own cache line: every thread writes them. */
    _Alignas(64) _Atomic uint64_t ticket;
    _Alignas(64) _Atomic int done;      /* chunks finished in this job */
    _Alignas(64) _Atomic int busy;      /* a caller is dispatching */
    _Atomic int sleepers;               /* workers inside cond_wait (or about to be) */
    _Atomic int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Set in workers for their whole life and in a caller during its job, so a
 * nested parallel_for runs inline rather than deadlocking on its own pool. */
static _Thread_local int tl_in_pool;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void run_chunk(gs_pool *p, int nchunk, int c)
{
    /* 64-bit products: n * c overflows int for n near INT_MAX. */
    int begin = (int)((long long)p->n * c / nchunk);
    int end = (int)((long long)p->n * (c + 1) / nchunk);
    p->fn(p->ctx, begin, end);
}

/* Claims and runs chunks of the current job until none is left. Returns the
 * generation the last claim landed in, so a worker knows what it has seen. */
static uint32_t work(gs_pool *p)
{
    for (;;) {
        uint64_t t = atomic_fetch_add_explicit(&p->ticket, 1, memory_order_acq_rel);
        int nchunk = T_NCHUNK(t), c = T_CHUNK(t);
        if (c >= nchunk)
            return T_GEN(t);
        run_chunk(p, nchunk, c);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg)
{
    gs_pool *p = arg;
    tl_in_pool = 1;
    /* The creation generation, not the ticket's current one: a worker that
     * starts after the first job was published must still join that job
     * (run_on_each waits for every thread). Joining a finished job costs
     * one overshooting claim. */
    uint32_t seen = 0;
    for (;;) {
        /* Spin: the common case in a decode loop. */
        long start = 0;
        for (int i = 0;; i++) {
            if (T_GEN(atomic_load_explicit(&p->ticket, memory_order_acquire)) != seen ||
                atomic_load_explicit(&p->stop, memory_order_relaxed))
                break;
            cpu_relax();
            if (i % SPIN_CHECK == SPIN_CHECK - 1) {
                long t = now_ns();
                if (start == 0)
                    start = t;
                else if (t - start > SPIN_NS)
                    break;
            }
        }
        /* Sleep. sleepers is raised before the ticket is re-read (both
         * seq_cst), and the caller stores the ticket before it reads sleepers:
         * one of the two sides always sees the other, so no wakeup is lost. */
        if (T_GEN(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (T_GEN(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        seen = work(p);
    }
    return NULL;
}

gs_pool *gs_pool_create(int n_threads)
{
    if (n_threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (int)cpus : 1;
    }
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    gs_pool *p = aligned_alloc(64, (sizeof(gs_pool) + 63) / 64 * 64);
    if (!p)
        return NULL;
    p->n_threads = n_threads;
    p->n_workers = 0;
    p->workers = NULL;
    p->gen = 0;
    p->fn = NULL;
    p->ctx = NULL;
    p->n = 0;
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (n_threads > 1) {
        p->workers = calloc((size_t)(n_threads - 1), sizeof(pthread_t));
        if (!p->workers) {
            gs_pool_destroy(p);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                gs_pool_destroy(p); /* joins the ones already running */
                return NULL;
            }
            p->n_workers++;
        }
    }
    return p;
}

void gs_pool_destroy(gs_pool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, 1);
    /* Taking the lock orders the stop flag against a worker that is between
     * its last check and cond_wait: it either sees stop or gets the signal. */
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_workers; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

int gs_pool_threads(const gs_pool *pool) { return pool ? pool->n_threads : 1; }

void gs_pool_parallel_for(gs_pool *pool, int n, int min_chunk, gs_pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (min_chunk < 1)
        min_chunk = 1;
    /* Inline: nothing to split, or no one to split it with. n / min_chunk
     * rather than 2 * min_chunk so a huge min_chunk cannot overflow. */
    if (!pool || pool->n_threads <= 1 || n / min_chunk < 2 || tl_in_pool) {
        fn(ctx, 0, n);
        return;
    }
    /* A second caller thread would corrupt the job in flight: it runs inline. */
    if (atomic_exchange_explicit(&pool->busy, 1, memory_order_acquire)) {
        fn(ctx, 0, n);
        return;
    }
    int nchunk = n / min_chunk;
    if (nchunk > pool->n_threads)
        nchunk = pool->n_threads;

    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    pool->gen++;
    /* seq_cst store: releases the job parameters, and pairs with the
     * sleepers load below (see worker_main). */
    atomic_store(&pool->ticket, ((uint64_t)pool->gen << 32) | ((uint64_t)nchunk << 16));
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }

    tl_in_pool = 1;
    work(pool);
    tl_in_pool = 0;

    /* Wait for the chunks other threads claimed. Spin first (they are
     * usually microseconds away), then yield so an oversubscribed machine can
     * run the worker we are waiting for. */
    for (int i = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < nchunk; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}

/* run_on_each rides on parallel_for: a job of exactly n_threads one-item
 * chunks in which each chunk, after fn, waits until every chunk has run. A
 * thread waiting there cannot claim a second chunk, so the n_threads chunks
 * land on n_threads distinct threads: every worker and the caller. */
typedef struct each_job {
    gs_pool_each_fn fn;
    void *ctx;
    int n;
    int inline_run;       /* parallel_for ran the job inline: nothing ran */
    _Atomic int next;     /* ordinal handed to the next thread */
    _Atomic int arrived;  /* threads done with fn */
} each_job;

static void each_chunk(void *ctx, int begin, int end)
{
    each_job *j = ctx;
    if (end - begin != 1) {
        /* The whole range in one call: the pool was busy, no one else runs. */
        j->inline_run = 1;
        return;
    }
    j->fn(j->ctx, atomic_fetch_add(&j->next, 1));
    atomic_fetch_add(&j->arrived, 1);
    for (int i = 0; atomic_load(&j->arrived) < j->n; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield(); /* a sleeping worker may need this core to wake */
    }
}

int gs_pool_run_on_each(gs_pool *pool, gs_pool_each_fn fn, void *ctx)
{
    if (!pool || pool->n_threads <= 1) {
        fn(ctx, 0);
        return 1;
    }
    if (tl_in_pool)
        return -1;
    each_job j = {fn, ctx, pool->n_threads, 0, 0, 0};
    gs_pool_parallel_for(pool, pool->n_threads, 1, each_chunk, &j);
    return j.inline_run ? -1 : pool->n_threads;
}
