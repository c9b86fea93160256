/* Loads the plugin given as argv[1] with dlopen (this program is not linked
 * with libgoheap) and runs it, from the main thread and from new threads;
 * then dlcloses it (libgoheap, marked NODELETE, stays) and forks. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int (*run)(void);

static void *thread_main(void *arg) {
    (void)arg;
    return (void *)(long)run();
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    run = (int (*)(void))dlsym(h, "plugin_run");
    if (!run) return 1;
    int r = run();
    if (r) {
        fprintf(stderr, "plugin_run: %d\n", r);
        return 10 + r;
    }
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 3; i++) {
        void *v;
        pthread_join(t[i], &v);
        if (v) {
            fprintf(stderr, "plugin_run in thread: %ld\n", (long)v);
            return 20;
        }
    }
    if (dlclose(h) != 0) {
        fprintf(stderr, "dlclose: %s\n", dlerror());
        return 30;
    }
    pid_t pid = fork();
    if (pid == 0) {
        free(malloc(100));
        _exit(0);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 31;
    printf("ok\n");
    return 0;
}
