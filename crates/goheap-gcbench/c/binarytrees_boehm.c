/* binary-trees for `goheap gcbench` on the Boehm-Demers-Weiser collector
 * (Debian's libgc-dev): nodes from GC_MALLOC, never freed by hand, one
 * thread, the collector at its defaults. Prints the Benchmarks Game's
 * output; with --stats, one line on stderr: the number of collections
 * (GC_get_gc_no) and the longest of them, timed from the collector's
 * start-of-collection event to its end-of-collection event.
 *
 *     cc -O2 -o binarytrees-boehm binarytrees_boehm.c -lgc
 *     ./binarytrees-boehm [N] [--stats]
 */
#include <gc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct node {
    struct node *left, *right;
};

static struct node *tree(int depth) {
    /* GC_MALLOC returns zeroed memory: a leaf's children are null. */
    struct node *n = GC_MALLOC(sizeof *n);
    if (n == NULL) {
        fputs("binarytrees-boehm: out of memory\n", stderr);
        exit(1);
    }
    if (depth > 0) {
        n->left = tree(depth - 1);
        n->right = tree(depth - 1);
    }
    return n;
}

static uint32_t count(const struct node *n) {
    if (n->left == NULL)
        return 1;
    return 1 + count(n->left) + count(n->right);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t gc_started, longest_ns, total_ns;

/* Called by the collector; allocates nothing. */
static void on_event(GC_EventType e) {
    if (e == GC_EVENT_START) {
        gc_started = now_ns();
    } else if (e == GC_EVENT_END && gc_started != 0) {
        uint64_t took = now_ns() - gc_started;
        total_ns += took;
        if (took > longest_ns)
            longest_ns = took;
        gc_started = 0;
    }
}

int main(int argc, char **argv) {
    int depth = 10, stats = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stats") == 0) {
            stats = 1;
            continue;
        }
        char *end;
        long d = strtol(argv[i], &end, 10);
        if (*argv[i] == '\0' || *end != '\0' || d < 0 || d > 30) {
            fputs("usage: binarytrees-boehm [N] [--stats]   (N: the depth, at most 30, default 10)\n",
                  stderr);
            return 2;
        }
        depth = (int)d;
    }
    GC_INIT();
    GC_set_on_collection_event(on_event);

    const int min_depth = 4;
    int max_depth = depth < min_depth + 2 ? min_depth + 2 : depth;
    int stretch = max_depth + 1;
    printf("stretch tree of depth %d\t check: %u\n", stretch, (unsigned)count(tree(stretch)));
    struct node *long_lived = tree(max_depth);
    for (int d = min_depth; d <= max_depth; d += 2) {
        uint32_t iterations = (uint32_t)1 << (max_depth - d + min_depth);
        uint32_t sum = 0;
        for (uint32_t i = 0; i < iterations; i++)
            sum += count(tree(d));
        printf("%u\t trees of depth %d\t check: %u\n", (unsigned)iterations, d, (unsigned)sum);
    }
    printf("long lived tree of depth %d\t check: %u\n", max_depth, (unsigned)count(long_lived));

    if (stats) {
        fprintf(stderr, "gc cycles: %lu  longest pause: %.3f ms  total pause: %.3f ms\n",
                (unsigned long)GC_get_gc_no(), longest_ns / 1e6, total_ns / 1e6);
    }
    return 0;
}
