// security.cc: the C++ case of tests/security.rs, run under LD_PRELOAD of
// the release libgoheap.so: delete[] a; delete[] b; delete[] a.
//
// Prints "ptr=%p" (the pointer the report must name) on stderr before the
// bad delete[] and exits with status 3 if it survives it.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

// Opaque to the optimiser, so the new/delete pairs cannot be elided.
__attribute__((noinline)) static int *launder(int *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

__attribute__((noinline)) static int *new_ints() { return launder(new int[12]); }

__attribute__((noinline)) static void delete_ints(int *p) { delete[] launder(p); }

int main(int argc, char **argv) {
    alarm(20);
    if (argc != 2 || std::strcmp(argv[1], "cxx_delete_double") != 0) {
        std::fprintf(stderr, "usage: %s cxx_delete_double\n", argv[0]);
        return 2;
    }
    // int has no destructor: no array cookie, operator delete[] gets a.
    int *a = new_ints();
    int *b = new_ints();
    std::fprintf(stderr, "ptr=%p\n", static_cast<void *>(a));
    std::fflush(stderr);
    delete_ints(a);
    delete_ints(b);
    delete_ints(a);
    std::fprintf(stderr, "survived: delete[] a; delete[] b; delete[] a\n");
    std::fflush(stderr);
    std::exit(3);
}
