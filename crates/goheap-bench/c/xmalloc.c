/* xmalloc: producers and consumers, in the manner of xmalloc-testN
 * (mimalloc-bench). PAIRS producer threads only allocate: objects of
 * 16-128 bytes, each tagged, in batches of BATCH (the batch array is
 * allocated by the producer too). Each producer passes its batches to its
 * consumer through a bounded queue (a mutex and two condition variables,
 * QCAP batches); the consumer reads every object and frees it and the
 * batch. No object is freed by the thread that allocated it: every free
 * is remote, the worst case for per-thread caches.
 *
 * The checksum is a sum over objects, so it does not depend on the
 * scheduling. */
#include "common.h"

#include <pthread.h>

#define PAIRS 2
#define BATCH 256
#define QCAP 64

typedef struct batch {
    int n;
    uint64_t *obj[BATCH];
} batch;

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    batch *ring[QCAP];
    unsigned head, tail; /* pop at head, push at tail */
    long batches;        /* batches the producer will send */
    uint64_t seed;
    uint64_t sum;        /* the consumer's result */
} queue;

static void push(queue *q, batch *b) {
    pthread_mutex_lock(&q->mu);
    while (q->tail - q->head == QCAP) pthread_cond_wait(&q->not_full, &q->mu);
    q->ring[q->tail % QCAP] = b;
    q->tail++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static batch *pop(queue *q) {
    pthread_mutex_lock(&q->mu);
    while (q->tail == q->head) pthread_cond_wait(&q->not_empty, &q->mu);
    batch *b = q->ring[q->head % QCAP];
    q->head++;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return b;
}

static void *producer(void *arg) {
    queue *q = arg;
    uint64_t rng = q->seed;
    for (long i = 0; i < q->batches; i++) {
        batch *b = check(malloc(sizeof(batch)), "batch");
        b->n = BATCH;
        for (int k = 0; k < BATCH; k++) {
            uint64_t r = rng_next(&rng);
            size_t size = 16 + (size_t)(r % 113);
            uint64_t *o = check(malloc(size), "object");
            o[0] = r;
            o[1] = size;
            b->obj[k] = o;
        }
        push(q, b);
    }
    return NULL;
}

static void *consumer(void *arg) {
    queue *q = arg;
    uint64_t sum = 0;
    for (long i = 0; i < q->batches; i++) {
        batch *b = pop(q);
        for (int k = 0; k < b->n; k++) {
            uint64_t *o = b->obj[k];
            sum += hash64(o[0] ^ (o[1] << 48));
            free(o);
        }
        free(b);
    }
    q->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long batches = scaled(30000, scale);
    double t0 = now_secs();

    queue q[PAIRS];
    pthread_t t[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        memset(&q[i], 0, sizeof q[i]);
        pthread_mutex_init(&q[i].mu, NULL);
        pthread_cond_init(&q[i].not_empty, NULL);
        pthread_cond_init(&q[i].not_full, NULL);
        q[i].batches = batches;
        q[i].seed = 0x3a110c00 + (uint64_t)i;
    }
    for (int i = 0; i < PAIRS; i++) {
        pthread_create(&t[2 * i], NULL, producer, &q[i]);
        pthread_create(&t[2 * i + 1], NULL, consumer, &q[i]);
    }
    uint64_t h = 0;
    for (int i = 0; i < 2 * PAIRS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < PAIRS; i++) h += q[i].sum;
    report("xmalloc", scale, h, now_secs() - t0);
    return 0;
}
