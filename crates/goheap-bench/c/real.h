/* Shared by the real-program workloads of `goheap cbench` (python.c,
 * gcc.c): runs a real program as a child process, which inherits the
 * LD_PRELOAD of this driver, so the allocator under test serves the
 * program; captures its standard output; and times it. The driver itself
 * allocates next to nothing: the time is the program's. */
#ifndef GOHEAP_CBENCH_REAL_H
#define GOHEAP_CBENCH_REAL_H

#include "common.h" /* first: it defines _GNU_SOURCE */

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs argv[0] (searched in PATH when it has no slash) with `argv`, and
 * `env_name=env_value` added to the environment when `env_name` is not
 * NULL. Its standard output goes to `out` (at most `cap - 1` bytes kept,
 * NUL-terminated); its standard error is this process's. Exits the driver
 * with a message if the program cannot be run or does not succeed.
 * Returns the seconds it took. */
static double run_program(char *const argv[], const char *env_name, const char *env_value,
                          char *out, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    double t0 = now_secs();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (env_name != NULL) setenv(env_name, env_value, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        char sink[4096];
        char *to = len + 1 < cap ? out + len : sink;
        size_t room = len + 1 < cap ? cap - 1 - len : sizeof sink;
        ssize_t n = read(fds[0], to, room);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (to != sink) len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            exit(1);
        }
    }
    double secs = now_secs() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s failed (status %d)\n", argv[0], status);
        exit(1);
    }
    return secs;
}

/* The first of `candidates` (absolute paths) that is executable, else
 * `fallback` (looked up in PATH). */
static const char *find_program(const char *const *candidates, const char *fallback) {
    for (; *candidates != NULL; candidates++) {
        if (access(*candidates, X_OK) == 0) return *candidates;
    }
    return fallback;
}

#endif
