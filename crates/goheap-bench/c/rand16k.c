/* rand16k: random sizes from 8 bytes to 16 KiB in several threads, in the
 * manner of glibc's bench-malloc-thread and rptest (mimalloc-bench).
 * THREADS threads each keep a working set of WS blocks, sizes log-uniform
 * in [8, 16384] (every power of two equally likely: mostly small blocks,
 * most bytes in large ones), and replace random ones OPS times per round.
 * At the end of each round the threads pass XCHG blocks each to the next
 * thread (at a barrier, so the same blocks move in every run): those are
 * freed later by a thread that did not allocate them.
 *
 * Each block carries a tag (holding its size) in its first 8 bytes and,
 * from 16 bytes up, the tag's complement in the next 8 and a byte of the
 * tag in its last; the checksum sums a hash of what each free reads back,
 * so it does not depend on the scheduling. */
#include "common.h"

#include <pthread.h>

#define THREADS 4
#define WS 1024
#define XCHG 128
#define OPS 25000
#define MIN_SIZE 8
#define MAX_SIZE 16384

typedef struct worker {
    int id;
    uint64_t rng;
    uint64_t sum;
    uint64_t *slot[WS];
} worker;

static worker *workers[THREADS];
static uint64_t *xchg[THREADS][XCHG];
static pthread_barrier_t barrier;
static long rounds;

/* tag: random high bits, the size in the low 16 */
static uint64_t *new_block(uint64_t *rng) {
    size_t size = (size_t)rng_log(rng, MIN_SIZE, MAX_SIZE);
    uint64_t tag = (rng_next(rng) << 16) | size;
    uint64_t *b = check(malloc(size), "rand16k");
    b[0] = tag;
    if (size >= 16) {
        b[1] = ~tag;
        ((unsigned char *)b)[size - 1] = (unsigned char)(tag >> 16);
    }
    return b;
}

static uint64_t free_block(uint64_t *b) {
    uint64_t tag = b[0];
    size_t size = (size_t)(tag & 0xffff);
    uint64_t v = tag;
    if (size >= 16) v += b[1] + ((unsigned char *)b)[size - 1];
    free(b);
    return hash64(v);
}

static void *run(void *arg) {
    worker *w = arg;
    int prev = (w->id + THREADS - 1) % THREADS;
    for (int k = 0; k < WS; k++) w->slot[k] = new_block(&w->rng);
    for (long round = 0; round < rounds; round++) {
        for (int i = 0; i < OPS; i++) {
            size_t k = (size_t)(rng_next(&w->rng) % WS);
            w->sum += free_block(w->slot[k]);
            w->slot[k] = new_block(&w->rng);
        }
        /* pass XCHG consecutive slots from a random place to the next
         * thread, and take the previous thread's */
        size_t base = (size_t)(rng_next(&w->rng) % (WS - XCHG));
        for (int i = 0; i < XCHG; i++) xchg[w->id][i] = w->slot[base + (size_t)i];
        pthread_barrier_wait(&barrier);
        for (int i = 0; i < XCHG; i++) w->slot[base + (size_t)i] = xchg[prev][i];
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    rounds = scaled(80, scale);
    double t0 = now_secs();

    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        worker *w = check(calloc(1, sizeof(worker)), "worker");
        w->id = i;
        w->rng = 0x16c00000 + (uint64_t)i;
        workers[i] = w;
    }
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, run, workers[i]);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);

    uint64_t h = 0;
    for (int i = 0; i < THREADS; i++) {
        worker *w = workers[i];
        for (int k = 0; k < WS; k++) w->sum += free_block(w->slot[k]);
        h += w->sum;
        free(w);
    }
    pthread_barrier_destroy(&barrier);
    report("rand16k", scale, h, now_secs() - t0);
    return 0;
}
