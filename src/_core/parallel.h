/* A minimal parallel-for over [0, n) on plain pthreads: workers pull indices
 * from a shared atomic counter, so uneven items (HNSW inserts vary a lot)
 * balance themselves. The calling thread works too. No OpenMP, so wheels need
 * no extra runtime library. Callers run this with the GIL released.
 */
#ifndef VJ_PARALLEL_H
#define VJ_PARALLEL_H

#include <pthread.h>
#include <stddef.h>

typedef void (*vj_task_fn)(void *ctx, size_t item, int worker);

typedef struct {
    vj_task_fn fn;
    void *ctx;
    size_t n;
    size_t next;
    int worker;
} vj_pfor_job;

typedef struct {
    vj_pfor_job *job;
    int worker;
} vj_pfor_arg;

static void vj_pfor_drain(vj_pfor_job *job, int worker) {
    for (;;) {
        size_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (i >= job->n) break;
        job->fn(job->ctx, i, worker);
    }
}

static void *vj_pfor_thread(void *p) {
    vj_pfor_arg *arg = (vj_pfor_arg *)p;
    vj_pfor_drain(arg->job, arg->worker);
    return NULL;
}

#define VJ_MAX_THREADS 256

/* Runs fn(ctx, i, worker) for every i in [0, n) on up to nthreads threads;
 * worker is in [0, nthreads) and names per-thread scratch space. If threads
 * cannot be created the remaining work runs on fewer (at least the caller). */
static void vj_parallel_for(size_t n, int nthreads, vj_task_fn fn, void *ctx) {
    vj_pfor_job job = {fn, ctx, n, 0, 0};
    if (nthreads > VJ_MAX_THREADS) nthreads = VJ_MAX_THREADS;
    if ((size_t)nthreads > n) nthreads = (int)n;
    if (nthreads <= 1) { vj_pfor_drain(&job, 0); return; }
    pthread_t tids[VJ_MAX_THREADS];
    vj_pfor_arg args[VJ_MAX_THREADS];
    int started = 0;
    for (int t = 1; t < nthreads; t++) {
        args[t].job = &job;
        args[t].worker = t;
        if (pthread_create(&tids[t], NULL, vj_pfor_thread, &args[t]) != 0) break;
        started = t;
    }
    vj_pfor_drain(&job, 0);
    for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
}

#endif /* VJ_PARALLEL_H */
