/* python: a real program, CPython, with every allocation through malloc
 * (PYTHONMALLOC=malloc, so its small-object allocator is out of the way):
 * 3 rounds of a dict of 120 000 string keys and small float lists built,
 * serialised to JSON and parsed back, filtered into a sorted list of
 * tuples, and dropped. Debian's /usr/bin/python3 when present (a pyenv
 * shim would run bash first), else python3 from PATH; it inherits this
 * driver's LD_PRELOAD. The time is the interpreter's run, start-up
 * included. */
#include "real.h"

static const char SCRIPT[] =
    "import json, sys\n"
    "scale = float(sys.argv[1])\n"
    "n = max(1, int(120000 * scale))\n"
    "h = 0\n"
    "for rnd in range(3):\n"
    "    d = {}\n"
    "    for i in range(n):\n"
    "        d['key%d_%d' % (i, rnd)] = [i * 0.5, float(rnd), i % 7]\n"
    "    s = json.dumps(d)\n"
    "    e = json.loads(s)\n"
    "    t = sorted((k, v[0]) for k, v in e.items() if v[2] == 3)\n"
    "    h = (h * 1000003 + len(s) * 31 + len(e) * 7 + len(t)) & 0xffffffffffffffff\n"
    "    h = (h * 1000003 + int(sum(v for _, v in t))) & 0xffffffffffffffff\n"
    "    del d, e, s, t\n"
    "print('checksum=%016x' % h)\n";

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    static const char *const candidates[] = {"/usr/bin/python3", NULL};
    char scale_s[32];
    snprintf(scale_s, sizeof scale_s, "%g", scale);
    char *const args[] = {(char *)find_program(candidates, "python3"), "-c", (char *)SCRIPT,
                          scale_s, NULL};
    char out[256];
    double secs = run_program(args, "PYTHONMALLOC", "malloc", out, sizeof out);
    const char *c = strstr(out, "checksum=");
    if (c == NULL) {
        fprintf(stderr, "python printed no checksum: %s\n", out);
        return 1;
    }
    uint64_t checksum = strtoull(c + 9, NULL, 16);
    report("python", scale, checksum, secs);
    return 0;
}
