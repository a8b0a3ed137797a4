/* A reader-writer lock for the index: many searches at once, structural
 * changes (insert, delete, resize) exclusive.
 *
 * Phase-fair, on a mutex and two condition variables (portable: glibc's
 * writer-preferring rwlock kind is a non-portable enum, musl and macOS have
 * none). A waiting writer stops new readers, so a steady stream of searches
 * cannot starve an insert; a writer releasing the lock admits every reader
 * waiting at that moment before the next writer, so a long insert (which
 * takes the lock once per chunk) cannot starve searches either. Readers never
 * take it recursively: a waiting writer would make that a deadlock.
 */
#ifndef VJ_RWLOCK_H
#define VJ_RWLOCK_H

#include <pthread.h>

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t readers_cv;   /* readers wait here for a writer's release */
    pthread_cond_t writers_cv;   /* writers wait here for the lock to be free */
    unsigned readers;            /* readers holding the lock (or admitted to it) */
    unsigned readers_waiting;
    unsigned writers_waiting;
    unsigned phase;              /* bumped when a writer admits the waiting readers */
    int writer;                  /* a writer holds the lock */
} vj_rwlock;

static int vj_rwlock_init(vj_rwlock *l) {
    int rc = pthread_mutex_init(&l->mutex, NULL);
    if (rc != 0) return rc;
    if ((rc = pthread_cond_init(&l->readers_cv, NULL)) != 0) {
        pthread_mutex_destroy(&l->mutex);
        return rc;
    }
    if ((rc = pthread_cond_init(&l->writers_cv, NULL)) != 0) {
        pthread_cond_destroy(&l->readers_cv);
        pthread_mutex_destroy(&l->mutex);
        return rc;
    }
    l->readers = l->readers_waiting = l->writers_waiting = l->phase = 0;
    l->writer = 0;
    return 0;
}

static void vj_rwlock_destroy(vj_rwlock *l) {
    pthread_cond_destroy(&l->writers_cv);
    pthread_cond_destroy(&l->readers_cv);
    pthread_mutex_destroy(&l->mutex);
}

static void vj_read_lock(vj_rwlock *l) {
    pthread_mutex_lock(&l->mutex);
    if (!l->writer && l->writers_waiting == 0) {
        l->readers++;
    } else {
        /* the releasing writer counts us in readers and bumps the phase */
        unsigned phase = l->phase;
        l->readers_waiting++;
        while (l->phase == phase) pthread_cond_wait(&l->readers_cv, &l->mutex);
    }
    pthread_mutex_unlock(&l->mutex);
}

static void vj_write_lock(vj_rwlock *l) {
    pthread_mutex_lock(&l->mutex);
    l->writers_waiting++;
    while (l->writer || l->readers > 0) pthread_cond_wait(&l->writers_cv, &l->mutex);
    l->writers_waiting--;
    l->writer = 1;
    pthread_mutex_unlock(&l->mutex);
}

static void vj_rw_unlock(vj_rwlock *l) {
    pthread_mutex_lock(&l->mutex);
    if (l->writer) {
        l->writer = 0;
        if (l->readers_waiting > 0) {  /* hand the lock to every waiting reader at once */
            l->readers += l->readers_waiting;
            l->readers_waiting = 0;
            l->phase++;
            pthread_cond_broadcast(&l->readers_cv);
        } else if (l->writers_waiting > 0) {
            pthread_cond_signal(&l->writers_cv);
        }
    } else if (--l->readers == 0 && l->writers_waiting > 0) {
        pthread_cond_signal(&l->writers_cv);
    }
    pthread_mutex_unlock(&l->mutex);
}

/* Counters for tests: (readers holding, readers waiting, writers waiting, writer holding). */
static void vj_rwlock_state(vj_rwlock *l, unsigned out[4]) {
    pthread_mutex_lock(&l->mutex);
    out[0] = l->readers;
    out[1] = l->readers_waiting;
    out[2] = l->writers_waiting;
    out[3] = (unsigned)l->writer;
    pthread_mutex_unlock(&l->mutex);
}

/* One byte per graph node guards its link lists while several threads insert.
 * Critical sections are a few dozen instructions, so spin briefly, then yield
 * (this machine class has 2 cores; spinning against a descheduled holder wastes them). */
#include <sched.h>

static inline void vj_spin_lock(unsigned char *flag) {
    unsigned spins = 0;
    while (__atomic_test_and_set(flag, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(flag, __ATOMIC_RELAXED)) {
            if (++spins > 64) { sched_yield(); spins = 0; }
        }
    }
}

static inline void vj_spin_unlock(unsigned char *flag) {
    __atomic_clear(flag, __ATOMIC_RELEASE);
}

#endif /* VJ_RWLOCK_H */
