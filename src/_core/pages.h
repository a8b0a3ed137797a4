/* Page faults taken ahead, on purpose. Writing into a MAP_PRIVATE file mapping
 * takes a copy-on-write fault per page; a loop that writes scattered records
 * takes them one at a time. vj_touch_for_write takes them for [p, p + n) first
 * (on several threads, where the caller splits the work) by or-ing 0 into a
 * byte of each page: atomically, so threads touching one page agree, and
 * without changing what the page holds. 4096 is the smallest page size: on
 * bigger pages some touches are repeats, which cost little.
 */
#ifndef VJ_PAGES_H
#define VJ_PAGES_H

#include <stddef.h>
#include <stdint.h>

static inline void vj_touch_for_write(void *p, size_t n) {
    uintptr_t at = (uintptr_t)p, end = at + n;
    while (at < end) {
        __atomic_fetch_or((unsigned char *)at, 0, __ATOMIC_RELAXED);
        at = (at | 4095) + 1;
    }
}

#endif /* VJ_PAGES_H */
