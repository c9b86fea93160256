/* small: many small, short-lived objects in one thread, in the manner of
 * cfrac and espresso (mimalloc-bench). A pool of 4000 "bignums" (arrays
 * of 32-bit limbs, 8-256 bytes) is churned by arithmetic: each step adds
 * two random numbers and multiplies the sum by a small factor (two fresh
 * allocations, the first freed at once), sometimes shrinks or grows the
 * result with realloc, builds and frees a short linked list of 16-64 byte
 * temporaries from its limbs, and replaces a random pool slot with the
 * result. Nearly every allocation lives for microseconds; the pool gives
 * some a longer, random life, so frees come in a scattered order. */
#include "common.h"

#define POOL 4000
#define MAXLEN 62

typedef struct num {
    uint32_t len;
    uint32_t limb[];
} num;

typedef struct node {
    struct node *next;
    uint64_t v;
    uint64_t pad[]; /* 0-6 words: sizes 16-64 */
} node;

static num *num_new(uint32_t len) {
    num *n = check(malloc(sizeof(num) + 4 * (size_t)len), "num_new");
    n->len = len;
    return n;
}

/* a + b, truncated to MAXLEN limbs. */
static num *num_add(const num *a, const num *b) {
    if (a->len < b->len) {
        const num *t = a;
        a = b;
        b = t;
    }
    uint32_t len = a->len + 1 > MAXLEN ? MAXLEN : a->len + 1;
    num *r = num_new(len);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t s = carry + (i < a->len ? a->limb[i] : 0) + (i < b->len ? b->limb[i] : 0);
        r->limb[i] = (uint32_t)s;
        carry = s >> 32;
    }
    return r;
}

/* a * m, truncated to MAXLEN limbs. */
static num *num_mul_small(const num *a, uint32_t m) {
    uint32_t len = a->len + 1 > MAXLEN ? MAXLEN : a->len + 1;
    num *r = num_new(len);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t p = carry + (uint64_t)(i < a->len ? a->limb[i] : 0) * m;
        r->limb[i] = (uint32_t)p;
        carry = p >> 32;
    }
    return r;
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long steps = scaled(2500000, scale);
    uint64_t rng = 0x5eed0001;
    uint64_t h = 0;
    double t0 = now_secs();

    num **pool = check(malloc(POOL * sizeof(num *)), "pool");
    for (int i = 0; i < POOL; i++) {
        uint32_t len = (uint32_t)rng_range(&rng, 1, 16);
        pool[i] = num_new(len);
        for (uint32_t k = 0; k < len; k++) pool[i]->limb[k] = (uint32_t)rng_next(&rng);
    }

    for (long s = 0; s < steps; s++) {
        uint64_t r = rng_next(&rng);
        num *a = pool[r % POOL], *b = pool[(r >> 16) % POOL];
        num *t = num_add(a, b);
        num *u = num_mul_small(t, (uint32_t)(r >> 32) | 1);
        free(t);
        if (u->len > 40 && (r & 0x300) == 0) {
            /* drop the high half, in place if the allocator can */
            u->len /= 2;
            u = check(realloc(u, sizeof(num) + 4 * (size_t)u->len), "shrink");
        } else if (u->len < 4 && (r & 0x3000) == 0) {
            uint32_t old = u->len;
            u->len = old * 4;
            u = check(realloc(u, sizeof(num) + 4 * (size_t)u->len), "grow");
            for (uint32_t k = old; k < u->len; k++) u->limb[k] = (uint32_t)(r >> k);
        }

        /* a short list of temporaries, freed front to back */
        int k = 1 + (int)((r >> 48) % 12);
        node *head = NULL;
        for (int i = 0; i < k; i++) {
            size_t words = (size_t)((r >> (i * 3)) % 7);
            node *n = check(malloc(sizeof(node) + 8 * words), "node");
            n->v = u->limb[(uint32_t)i % u->len];
            if (words) n->pad[words - 1] = n->v;
            n->next = head;
            head = n;
        }
        uint64_t sum = 0;
        while (head) {
            node *n = head;
            head = n->next;
            sum += n->v;
            free(n);
        }
        h = mix(h, sum ^ u->len);

        size_t slot = (size_t)((r >> 24) % POOL);
        free(pool[slot]);
        pool[slot] = u;
    }

    for (int i = 0; i < POOL; i++) {
        h = mix(h, pool[i]->len);
        h = mix(h, pool[i]->limb[0]);
        free(pool[i]);
    }
    free(pool);
    report("small", scale, h, now_secs() - t0);
    return 0;
}
