/* glibc's <malloc.h> extras under goheap (LD_PRELOAD): mallinfo, mallinfo2,
 * malloc_stats, malloc_info, mallopt, malloc_trim. Built by
 * tests/malloc_h.rs without -lgoheap; `malloc_h CASE` runs one case, exit
 * 0 = pass.
 *
 * Every case ends by asking glibc's own allocator (its mallinfo2, found in
 * libc.so.6 itself) whether it was ever used: under a preloaded goheap
 * every malloc of the process, stdio's and the dynamic loader's included,
 * is goheap's, so glibc's main arena must still be empty (arena 0). Then it
 * calls glibc's malloc directly once, to show that the probe does see
 * glibc allocating. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goheap.h"

/* mallinfo is deprecated in glibc's header (it wraps); it is tested here. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#define SMALL 20000 /* served by the 20480-byte class */
#define NSMALL 50
#define LARGE (8u << 20)

static void (*memstats)(struct goheap_memstats *);

/* goheap's own statistics, from the preloaded library. */
static void load_goheap(void) {
    memstats = (void (*)(struct goheap_memstats *))dlsym(RTLD_DEFAULT, "goheap_memstats");
    CHECK(memstats != NULL); /* run under LD_PRELOAD=libgoheap.so */
}

/* glibc's allocator, looked up in libc.so.6 itself (not the process's
 * scope, where goheap's names come first). */
static void *libc_handle(void) {
    void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    CHECK(h != NULL);
    return h;
}

static void glibc_untouched(void) {
    void *h = libc_handle();
    struct mallinfo2 (*glibc_mallinfo2)(void) = (struct mallinfo2(*)(void))dlsym(h, "mallinfo2");
    void *(*glibc_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "malloc");
    void (*glibc_free)(void *) = (void (*)(void *))dlsym(h, "free");
    CHECK(glibc_mallinfo2 && glibc_malloc && glibc_free);
    CHECK(glibc_mallinfo2 != mallinfo2 && glibc_malloc != malloc);
    struct mallinfo2 g = glibc_mallinfo2();
    if (g.arena != 0 || g.uordblks != 0 || g.hblks != 0) {
        fprintf(stderr, "glibc's allocator was used: arena %zu uordblks %zu hblks %zu\n", g.arena, g.uordblks,
                g.hblks);
        exit(1);
    }
    /* The probe is live: glibc's own malloc shows up in it. */
    void *p = glibc_malloc(100);
    CHECK(p != NULL);
    g = glibc_mallinfo2();
    CHECK(g.arena > 0 && g.uordblks >= 100);
    glibc_free(p);
    /* On stderr: malloc_info's document is alone on stdout. */
    fputs("glibc untouched\n", stderr);
}

/* mallinfo2 against goheap_memstats, read around it (nothing runs between:
 * one thread, and neither call allocates). */
static struct mallinfo2 consistent_mallinfo2(void) {
    struct goheap_memstats a, b;
    memstats(&a);
    struct mallinfo2 m = mallinfo2();
    memstats(&b);
    CHECK(a.mallocs == b.mallocs && a.frees == b.frees && a.heap_sys == b.heap_sys);
    CHECK(m.arena == m.uordblks + m.fordblks);
    CHECK(m.keepcost <= m.fordblks);
    CHECK(m.uordblks + m.hblkhd == a.heap_alloc);
    CHECK(m.arena + m.hblkhd == a.heap_sys - a.heap_released);
    CHECK(m.ordblks == 0 && m.smblks == 0 && m.usmblks == 0 && m.fsmblks == 0);
    /* mallinfo is the same while everything fits in an int. */
    struct mallinfo i = mallinfo();
    CHECK((size_t)i.arena == m.arena && (size_t)i.uordblks == m.uordblks && (size_t)i.fordblks == m.fordblks &&
          (size_t)i.hblks == m.hblks && (size_t)i.hblkhd == m.hblkhd && (size_t)i.keepcost == m.keepcost);
    return m;
}

static void case_mallinfo(void) {
    struct mallinfo2 m0 = consistent_mallinfo2();
    char *small[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        small[i] = malloc(SMALL);
        CHECK(small[i] != NULL);
        memset(small[i], i, SMALL);
    }
    struct mallinfo2 m1 = consistent_mallinfo2();
    CHECK(m1.uordblks >= m0.uordblks + (size_t)NSMALL * SMALL);
    CHECK(m1.arena >= m1.uordblks);
    for (int i = 0; i < NSMALL; i++) free(small[i]);
    struct mallinfo2 m2 = consistent_mallinfo2();
    CHECK(m2.uordblks + (size_t)NSMALL * SMALL <= m1.uordblks);

    char *large = malloc(LARGE);
    CHECK(large != NULL);
    memset(large, 1, LARGE);
    struct mallinfo2 m3 = consistent_mallinfo2();
    CHECK(m3.hblks == m2.hblks + 1);
    CHECK(m3.hblkhd >= m2.hblkhd + LARGE);
    CHECK(m3.uordblks < m2.uordblks + LARGE); /* not counted as small */
    free(large);
    struct mallinfo2 m4 = consistent_mallinfo2();
    CHECK(m4.hblks == m2.hblks && m4.hblkhd == m2.hblkhd);
    /* The freed large object's pages are free and not yet released. */
    CHECK(m4.fordblks >= LARGE || m4.keepcost >= LARGE || m4.arena < m3.arena + LARGE);
    puts("mallinfo ok");
}

static void case_malloc_stats(void) {
    fflush(stdout);
    malloc_stats();
    puts("malloc_stats ok");
}

static void case_malloc_info(void) {
    char *small[NSMALL];
    for (int i = 0; i < NSMALL; i++) small[i] = malloc(SMALL);
    char *large = malloc(LARGE);
    /* Into a memory stream first: its buffer comes from (goheap's) malloc
     * while malloc_info runs. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    CHECK(malloc_info(0, f) == 0);
    CHECK(fclose(f) == 0);
    CHECK(text != NULL && len > 100);
    CHECK(strncmp(text, "<malloc version=\"1\">\n", 21) == 0);
    CHECK(strstr(text, "</malloc>\n") == text + len - 10);
    free(text);
    /* Options must be 0. */
    errno = 0;
    CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL);
    /* The document for the test to parse: all of it on stdout. */
    fflush(stdout);
    CHECK(malloc_info(0, stdout) == 0);
    fflush(stdout);
    for (int i = 0; i < NSMALL; i++) free(small[i]);
    free(large);
}

static void case_mallopt(void) {
    CHECK(mallopt(M_MXFAST, 0) == 1);
    CHECK(mallopt(M_MXFAST, 64) == 1);
    CHECK(mallopt(M_MXFAST, 160) == 1);
    CHECK(mallopt(M_MXFAST, 161) == 0); /* above glibc's MAX_FAST_SIZE */
    CHECK(mallopt(M_MXFAST, -1) == 0);
    CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 1);
    CHECK(mallopt(M_TOP_PAD, 0) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, (32 << 20) + 1) == 0); /* glibc's maximum */
    CHECK(mallopt(M_MMAP_THRESHOLD, -1) == 0);
    CHECK(mallopt(M_MMAP_MAX, 0) == 1);
    CHECK(mallopt(M_CHECK_ACTION, 3) == 1);
    CHECK(mallopt(M_PERTURB, 0xaa) == 1);
    CHECK(mallopt(M_PERTURB, 0) == 1);
    CHECK(mallopt(M_ARENA_TEST, 8) == 1);
    CHECK(mallopt(M_ARENA_MAX, 1) == 1);
    CHECK(mallopt(M_ARENA_MAX, 0) == 1);
    /* Not a glibc parameter. */
    CHECK(mallopt(2, 0) == 0);
    CHECK(mallopt(-9, 0) == 0);
    CHECK(mallopt(INT_MIN, 0) == 0);
    /* Accepted and ignored: allocation goes on as before. */
    void *p = malloc(1 << 20);
    CHECK(p != NULL);
    free(p);
    puts("mallopt ok");
}

static void case_malloc_trim(void) {
    char *small[NSMALL];
    for (int i = 0; i < NSMALL; i++) small[i] = malloc(SMALL);
    for (int i = 0; i < NSMALL; i++) free(small[i]);
    int r = malloc_trim(0);
    CHECK(r == 0 || r == 1);
    puts("malloc_trim ok");
}

/* operator new called from C, where libstdc++ is not loaded: it cannot
 * throw, so it reports and aborts. */
static void case_new_without_libstdcxx(void) {
    void *(*new_)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "_Znwm");
    CHECK(new_ != NULL);
    void *p = new_(64);
    CHECK(p != NULL);
    free(p);
    CHECK(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") == NULL);
    fflush(stdout);
    p = new_((size_t)1 << 62);
    printf("survived %p\n", p);
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    load_goheap();
    if (strcmp(c, "mallinfo") == 0)
        case_mallinfo();
    else if (strcmp(c, "malloc_stats") == 0)
        case_malloc_stats();
    else if (strcmp(c, "malloc_info") == 0)
        case_malloc_info();
    else if (strcmp(c, "mallopt") == 0)
        case_mallopt();
    else if (strcmp(c, "malloc_trim") == 0)
        case_malloc_trim();
    else if (strcmp(c, "new_from_c") == 0)
        case_new_without_libstdcxx();
    else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    glibc_untouched();
    return 0;
}
