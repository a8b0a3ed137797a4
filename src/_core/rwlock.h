/* A reader-writer lock for the index: many searches at once, structural
 * changes (insert, delete, resize, close) exclusive.
 *
 * pthread's rwlock, asked to prefer writers where glibc allows it, so a steady
 * stream of searches cannot starve an insert. Readers never take it
 * recursively, which writer preference would otherwise turn into a deadlock.
 */
#ifndef VJ_RWLOCK_H
#define VJ_RWLOCK_H

#include <pthread.h>

typedef struct {
    pthread_rwlock_t rw;
} vj_rwlock;

static int vj_rwlock_init(vj_rwlock *l) {
    pthread_rwlockattr_t attr;
    int rc = pthread_rwlockattr_init(&attr);
    if (rc != 0) return rc;
#if defined(__GLIBC__) && defined(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP)
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    rc = pthread_rwlock_init(&l->rw, &attr);
    pthread_rwlockattr_destroy(&attr);
    return rc;
}

static void vj_rwlock_destroy(vj_rwlock *l) { pthread_rwlock_destroy(&l->rw); }
static void vj_read_lock(vj_rwlock *l) { pthread_rwlock_rdlock(&l->rw); }
static void vj_write_lock(vj_rwlock *l) { pthread_rwlock_wrlock(&l->rw); }
static void vj_rw_unlock(vj_rwlock *l) { pthread_rwlock_unlock(&l->rw); }

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
