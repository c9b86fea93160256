/* The program's last thread leaves through pthread_exit, and the process
 * must end then, with status 0 and its atexit handlers run, as it does on
 * glibc's allocator: goheap's background thread must not keep it alive.
 *
 *   last_thread main-exit    main starts a worker and calls pthread_exit;
 *                            the worker allocates and returns.
 *   last_thread fork-thread  a worker forks; in the child the worker is
 *                            the only thread, allocates, and returns from
 *                            its start routine; the parent waits for the
 *                            child (CPython's test_threading does this). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void churn(void) {
    void *blocks[256];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 256; i++) blocks[i] = malloc(16 + (size_t)(i * 37) % 4000);
        for (int i = 0; i < 256; i++) free(blocks[i]);
    }
}

/* Grows the heap by 64 MiB (and gives it back): a new heap chunk starts
 * goheap's background thread if it is not running, as in a forked child. */
static void grow(void) {
    void *big[64];
    for (int i = 0; i < 64; i++) {
        big[i] = malloc(1 << 20);
        if (big[i]) memset(big[i], 1, 64);
    }
    for (int i = 0; i < 64; i++) free(big[i]);
}

static void said_goodbye(void) {
    printf("atexit ran\n");
    fflush(stdout);
}

static void *worker_main_exit(void *arg) {
    (void)arg;
    churn();
    printf("worker done\n");
    fflush(stdout);
    return NULL;
}

static void *worker_fork(void *arg) {
    (void)arg;
    churn();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        /* The child: this thread is its only one; returning ends it.
         * Growing the heap starts goheap's background thread anew here. */
        atexit(said_goodbye);
        churn();
        grow();
        printf("child done\n");
        fflush(stdout);
        return NULL;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        exit(2);
    }
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: last_thread main-exit|fork-thread\n");
        return 2;
    }
    pthread_t t;
    if (strcmp(argv[1], "main-exit") == 0) {
        atexit(said_goodbye);
        churn();
        grow();
        if (pthread_create(&t, NULL, worker_main_exit, NULL) != 0) return 2;
        pthread_exit(NULL);
    }
    if (strcmp(argv[1], "fork-thread") == 0) {
        if (pthread_create(&t, NULL, worker_fork, NULL) != 0) return 2;
        pthread_join(t, NULL);
        return 3; /* not reached: the worker's parent side exits */
    }
    fprintf(stderr, "last_thread: unknown mode %s\n", argv[1]);
    return 2;
}
