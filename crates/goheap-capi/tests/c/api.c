/* The C API test suite: every entry point of libgoheap with edge cases.
 * Built by tests/c_api.rs with the system cc and linked with -lgoheap (or
 * libgoheap.a); `api NAME` runs one case, exit 0 = pass. Cases that must
 * abort print the pointer they misuse on stdout first. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "goheap.h"

/* Not declared by glibc any more. */
void cfree(void *p);
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                                      \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define ALIGNED(p, a) (((uintptr_t)(p) & ((a)-1)) == 0)

/* Keeps the compiler from reasoning about the pointer (and warning about
 * freeing the stack). */
static void *__attribute__((noinline)) launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void fill(void *p, size_t n, unsigned char v) { memset(p, v, n); }

static int all(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

static size_t min_align(size_t n) { return n <= 8 ? 8 : 16; }

/* Object sizes of every size class, from the statistics. */
static size_t class_sizes[GOHEAP_NUM_SIZE_CLASSES];
static void load_classes(void) {
    static struct goheap_memstats m;
    goheap_memstats(&m);
    for (int c = 0; c < GOHEAP_NUM_SIZE_CLASSES; c++) class_sizes[c] = m.by_size[c].size;
}

/* Allocation before main: the allocator must work from constructors. */
static void *early;
__attribute__((constructor(101))) static void before_main(void) {
    early = malloc(100);
    if (early) fill(early, 100, 0x5a);
}

static int t_basic(void) {
    CHECK(early != NULL && goheap_owns(early) && all(early, 100, 0x5a));
    free(early);

    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    CHECK(goheap_owns(a) && goheap_owns(b));
    free(a);
    free(b);
    free(NULL);
    cfree(NULL);
    CHECK(malloc_usable_size(NULL) == 0);

    /* Every size 1..70000 (in steps around 32 KiB too). */
    for (size_t n = 1; n <= 70000; n += (n < 4096 ? 1 : 61)) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        CHECK(ALIGNED(p, min_align(n)));
        CHECK(goheap_owns(p));
        CHECK(malloc_usable_size(p) >= n);
        p[0] = 1;
        p[n - 1] = 2;
        free(p);
    }

    /* The __libc_ names and cfree. */
    void *p = __libc_malloc(40);
    CHECK(p && ALIGNED(p, 16) && goheap_owns(p));
    p = __libc_realloc(p, 4000);
    CHECK(p && goheap_owns(p));
    __libc_free(p);
    p = __libc_calloc(10, 10);
    CHECK(p && all(p, 100, 0));
    cfree(p);
    p = __libc_memalign(256, 10);
    CHECK(p && ALIGNED(p, 256));
    free(p);

    /* The goheap_ names. */
    p = goheap_malloc(24);
    CHECK(p && ALIGNED(p, 16) && goheap_usable_size(p) >= 24);
    p = goheap_realloc(p, 100000);
    CHECK(p && goheap_owns(p));
    goheap_free(p);
    p = goheap_calloc(3, 1000);
    CHECK(p && all(p, 3000, 0));
    goheap_free(p);
    p = goheap_aligned_alloc(4096, 5);
    CHECK(p && ALIGNED(p, 4096));
    goheap_free(p);
    return 0;
}

/* Sizes around every size-class boundary and around 32 KiB: each block is
 * aligned, holds its size, and no two live blocks overlap. */
static int t_classes(void) {
    load_classes();
    CHECK(class_sizes[1] == 8 && class_sizes[GOHEAP_NUM_SIZE_CLASSES - 1] == 32768);
    enum { MAXN = GOHEAP_NUM_SIZE_CLASSES * 3 + 64 };
    static unsigned char *ps[MAXN];
    static size_t ns[MAXN];
    int k = 0;
    for (int c = 1; c < GOHEAP_NUM_SIZE_CLASSES; c++)
        for (int d = -1; d <= 1; d++) ns[k++] = class_sizes[c] + d;
    for (size_t n = 32768 - 16; n <= 32768 + 16; n++) ns[k++] = n;
    size_t big[] = {40960, 65536, 65537, 131072 - 1, 1 << 20, (1 << 20) + 1, 3 << 20};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) ns[k++] = big[i];
    CHECK(k <= MAXN);
    for (int i = 0; i < k; i++) {
        size_t n = ns[i];
        ps[i] = malloc(n);
        CHECK(ps[i] != NULL);
        CHECK(ALIGNED(ps[i], min_align(n)));
        size_t u = malloc_usable_size(ps[i]);
        CHECK(u >= n);
        if (n <= 32768) {
            /* A request of exactly a class size that is a multiple of 16
             * gets exactly that class. */
            for (int c = 1; c < GOHEAP_NUM_SIZE_CLASSES; c++)
                if (class_sizes[c] == n && n % 16 == 0) CHECK(u == n);
            CHECK(u <= 32768);
        }
        fill(ps[i], n, (unsigned char)i);
    }
    for (int i = 0; i < k; i++) {
        CHECK(all(ps[i], ns[i], (unsigned char)i));
        free(ps[i]);
    }
    return 0;
}

static int t_align(void) {
    size_t sizes[] = {0, 1, 7, 8, 9, 16, 100, 4095, 4096, 8191, 8192, 8193, 32768, 32769, 100000, 1 << 20};
    int ns = sizeof sizes / sizeof sizes[0];
    for (size_t a = 1; a <= (1 << 20); a <<= 1) {
        for (int i = 0; i < ns; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            errno = 4242;
            int r = posix_memalign(&p, a, n);
            CHECK(errno == 4242);
            if (a < sizeof(void *)) {
                CHECK(r == EINVAL);
            } else {
                CHECK(r == 0 && p && ALIGNED(p, a) && ALIGNED(p, min_align(n)));
                CHECK(malloc_usable_size(p) >= n);
                fill(p, n, 0xee);
                free(p);
            }
            p = aligned_alloc(a, n);
            CHECK(p && ALIGNED(p, a) && malloc_usable_size(p) >= n);
            fill(p, n, 0xdd);
            free(p);
            p = memalign(a, n);
            CHECK(p && ALIGNED(p, a));
            fill(p, n, 0xcc);
            /* realloc keeps the contents (alignment is malloc's after). */
            p = realloc(p, n + 100);
            CHECK(p && all(p, n, 0xcc) && ALIGNED(p, 16));
            free(p);
        }
    }
    /* Bad alignments. */
    void *p = (void *)1;
    errno = 4242;
    CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 24, 10) == EINVAL);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    CHECK(posix_memalign(&p, (size_t)1 << 63 | 8, 10) == EINVAL);
    CHECK(errno == 4242);
    errno = 0;
    CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(48, 10) == NULL && errno == EINVAL);
    /* memalign rounds a non-power of two up. */
    p = memalign(24, 10);
    CHECK(p && ALIGNED(p, 32));
    free(p);
    p = memalign(0, 10);
    CHECK(p);
    free(p);
    errno = 0;
    CHECK(memalign(SIZE_MAX, 10) == NULL && errno == EINVAL);
    /* Page-aligned forms. */
    long page = sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p && ALIGNED(p, page));
    free(p);
    p = valloc(0);
    CHECK(p && ALIGNED(p, page));
    free(p);
    p = pvalloc(0);
    CHECK(p && ALIGNED(p, page) && malloc_usable_size(p) >= (size_t)page);
    free(p);
    p = pvalloc(page + 1);
    CHECK(p && ALIGNED(p, page) && malloc_usable_size(p) >= 2 * (size_t)page);
    fill(p, 2 * page, 1);
    free(p);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
    return 0;
}

static int t_huge(void) {
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)PTRDIFF_MAX, GOHEAP_MAX_ALLOC + 1,
                     (size_t)1 << 47, (size_t)1 << 46, (size_t)1 << 44};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t n = huge[i];
        errno = 0;
        CHECK(malloc(n) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(calloc(1, n) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(aligned_alloc(64, n) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(memalign(4096, n) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(valloc(n) == NULL && errno == ENOMEM);
        void *q = (void *)1;
        CHECK(posix_memalign(&q, 16, n) == ENOMEM && q == (void *)1);
        errno = 0;
        CHECK(goheap_malloc(n) == NULL && errno == ENOMEM);
        /* A failed realloc leaves the block alone. */
        unsigned char *p = malloc(100);
        fill(p, 100, 7);
        errno = 0;
        CHECK(realloc(p, n) == NULL && errno == ENOMEM);
        CHECK(all(p, 100, 7));
        free(p);
    }
    errno = 0;
    CHECK(aligned_alloc((size_t)1 << 62, 8) == NULL && errno == ENOMEM);
    /* The heap still works. */
    void *p = malloc(1 << 20);
    CHECK(p);
    free(p);
    return 0;
}

static int t_calloc(void) {
    /* Overflow. */
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2 + 1, 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc((size_t)1 << 32, (size_t)1 << 32) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(SIZE_MAX, SIZE_MAX) == NULL && errno == ENOMEM);
    void *p = calloc(0, 0);
    CHECK(p);
    free(p);
    p = calloc(0, SIZE_MAX);
    CHECK(p);
    free(p);
    /* Reused memory comes back zeroed, small and large. */
    size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 32768, 32769, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int round = 0; round < 3; round++) {
            void *ps[64];
            for (int j = 0; j < 64; j++) {
                ps[j] = malloc(n);
                CHECK(ps[j]);
                fill(ps[j], n, 0xff);
            }
            for (int j = 0; j < 64; j++) free(ps[j]);
            for (int j = 0; j < 64; j++) {
                ps[j] = calloc(1, n);
                CHECK(ps[j] && all(ps[j], n, 0) && ALIGNED(ps[j], min_align(n)));
                fill(ps[j], n, 0xff);
            }
            for (int j = 0; j < 64; j++) free(ps[j]);
            for (int j = 0; j < 64; j++) {
                ps[j] = calloc(n, 1);
                CHECK(ps[j] && all(ps[j], n, 0));
            }
            for (int j = 0; j < 64; j++) free(ps[j]);
        }
    }
    return 0;
}

static int t_realloc(void) {
    /* realloc(NULL, n) is malloc. */
    unsigned char *p = realloc(NULL, 10);
    CHECK(p && goheap_owns(p));
    /* Grow from 10 bytes to 4 MiB, then shrink, keeping the contents. */
    size_t n = 10;
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7);
    while (n < (4 << 20)) {
        size_t m = n * 3 / 2 + 1;
        p = realloc(p, m);
        CHECK(p && ALIGNED(p, 16) && malloc_usable_size(p) >= m);
        for (size_t i = 0; i < n; i++) CHECK(p[i] == (unsigned char)(i * 7));
        for (size_t i = n; i < m; i++) p[i] = (unsigned char)(i * 7);
        n = m;
    }
    while (n > 1) {
        n = n / 3;
        if (n == 0) n = 1;
        p = realloc(p, n);
        CHECK(p && malloc_usable_size(p) >= n);
        for (size_t i = 0; i < n; i++) CHECK(p[i] == (unsigned char)(i * 7));
    }
    /* realloc(p, 0) frees p and returns NULL. */
    struct goheap_memstats before, after;
    goheap_memstats(&before);
    errno = 0;
    CHECK(realloc(p, 0) == NULL);
    goheap_memstats(&after);
    CHECK(after.frees == before.frees + 1);
    /* reallocarray. */
    p = reallocarray(NULL, 10, 10);
    CHECK(p);
    fill(p, 100, 3);
    p = reallocarray(p, 1000, 10);
    CHECK(p && all(p, 100, 3));
    errno = 0;
    CHECK(reallocarray(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    CHECK(all(p, 100, 3));
    free(p);
    /* Same-class realloc stays in place. */
    p = malloc(100);
    CHECK(realloc(p, 110) == p);
    free(p);
    return 0;
}

/* Many threads, each freeing the blocks the previous one allocated. */
enum { NTHREADS = 8, ROUNDS = 40, PER_ROUND = 500 };
static pthread_barrier_t barrier;
static unsigned char *slots[NTHREADS][PER_ROUND];
static size_t slot_sizes[NTHREADS][PER_ROUND];

static size_t rand_size(unsigned *seed) {
    unsigned r = rand_r(seed);
    switch (r % 16) {
    case 0: return 2 + r % 100000; /* some large */
    case 1: case 2: return 2 + r % 32768;
    default: return 2 + r % 512;
    }
}

static void *thread_main(void *arg) {
    int me = (int)(intptr_t)arg;
    unsigned seed = (unsigned)me * 7919u + 1;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < PER_ROUND; i++) {
            size_t n = rand_size(&seed);
            unsigned char *p = (i % 3 == 0) ? calloc(1, n) : malloc(n);
            CHECK(p && ALIGNED(p, min_align(n)));
            p[0] = (unsigned char)me;
            p[n - 1] = (unsigned char)i;
            slots[me][i] = p;
            slot_sizes[me][i] = n;
        }
        pthread_barrier_wait(&barrier);
        int prev = (me + NTHREADS - 1) % NTHREADS;
        for (int i = 0; i < PER_ROUND; i++) {
            unsigned char *p = slots[prev][i];
            size_t n = slot_sizes[prev][i];
            CHECK(p[0] == (unsigned char)prev && p[n - 1] == (unsigned char)i);
            if (i % 5 == 0) {
                p = realloc(p, n + 1000);
                CHECK(p && p[0] == (unsigned char)prev);
            }
            free(p);
        }
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static int t_threads(void) {
    struct goheap_memstats before, after;
    goheap_memstats(&before);
    pthread_t th[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    goheap_memstats(&after);
    uint64_t n = (uint64_t)NTHREADS * ROUNDS * PER_ROUND;
    CHECK(after.mallocs - before.mallocs >= n);
    /* Every block was freed: live objects are back where they were (up to
     * what thread start-up and this thread allocate). */
    CHECK(after.heap_objects <= before.heap_objects + 64);
    CHECK(after.heap_alloc <= after.heap_inuse && after.heap_inuse <= after.heap_sys);
    return 0;
}

/* fork from a multithreaded parent: the child must find every lock free. */
static volatile int stop_churn;
static void *churn(void *arg) {
    unsigned seed = (unsigned)(intptr_t)arg;
    void *keep[64] = {0};
    while (!stop_churn) {
        int i = rand_r(&seed) % 64;
        free(keep[i]);
        keep[i] = malloc(rand_size(&seed));
        CHECK(keep[i]);
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) free(malloc(100 + i));
    return NULL;
}

static int t_fork(void) {
    enum { CHURNERS = 4, FORKS = 30 };
    pthread_t th[CHURNERS];
    for (int i = 0; i < CHURNERS; i++) CHECK(pthread_create(&th[i], NULL, churn, (void *)(intptr_t)(i + 1)) == 0);
    for (int f = 0; f < FORKS; f++) {
        void *before = malloc(1000);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(20); /* a deadlock kills the child with SIGALRM */
            free(before);
            void *ps[2000];
            for (int i = 0; i < 2000; i++) {
                ps[i] = malloc((size_t)(i * 37 % 70000) + 1);
                if (!ps[i]) _exit(3);
            }
            for (int i = 0; i < 2000; i++) free(ps[i]);
            pthread_t t;
            if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(4);
            pthread_join(t, NULL);
            goheap_flush_thread_cache();
            exit(0);
        }
        free(before);
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "child %d: status %#x\n", f, st);
            return 1;
        }
    }
    stop_churn = 1;
    for (int i = 0; i < CHURNERS; i++) pthread_join(th[i], NULL);
    /* The parent still allocates after its forks. */
    free(malloc(12345));
    return 0;
}

static int t_stats(void) {
    load_classes();
    struct goheap_memstats a, b;
    goheap_memstats(&a);
    CHECK(a.mallocs >= a.frees && a.mallocs > 0);
    CHECK(a.heap_inuse <= a.heap_sys && a.heap_idle == a.heap_sys - a.heap_inuse);
    CHECK(a.sys >= a.heap_sys);
    CHECK(a.alloc == a.heap_alloc);
    int c48 = 0;
    for (int c = 1; c < GOHEAP_NUM_SIZE_CLASSES; c++)
        if (class_sizes[c] == 48) c48 = c;
    CHECK(c48 > 0);
    void *ps[100];
    for (int i = 0; i < 100; i++) ps[i] = malloc(48);
    goheap_memstats(&b);
    CHECK(b.by_size[c48].mallocs >= a.by_size[c48].mallocs + 100);
    CHECK(b.mallocs >= a.mallocs + 100);
    CHECK(b.heap_alloc >= a.heap_alloc + 4800);
    for (int i = 0; i < 100; i++) free(ps[i]);
    goheap_memstats(&a);
    CHECK(a.by_size[c48].frees >= b.by_size[c48].frees + 100);
    goheap_memstats(NULL);
    goheap_print_stats();
    return 0;
}

static int t_trim(void) {
    void *ps[4000];
    for (int i = 0; i < 4000; i++) ps[i] = malloc(200);
    for (int i = 0; i < 4000; i++) free(ps[i]);
    CHECK(malloc_trim(0) == 1);
    CHECK(malloc_trim(0) == 0);
    goheap_flush_thread_cache();
    free(malloc(10));
    return 0;
}

/* ---- misuse: these must abort (or, with the option, survive) ---------- */

static int t_free_stack(void) {
    char buf[64];
    void *p = launder(buf);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    printf("survived\n");
    return 0;
}

static int t_free_static(void) {
    static char data[64];
    void *p = launder(data);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    printf("survived\n");
    return 0;
}

static int t_free_interior(void) {
    char *p = malloc(64);
    void *q = launder(p + 16);
    printf("%p\n", q);
    fflush(stdout);
    free(q);
    printf("survived\n");
    return 0;
}

static int t_double_free(void) {
    void *p = malloc(64);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    free(launder(p));
    printf("survived\n");
    return 0;
}

/* A double free that is not the thread's last free: caught at the flush. */
static int t_double_free_later(void) {
    void *p = malloc(64), *q = malloc(64);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    free(q);
    free(launder(p));
    malloc_trim(0);
    printf("survived\n");
    return 0;
}

static int t_double_free_large(void) {
    void *p = malloc(1 << 20);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    free(launder(p));
    printf("survived\n");
    return 0;
}

static int t_realloc_foreign(void) {
    char buf[64];
    void *p = launder(buf);
    printf("%p\n", p);
    fflush(stdout);
    p = realloc(p, 100);
    printf("survived\n");
    return 0;
}

static int t_usable_foreign(void) {
    char buf[64];
    void *p = launder(buf);
    printf("%p\n", p);
    fflush(stdout);
    size_t n = malloc_usable_size(p);
    printf("survived %zu\n", n);
    return 0;
}

/* With GOHEAP_IGNORE_INVALID_FREE=1: foreign frees are ignored, the heap
 * keeps working. */
static int t_ignored_frees(void) {
    char buf[64];
    static char data[64];
    void *p = launder(buf);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    free(launder(data));
    free(launder((void *)0x1000));
    CHECK(malloc_usable_size(launder(buf)) == 0);
    void *q = malloc(100);
    CHECK(q && goheap_owns(q));
    free(q);
    printf("survived\n");
    return 0;
}

struct test {
    const char *name;
    int (*fn)(void);
};
static const struct test tests[] = {
    {"basic", t_basic},
    {"classes", t_classes},
    {"align", t_align},
    {"huge", t_huge},
    {"calloc", t_calloc},
    {"realloc", t_realloc},
    {"threads", t_threads},
    {"fork", t_fork},
    {"stats", t_stats},
    {"trim", t_trim},
    {"free_stack", t_free_stack},
    {"free_static", t_free_static},
    {"free_interior", t_free_interior},
    {"double_free", t_double_free},
    {"double_free_later", t_double_free_later},
    {"double_free_large", t_double_free_large},
    {"realloc_foreign", t_realloc_foreign},
    {"usable_foreign", t_usable_foreign},
    {"ignored_frees", t_ignored_frees},
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TEST\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strcmp(argv[1], tests[i].name) == 0) return tests[i].fn();
    fprintf(stderr, "no test %s\n", argv[1]);
    return 2;
}
