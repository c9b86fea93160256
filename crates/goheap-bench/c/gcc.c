/* gcc: a real program, the C compiler (`gcc -O2 -S`, its `cc1` a child
 * of the driver, both under this driver's LD_PRELOAD), on a generated
 * file of 150 functions (loops, switches, structs, calls between them:
 * GCC builds and frees its trees, RTL and hash tables through malloc).
 * The file is written to a fresh directory under $TMPDIR (or /tmp) and
 * removed afterwards. The checksum is that of the input and of the count
 * of functions in the assembly, not of the assembly's bytes, which may
 * legitimately differ in the order GCC emits some things. */
#include "real.h"

static void write_source(FILE *f, long nfuncs) {
    fputs("struct point { long x, y, z; double w; };\n", f);
    for (long i = 0; i < nfuncs; i++) {
        fprintf(f,
                "__attribute__((noinline)) long f%ld(long a, long b, struct point *p) {\n"
                "    long s = a ^ %ldL;\n"
                "    for (long i = 0; i < b; i++) {\n"
                "        switch ((s + i) %% 7) {\n"
                "        case 0: s += p->x * i + %ld; break;\n"
                "        case 1: s ^= p->y << (i & 7); break;\n"
                "        case 2: s -= (long)(p->w * (double)i); break;\n"
                "        case 3: p->z += s >> 3; break;\n"
                "        case 4: s = s * 31 + %ld; break;\n"
                "        default: s += i * i - a;\n"
                "        }\n"
                "        if (s & 1) p->x ^= s; else p->y += s / (i + 1);\n"
                "    }\n",
                i, i * 2654435761L % 100003, i % 97, i % 89);
        if (i > 0) fprintf(f, "    s += f%ld(s & 15, b / 2, p);\n", i - 1 - (i % 3 == 0 && i > 1));
        fputs("    return s + p->z;\n}\n", f);
    }
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long nfuncs = scaled(150, scale);
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/goheap-cbench-gcc-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL || chdir(dir) != 0) {
        perror(dir);
        return 1;
    }
    FILE *f = fopen("big.c", "w");
    if (f == NULL) {
        perror("big.c");
        return 1;
    }
    write_source(f, nfuncs);
    long src_bytes = ftell(f);
    fclose(f);
    static const char *const candidates[] = {"/usr/bin/gcc", NULL};
    char *const args[] = {(char *)find_program(candidates, "gcc"), "-O2", "-S", "-o", "big.s",
                          "big.c", NULL};
    char out[256];
    double secs = run_program(args, NULL, NULL, out, sizeof out);
    /* Count the functions GCC emitted: one `.type fN, @function` each. */
    long functions = 0;
    f = fopen("big.s", "r");
    if (f == NULL) {
        perror("big.s");
        return 1;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "@function") != NULL) functions++;
    }
    fclose(f);
    unlink("big.c");
    unlink("big.s");
    if (chdir("/") != 0 || rmdir(dir) != 0) perror(dir);
    if (functions != nfuncs) {
        fprintf(stderr, "gcc emitted %ld functions, not %ld\n", functions, nfuncs);
        return 1;
    }
    report("gcc", scale, mix(mix(0, (uint64_t)src_bytes), (uint64_t)functions), secs);
    return 0;
}
