/* A shared library linked with -lgoheap, loaded by dlopen_host.c with
 * dlopen: libgoheap then arrives after start-up, so its thread-locals must
 * use dynamic TLS. The process's malloc stays glibc's; the plugin
 * allocates through the goheap_ names. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "goheap.h"

static void *worker(void *arg) {
    intptr_t bad = 0;
    void *ps[1000];
    for (int i = 0; i < 1000; i++) {
        ps[i] = goheap_malloc((size_t)(i * 53 % 40000) + 1);
        if (!ps[i] || !goheap_owns(ps[i])) bad++;
        else memset(ps[i], i & 0xff, 1);
    }
    for (int i = 0; i < 1000; i++) goheap_free(ps[i]);
    (void)arg;
    return (void *)bad;
}

/* Returns 0 on success. */
int plugin_run(void) {
    void *p = goheap_calloc(10, 10);
    if (!p || !goheap_owns(p)) return 1;
    goheap_free(p);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0) return 2;
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) bad = 3;
    }
    if (bad) return bad;
    struct goheap_memstats m;
    goheap_memstats(&m);
    if (m.mallocs < 4000) return 4;
    return 0;
}
