/* calloc-large: large zeroed blocks, in the manner of malloc-large
 * (mimalloc-bench), single thread. STEPS times, replace one of LIVE live
 * blocks by a new one from calloc, of 256 KiB to 16 MiB (log-uniform:
 * as many of 256-512 KiB as of 8-16 MiB; 3.8 MiB on average), then touch
 * it: check that one byte in every 4 KiB page is zero and write it.
 *
 * What it measures: the large-object path. An allocator that keeps freed
 * pages must zero them for calloc (a memset); one that returns them to
 * the OS gets zeroed pages from the kernel, but pays a page fault for each
 * page touched. The checksum counts the bytes found not zero (0 when
 * calloc is correct) and folds in every size and written byte. */
#include "common.h"

#define LIVE 8
#define STEPS 1000
#define MIN_SIZE (256u << 10)
#define MAX_SIZE (16u << 20)
#define PAGE 4096

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long steps = scaled(STEPS, scale);
    uint64_t rng = 0xca110c00;
    uint64_t h = 0, not_zero = 0;
    unsigned char *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    double t0 = now_secs();

    for (long s = 0; s < steps; s++) {
        size_t k = (size_t)(rng_next(&rng) % LIVE);
        if (live[k]) {
            /* read back what was written */
            for (size_t off = 0; off < sizes[k]; off += PAGE) h = mix(h, live[k][off]);
            free(live[k]);
        }
        size_t size = (size_t)rng_log(&rng, MIN_SIZE, MAX_SIZE);
        unsigned char *p = check(calloc(1, size), "calloc-large");
        unsigned char v = (unsigned char)(rng_next(&rng) | 1);
        not_zero += p[size - 1] != 0;
        for (size_t off = 0; off < size; off += PAGE) {
            not_zero += p[off] != 0;
            p[off] = v;
        }
        live[k] = p;
        sizes[k] = size;
        h = mix(h, size);
    }
    for (size_t k = 0; k < LIVE; k++) free(live[k]);
    h = mix(h, not_zero);
    if (not_zero) fprintf(stderr, "calloc-large: %llu bytes not zeroed\n", (unsigned long long)not_zero);
    report("calloc-large", scale, h, now_secs() - t0);
    return 0;
}
