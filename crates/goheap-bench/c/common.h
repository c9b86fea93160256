/* Shared by the C workloads of `goheap cbench`: a deterministic PRNG, a
 * checksum mixer, a clock, the scale argument, and the result line, which
 * also names the library that serves malloc in this process (to prove an
 * LD_PRELOAD took effect). */
#ifndef GOHEAP_CBENCH_COMMON_H
#define GOHEAP_CBENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SplitMix64: a tiny, fast, well-mixed generator; each thread has its own
 * state, seeded from fixed constants, so every run does the same work. */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi]. */
static inline uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi) {
    return lo + rng_next(s) % (hi - lo + 1);
}

/* A log-uniform integer in [lo, hi]: every power of two equally likely,
 * so small sizes dominate the count and large ones the bytes. */
static inline uint64_t rng_log(uint64_t *s, uint64_t lo, uint64_t hi) {
    uint64_t r = rng_next(s);
    int lo_bits = 63 - __builtin_clzll(lo);
    int hi_bits = 63 - __builtin_clzll(hi);
    int b = lo_bits + (int)((r & 0xffff) % (uint64_t)(hi_bits - lo_bits + 1));
    uint64_t base = 1ULL << b;
    uint64_t v = base + ((r >> 16) % base);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return v;
}

/* Folds v into the running checksum h (order-dependent). */
static inline uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0x100000001b3ULL;
}

/* A well-mixed hash of one value, for order-independent sums. */
static inline uint64_t hash64(uint64_t v) {
    uint64_t s = v;
    return rng_next(&s);
}

static inline double now_secs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The scale in argv[1] (default 1): multiplies the amount of work. */
static inline double scale_arg(int argc, char **argv) {
    double s = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(s > 0.0)) {
        fprintf(stderr, "usage: %s [scale]  (scale > 0, default 1)\n", argv[0]);
        exit(2);
    }
    return s;
}

/* `n * scale`, at least 1. */
static inline long scaled(long n, double scale) {
    long v = (long)((double)n * scale + 0.5);
    return v < 1 ? 1 : v;
}

/* The file of the shared object that defines `sym` in this process, as
 * the dynamic linker resolves it (an LD_PRELOAD library comes first). */
static inline const char *lib_of(const char *sym) {
    Dl_info info;
    void *p = dlsym(RTLD_DEFAULT, sym);
    if (p == NULL || dladdr(p, &info) == 0 || info.dli_fname == NULL) return "?";
    return info.dli_fname;
}

/* The result line goheap cbench parses: the checksum, the time measured
 * inside the process, and the libraries that define malloc and free (and,
 * in C++, operator new) in this process. */
static inline void report(const char *workload, double scale, uint64_t checksum, double secs) {
    printf("workload=%s scale=%g checksum=%016llx secs=%.6f malloc_lib=%s free_lib=%s",
           workload, scale, (unsigned long long)checksum, secs, lib_of("malloc"), lib_of("free"));
#ifdef __cplusplus
    printf(" new_lib=%s", lib_of("_Znwm"));
#endif
    printf("\n");
    fflush(stdout);
}

/* Aborts with a message when an allocation fails. */
static inline void *check(void *p, const char *what) {
    if (p == NULL) {
        fprintf(stderr, "out of memory in %s\n", what);
        abort();
    }
    return p;
}

#ifdef __cplusplus
}
#endif

#endif
