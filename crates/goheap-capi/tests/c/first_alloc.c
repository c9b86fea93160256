/* The first allocations of a process (or of a forked child) in one size
 * class, under LD_PRELOAD of libgoheap: the heap's first span starts the
 * scavenger thread, and creating a thread allocates (glibc's calloc of the
 * new thread's TLS vector), from inside the refill that made the span.
 * That nested allocation must not disturb the refill (it once replaced the
 * refilling cache's span, leaving a span that no cache owned). The program
 * asks goheap's heap checker afterwards.
 *
 *   first_alloc parent SIZE N   the process's first N allocations of SIZE
 *   first_alloc child SIZE N    the same in a child forked after the parent
 *                               made a span of another class
 * Exits 0 when goheap_check_heap() finds nothing, 1 when it finds problems,
 * 2 on a setup problem. Prints nothing on stdout. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t (*check_heap)(void);

static int run(size_t size, size_t n) {
    void **v = NULL;
    /* The array comes after the objects: its allocation must not be the
     * first. n first allocations of `size`, linked through themselves. */
    void *head = NULL;
    for (size_t i = 0; i < n; i++) {
        void **p = malloc(size);
        if (!p) return 2;
        *p = head;
        head = p;
    }
    (void)v;
    size_t problems = check_heap();
    while (head) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
    problems += check_heap();
    return problems ? 1 : 0;
}

int main(int argc, char **argv) {
    alarm(20);
    if (argc != 4) return 2;
    check_heap = (size_t (*)(void))dlsym(RTLD_DEFAULT, "goheap_check_heap");
    if (!check_heap) {
        fprintf(stderr, "goheap_check_heap not found: not running under libgoheap\n");
        return 2;
    }
    size_t size = strtoul(argv[2], NULL, 10), n = strtoul(argv[3], NULL, 10);
    if (strcmp(argv[1], "parent") == 0) return run(size, n);
    /* child: the parent's first span is of another class (a 4 KiB object,
     * class 44, never one of the sizes tested with "child"). */
    void *keep = malloc(4000);
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) _exit(run(size, n));
    int st;
    if (waitpid(pid, &st, 0) != pid) return 2;
    free(keep);
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "child killed by signal %d\n", WTERMSIG(st));
        return 2;
    }
    return WEXITSTATUS(st);
}
