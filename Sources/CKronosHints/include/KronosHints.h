// Hints to the processor that Swift cannot spell. Header-only: the functions inline into the kernels.
#ifndef KRONOS_HINTS_H
#define KRONOS_HINTS_H

// Asks for the cache line holding p to be fetched for reading (no fault if p is out of bounds).
static inline __attribute__((always_inline)) void kronos_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
