/* tight: the malloc/free fast path alone, in one thread, in the manner of
 * glibc's bench-malloc-simple and mimalloc-bench's glibc-simple. Rounds of
 * a batch of 64 blocks (16-271 bytes, a fixed pseudo-random sequence),
 * each written once, freed in allocation order, newest first and in a
 * scattered order in turn: nearly every call is served by the thread cache
 * and returns to it, so what an allocator spends per call (the entry, the
 * thread-local lookup, the size class, the checks on free) is the time. */
#include "common.h"

#define BATCH 64

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long rounds = scaled(400000, scale);
    uint64_t rng = 0x5eed0005;
    size_t sizes[BATCH];
    for (int i = 0; i < BATCH; i++) sizes[i] = (size_t)rng_range(&rng, 16, 271);
    void *blocks[BATCH];
    uint64_t h = 0;
    double t0 = now_secs();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BATCH; i++) {
            unsigned char *p = check(malloc(sizes[(i + r) % BATCH]), "block");
            p[0] = (unsigned char)i;
            blocks[i] = p;
        }
        switch (r % 3) {
        case 0:
            for (int i = 0; i < BATCH; i++) {
                h += *(unsigned char *)blocks[i];
                free(blocks[i]);
            }
            break;
        case 1:
            for (int i = BATCH - 1; i >= 0; i--) {
                h += *(unsigned char *)blocks[i];
                free(blocks[i]);
            }
            break;
        default:
            /* 37 is odd, so i * 37 % 64 visits every block once. */
            for (int i = 0; i < BATCH; i++) {
                void *p = blocks[(i * 37) % BATCH];
                h += *(unsigned char *)p;
                free(p);
            }
        }
        h = mix(h, (uint64_t)r);
    }
    report("tight", scale, h, now_secs() - t0);
    return 0;
}
