/* larson: a server in the manner of Larson and Krishnan's benchmark
 * (mimalloc-bench's larsonN). LINEAGES threads run at once, each owning an
 * array of SLOTS blocks of 8-1000 bytes (uniform). A thread replaces
 * random blocks OPS times (free the old one, which it usually did not
 * allocate; allocate and fill a new one), then starts its successor,
 * hands it the array and exits: every generation frees objects a thread
 * that has since exited allocated, and thread caches are created and torn
 * down GENERATIONS times per lineage.
 *
 * The work of each lineage depends only on its own seed, so the checksum
 * (a sum over lineages) is the same whatever the scheduling.
 *
 * larson-sized.cc compiles this file as C++ with the blocks allocated by
 * `operator new` and freed by the sized `operator delete(p, size)`
 * (mimalloc-bench's larson-sized): the free is told the size. */
#include "common.h"

#ifndef LARSON_NAME
#define LARSON_NAME "larson"
#define LARSON_ALLOC(size) malloc(size)
#define LARSON_FREE(p, size) free(p)
#endif

#include <pthread.h>

#define LINEAGES 4
#define SLOTS 1000
#define OPS 5000
#define MIN_SIZE 8
#define MAX_SIZE 1000

typedef struct block {
    uint64_t tag;  /* a hash of the block's identity */
    uint64_t size; /* the size allocated */
} block;

typedef struct lineage {
    int id;
    long generation;
    long generations;
    uint64_t rng;
    uint64_t sum;
    block *slot[SLOTS];
} lineage;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int done_count = 0;

static block *new_block(uint64_t *rng) {
    uint64_t r = rng_next(rng);
    size_t size = MIN_SIZE + (size_t)(r % (MAX_SIZE - MIN_SIZE + 1));
    block *b = (block *)check(LARSON_ALLOC(size), LARSON_NAME);
    /* blocks under 16 bytes hold only the tag */
    b->tag = r;
    if (size >= sizeof(block)) {
        b->size = size;
        ((unsigned char *)b)[size - 1] = (unsigned char)r;
    }
    return b;
}

static uint64_t free_block(block *b) {
    uint64_t v = b->tag;
    size_t size = MIN_SIZE + (size_t)(v % (MAX_SIZE - MIN_SIZE + 1));
    if (size >= sizeof(block)) v += b->size + ((unsigned char *)b)[size - 1];
    LARSON_FREE(b, size);
    return hash64(v);
}

static void start(lineage *l);

static void *worker(void *arg) {
    lineage *l = (lineage *)arg;
    for (int i = 0; i < OPS; i++) {
        size_t k = (size_t)(rng_next(&l->rng) % SLOTS);
        l->sum += free_block(l->slot[k]);
        l->slot[k] = new_block(&l->rng);
    }
    l->generation++;
    if (l->generation < l->generations) {
        start(l); /* the successor takes over the array */
    } else {
        pthread_mutex_lock(&done_mu);
        done_count++;
        pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
    return NULL;
}

static void start(lineage *l) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, worker, l) != 0) {
        fprintf(stderr, "larson: pthread_create failed\n");
        abort();
    }
    pthread_attr_destroy(&attr);
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long generations = scaled(1000, scale);
    double t0 = now_secs();

    lineage *ls[LINEAGES];
    for (int i = 0; i < LINEAGES; i++) {
        lineage *l = (lineage *)check(calloc(1, sizeof(lineage)), "lineage");
        l->id = i;
        l->generations = generations;
        l->rng = 0x1a250000 + (uint64_t)i;
        /* main allocates the first arrays: even generation 0 frees
         * another thread's blocks */
        for (int k = 0; k < SLOTS; k++) l->slot[k] = new_block(&l->rng);
        ls[i] = l;
    }
    for (int i = 0; i < LINEAGES; i++) start(ls[i]);
    pthread_mutex_lock(&done_mu);
    while (done_count < LINEAGES) pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);

    uint64_t h = 0;
    for (int i = 0; i < LINEAGES; i++) {
        lineage *l = ls[i];
        for (int k = 0; k < SLOTS; k++) l->sum += free_block(l->slot[k]);
        h += l->sum;
        free(l);
    }
    report(LARSON_NAME, scale, h, now_secs() - t0);
    return 0;
}
