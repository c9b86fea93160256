/*
 * security.c: one small attack on the heap per case (argv[1]), run by
 * tests/security.rs under LD_PRELOAD of the release libgoheap.so.
 *
 * Each case prints "ptr=%p" on stderr (the pointer goheap's report must
 * name) before its bad operation, and exits with status 3 if it survives
 * that operation, so "went unnoticed" can be told from "aborted". Other
 * statuses: 2 usage or setup failure, 4 a function the case needs is
 * missing (NO_FREE_SIZED, NO_FLUSH), 5 the heap's layout is not the one the
 * case assumes (SETUP), so the case would prove nothing.
 *
 * The program also runs without goheap (goheap's functions are looked up
 * with dlsym), though then the attacks hit glibc's malloc.
 *
 * 48-byte objects are goheap's size class 5: one 8 KiB page per span, 170
 * objects, spans page-aligned. 3072-byte objects are class 41: 3 pages, 8
 * objects.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 8192u
#define SLOTS48 170u

/* Hides where a pointer comes from (and that it was freed) from the
 * optimiser, so it can neither drop nor warn about the bad calls. */
__attribute__((noinline)) static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

__attribute__((noinline)) static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        exit(2);
    }
    return launder(p);
}

__attribute__((noinline)) static void xfree(void *p) { free(launder(p)); }

/* The pointer the report must name. */
static void report(const void *p) {
    fprintf(stderr, "ptr=%p\n", p);
    fflush(stderr);
}

/* The bad operation went unnoticed. */
static _Noreturn void survived(const char *what) {
    fprintf(stderr, "survived: %s\n", what);
    fflush(stderr);
    exit(3);
}

static _Noreturn void setup_failed(const char *what) {
    fprintf(stderr, "SETUP: %s\n", what);
    fflush(stderr);
    exit(5);
}

/* The slot of a 48-byte object in its (one-page, page-aligned) span. */
static size_t slot48(const void *p) { return ((uintptr_t)p % PAGE) / 48; }

/* goheap_flush_thread_cache(), found at run time; 0 if it is not there. */
static int try_flush_thread_cache(void) {
    void (*f)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "goheap_flush_thread_cache");
    if (f) f();
    return f != NULL;
}

static void flush_thread_cache(void) {
    if (!try_flush_thread_cache()) {
        fprintf(stderr, "NO_FLUSH: goheap_flush_thread_cache not found\n");
        exit(4);
    }
}

/* ---- a helper thread that stays alive until released ------------------ */

static int to_main[2], to_thread[2];

static void xpipe(int fds[2]) {
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
}

static void send_ptr(int fd, void *p) {
    if (write(fd, &p, sizeof p) != (ssize_t)sizeof p) {
        perror("write");
        exit(2);
    }
}

static void *recv_ptr(int fd) {
    void *p = NULL;
    if (read(fd, &p, sizeof p) != (ssize_t)sizeof p) {
        perror("read");
        exit(2);
    }
    return p;
}

/* Runs `body` (which sends a pointer to the main thread) on a new thread
 * that then blocks until release_helper(). Returns the pointer. */
static pthread_t helper;

static void *helper_main(void *arg) {
    void *(*body)(void) = (void *(*)(void))arg;
    send_ptr(to_main[1], body());
    (void)recv_ptr(to_thread[0]);
    return NULL;
}

static void *start_helper(void *(*body)(void)) {
    xpipe(to_main);
    xpipe(to_thread);
    int e = pthread_create(&helper, NULL, helper_main, (void *)body);
    if (e != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(e));
        exit(2);
    }
    return recv_ptr(to_main[0]);
}

static void release_helper(void) {
    send_ptr(to_thread[1], NULL);
    pthread_join(helper, NULL);
}

/* ---- the attacks ------------------------------------------------------- */

/* 1: free(p); free(q); free(p). */
static void c_double_free_after_other_free(void) {
    void *p = xmalloc(48), *q = xmalloc(48);
    report(p);
    xfree(p);
    xfree(q);
    xfree(p);
    survived("free(p); free(q); free(p)");
}

/* 2: free(p); free(p). */
static void c_double_free_immediate(void) {
    void *p = xmalloc(48);
    report(p);
    xfree(p);
    xfree(p);
    survived("free(p); free(p)");
}

/* 3: p sits in a live thread's cache when the main thread frees it. */
static void *alloc_and_free_48(void) {
    void *p = xmalloc(48);
    xfree(p);
    return p;
}

static void c_double_free_in_other_threads_cache(void) {
    void *p = start_helper(alloc_and_free_48);
    report(p);
    xfree(p);
    release_helper();
    survived("free of an object in another thread's cache");
}

/* 3b: the second free is a new thread's first call, made before that
 * thread has a cache of its own: p sits in the main thread's cache. */
static void *first_call_frees(void *p) {
    xfree(p);
    return NULL;
}

static void c_double_free_first_call_of_a_thread(void) {
    void *p = xmalloc(48);
    xfree(p);
    report(p);
    pthread_t t;
    if (pthread_create(&t, NULL, first_call_frees, p) != 0) exit(2);
    pthread_join(t, NULL);
    survived("double free as a new thread's first call");
}

/* 4: the first copy of p has moved on to the central list's transfer
 * cache with a batch of other frees when p is freed again. */
static void *others[2000];

static void c_double_free_in_transfer_batch(void) {
    void *p = xmalloc(48);
    for (size_t i = 0; i < 2000; i++) others[i] = xmalloc(48);
    report(p);
    xfree(p);
    for (size_t i = 0; i < 2000; i++) xfree(others[i]);
    xfree(p);
    survived("double free after 2000 other frees");
}

/* 5: the first copy of p was flushed back to its span (kept in use by
 * another live object) when p is freed again. */
static void c_double_free_after_flush(void) {
    void *p = xmalloc(48);
    void *keep = xmalloc(48);
    xfree(p);
    flush_thread_cache();
    report(p);
    xfree(p);
    launder(keep);
    survived("double free after a flush");
}

/* 6: free of a slot of p's own span that no allocation has reached. Then,
 * to show what that did, allocations until the slot would come round
 * again: a pointer handed out twice is reported as DUP. */
static void c_free_never_handed_out_same_span(void) {
    char *p = xmalloc(48);
    if (slot48(p) + 20 >= SLOTS48) setup_failed("p is too near the end of its span");
    char *bad = p + 48 * 20;
    report(bad);
    xfree(bad);
    void *got[32];
    int dup = 0;
    for (size_t i = 0; i < 32; i++) {
        got[i] = xmalloc(48);
        for (size_t j = 0; j < i; j++)
            if (got[j] == got[i]) {
                fprintf(stderr, "DUP %p (allocations %zu and %zu)\n", got[i], j, i);
                dup = 1;
            }
    }
    survived(dup ? "free of a never-allocated slot; DUP" : "free of a never-allocated slot");
}

/* 7: free of a never-allocated slot of a span another (live) thread is
 * allocating from. */
static void *alloc_one_48(void) { return xmalloc(48); }

static void c_free_never_handed_out_other_thread_span(void) {
    /* The main thread's cache holds a 48-byte span of its own. */
    void *mine = xmalloc(48);
    char *p = start_helper(alloc_one_48);
    if (slot48(p) + 30 >= SLOTS48) setup_failed("p is too near the end of its span");
    char *bad = p + 48 * 30;
    report(bad);
    xfree(bad);
    release_helper();
    launder(mine);
    survived("free of a never-allocated slot of another thread's span");
}

/* 8a: double free of a slot of a partial span no cache holds: the slot
 * was freed and flushed back to the span. */
static void *objs[400];

static void c_double_free_in_uncached_span(void) {
    for (size_t i = 0; i < 400; i++) objs[i] = xmalloc(48);
    for (size_t i = 200; i < 220; i++) xfree(objs[i]);
    flush_thread_cache();
    report(objs[210]);
    xfree(objs[210]);
    survived("double free in an uncached span");
}

/* 8b: free of a never-used slot of a fresh span no cache holds (3072-byte
 * objects, a class nothing else here uses: p is the span's first slot). */
static void c_free_never_handed_out_uncached_span(void) {
    char *p = xmalloc(3072);
    flush_thread_cache();
    char *bad = p + 3072 * 2;
    report(bad);
    xfree(bad);
    launder(p);
    survived("free of a never-allocated slot of an uncached span");
}

/* 9: a large object freed twice. */
static void c_large_double_free(void) {
    void *p = xmalloc(100000);
    report(p);
    xfree(p);
    xfree(p);
    survived("large double free");
}

/* 10: free of a pointer into a large object. */
static void c_large_interior_free(void) {
    char *p = xmalloc(100000);
    report(p + 8192);
    xfree(p + 8192);
    survived("free of p + 8192 of a large object");
}

/* 11: realloc of a freed object. */
static void c_realloc_of_freed(void) {
    void *p = xmalloc(48), *q = xmalloc(48);
    xfree(p);
    xfree(q);
    report(p);
    void *r = realloc(launder(p), 40);
    fprintf(stderr, "realloc returned %p\n", r);
    survived("realloc of a freed object");
}

/* 12: free_sized(p, 48); free(q); free_sized(p, 48). */
static void c_free_sized_double(void) {
    void *sym = dlsym(RTLD_DEFAULT, "free_sized");
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname || !strstr(info.dli_fname, "goheap")) {
        fprintf(stderr, "NO_FREE_SIZED: %s\n",
                sym ? "free_sized is not goheap's" : "free_sized is not exported");
        exit(4);
    }
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))sym;
    void *p = xmalloc(48), *q = xmalloc(48);
    report(p);
    free_sized(launder(p), 48);
    xfree(q);
    free_sized(launder(p), 48);
    survived("free_sized twice");
}

/* 14, 15: p heads this thread's free list, its first word the link to q;
 * a use-after-free write replaces the link, and the second malloc would
 * hand out whatever it points to. */
static void overwrite_link(void *p, void *link) {
    *(void *volatile *)launder(p) = link;
}

static void c_safe_linking_stack_target(void) {
    _Alignas(16) char buf[64];
    memset(buf, 0, sizeof buf);
    void *p = xmalloc(48), *q = xmalloc(48);
    xfree(q);
    xfree(p);
    report(p);
    overwrite_link(p, launder(buf));
    void *a = xmalloc(48);
    void *b = xmalloc(48);
    if (b == (void *)buf) {
        fprintf(stderr, "GOT_STACK %p (first malloc %p)\n", b, a);
        fflush(stderr);
        exit(3);
    }
    fprintf(stderr, "mallocs returned %p %p\n", a, b);
    survived("corrupted free list link (stack address)");
}

static void c_safe_linking_misaligned(void) {
    void *p = xmalloc(48), *q = xmalloc(48);
    xfree(q);
    xfree(p);
    report(p);
    overwrite_link(p, (void *)((uintptr_t)q + 4));
    void *a = xmalloc(48);
    void *b = xmalloc(48);
    if ((uintptr_t)b == (uintptr_t)q + 4) {
        fprintf(stderr, "GOT_MISALIGNED %p (first malloc %p)\n", b, a);
        fflush(stderr);
        exit(3);
    }
    fprintf(stderr, "mallocs returned %p %p\n", a, b);
    survived("corrupted free list link (misaligned)");
}

/* 16: with GOHEAP_IGNORE_INVALID_FREE=1 a stack pointer's free is
 * ignored: exit 0. */
static void c_ignored_stack_free(void) {
    char buf[64];
    void *p = launder(buf);
    report(p);
    xfree(p);
    xfree(xmalloc(48));
    exit(0);
}

/* ---- the control: a benign workload that must not trip any check ------ */

/* Per thread: each churning thread has its own sequence. */
static __thread uint64_t rng_state;

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rnd_size(void) {
    switch (rnd() % 8) {
    case 0: return rnd() % 8 + 1;
    case 1: return 48;
    case 2: return 3072;
    case 3: return rnd() % 200000 + 1;
    default: return rnd() % 1024 + 1;
    }
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "CHECK FAILED: %s\n", what);
        exit(2);
    }
}

struct block {
    unsigned char *p;
    size_t n;
    unsigned char tag;
};

static void fill(struct block *b) { memset(b->p, b->tag, b->n < 64 ? b->n : 64); }

static void verify(const struct block *b) {
    size_t n = b->n < 64 ? b->n : 64;
    for (size_t i = 0; i < n; i++) check(b->p[i] == b->tag, "block contents kept");
}

#define NBLOCKS 1000

/* Mixed malloc, calloc, realloc, posix_memalign and free on one thread. */
static void churn(unsigned seed) {
    static __thread struct block bs[NBLOCKS];
    rng_state = 88172645463325252ull ^ ((uint64_t)seed * 0x9e3779b97f4a7c15ull);
    for (int op = 0; op < 20000; op++) {
        struct block *b = &bs[rnd() % NBLOCKS];
        if (b->p) {
            verify(b);
            if (rnd() % 4 == 0) {
                size_t n = rnd_size();
                unsigned char *r = realloc(b->p, n);
                check(r != NULL, "realloc");
                b->p = r;
                if (n < b->n) b->n = n;
                verify(b);
                b->n = n;
                fill(b);
            } else {
                free(b->p);
                b->p = NULL;
            }
            continue;
        }
        size_t n = rnd_size();
        switch (rnd() % 4) {
        case 0: {
            b->p = calloc(1, n);
            check(b->p != NULL, "calloc");
            for (size_t i = 0; i < (n < 64 ? n : 64); i++) check(b->p[i] == 0, "calloc zeroes");
            break;
        }
        case 1: {
            void *m = NULL;
            size_t align = (size_t)16 << (rnd() % 9);
            check(posix_memalign(&m, align, n) == 0, "posix_memalign");
            check((uintptr_t)m % align == 0, "posix_memalign alignment");
            b->p = m;
            break;
        }
        default:
            b->p = malloc(n);
            check(b->p != NULL, "malloc");
        }
        b->n = n;
        b->tag = (unsigned char)(seed + op);
        fill(b);
    }
    for (size_t i = 0; i < NBLOCKS; i++) {
        if (bs[i].p) verify(&bs[i]);
        free(bs[i].p);
        bs[i].p = NULL;
    }
}

#define HANDOFF 4000

/* Blocks allocated by the main thread, freed by another thread. */
static void *handoff[HANDOFF];

static void *free_handoff(void *arg) {
    (void)arg;
    for (size_t i = 0; i < HANDOFF; i++) free(handoff[i]);
    return NULL;
}

static void *churn_thread(void *arg) {
    churn((unsigned)(uintptr_t)arg);
    return NULL;
}

/* Each thread frees what the previous one allocated. */
#define RING 4
static void *ring[RING][1000];
static pthread_barrier_t ring_barrier;

static void *ring_thread(void *arg) {
    size_t me = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < 1000; i++) ring[me][i] = malloc(i % 3 == 0 ? 48 : i % 500 + 1);
    pthread_barrier_wait(&ring_barrier);
    size_t prev = (me + RING - 1) % RING;
    for (size_t i = 0; i < 1000; i++) free(ring[prev][i]);
    return NULL;
}

static void c_control(void) {
    churn(1);

    for (size_t i = 0; i < HANDOFF; i++) handoff[i] = xmalloc(i % 2 ? 48 : i % 3000 + 1);
    pthread_t t;
    check(pthread_create(&t, NULL, free_handoff, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);

    pthread_t ts[RING];
    pthread_barrier_init(&ring_barrier, NULL, RING);
    for (size_t i = 0; i < RING; i++)
        check(pthread_create(&ts[i], NULL, ring_thread, (void *)(uintptr_t)i) == 0,
              "pthread_create");
    for (size_t i = 0; i < RING; i++) pthread_join(ts[i], NULL);
    pthread_barrier_destroy(&ring_barrier);

    pthread_t cs[2];
    for (size_t i = 0; i < 2; i++)
        check(pthread_create(&cs[i], NULL, churn_thread, (void *)(uintptr_t)(i + 2)) == 0,
              "pthread_create");
    churn(7);
    for (size_t i = 0; i < 2; i++) pthread_join(cs[i], NULL);

    /* Frees that reach every shared list: 48-byte objects well past a
     * thread list's limit, then a flush and a trim. */
    for (size_t i = 0; i < 2000; i++) others[i] = xmalloc(48);
    for (size_t i = 0; i < 2000; i++) xfree(others[i]);
    (void)try_flush_thread_cache();
    malloc_trim(0);
    churn(9);
    fprintf(stderr, "control ok\n");
    exit(0);
}

struct test {
    const char *name;
    void (*fn)(void);
};

static const struct test tests[] = {
    {"double_free_after_other_free", c_double_free_after_other_free},
    {"double_free_immediate", c_double_free_immediate},
    {"double_free_in_other_threads_cache", c_double_free_in_other_threads_cache},
    {"double_free_first_call_of_a_thread", c_double_free_first_call_of_a_thread},
    {"double_free_in_transfer_batch", c_double_free_in_transfer_batch},
    {"double_free_after_flush", c_double_free_after_flush},
    {"free_never_handed_out_same_span", c_free_never_handed_out_same_span},
    {"free_never_handed_out_other_thread_span", c_free_never_handed_out_other_thread_span},
    {"double_free_in_uncached_span", c_double_free_in_uncached_span},
    {"free_never_handed_out_uncached_span", c_free_never_handed_out_uncached_span},
    {"large_double_free", c_large_double_free},
    {"large_interior_free", c_large_interior_free},
    {"realloc_of_freed", c_realloc_of_freed},
    {"free_sized_double", c_free_sized_double},
    {"safe_linking_stack_target", c_safe_linking_stack_target},
    {"safe_linking_misaligned", c_safe_linking_misaligned},
    {"ignored_stack_free", c_ignored_stack_free},
    {"control", c_control},
};

int main(int argc, char **argv) {
    alarm(20);
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strcmp(argv[1], tests[i].name) == 0) {
            tests[i].fn();
            return 0;
        }
    fprintf(stderr, "no case %s\n", argv[1]);
    return 2;
}
