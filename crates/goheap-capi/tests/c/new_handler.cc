// The throwing operator new under goheap (LD_PRELOAD): a failure calls the
// std::new_handler and retries, and without a handler throws std::bad_alloc
// to the caller. Built by tests/cxx_new.rs; `new_handler CASE` runs one
// case, exit 0 = pass.
//
//   bad_alloc  every throwing form (plain, array, aligned, aligned array,
//              and new-expressions) of an impossible size throws bad_alloc,
//              which is caught here; nothrow forms return null.
//   handler    under a hard memory limit (the test sets GOHEAP_MEMORY_LIMIT
//              and GOHEAP_HARD_LIMIT): a handler that frees a reserve block
//              makes the retry succeed; a handler that throws bad_alloc
//              and one that uninstalls itself end in bad_alloc here; the
//              handler calls are counted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            std::exit(1);                                                              \
        }                                                                              \
    } while (0)

// Sizes the heap refuses: above GOHEAP_MAX_ALLOC. Volatile so the compiler
// neither folds the calls nor warns about the size.
static volatile std::size_t huge = std::size_t(1) << 62;
// Where results go, so the compiler cannot drop an unused new (C++14
// allows eliding allocations).
static void *volatile sink;

// Callee-saved registers must survive a throw out of operator new: the
// catch block reads these after the exception.
template <typename F>
static bool throws_bad_alloc(F f) {
    volatile int canary = 12345;
    try {
        f();
    } catch (const std::bad_alloc &) {
        return canary == 12345;
    }
    return false;
}

static void case_bad_alloc() {
    CHECK(std::get_new_handler() == nullptr);
    CHECK(throws_bad_alloc([] { sink = ::operator new(huge); }));
    CHECK(throws_bad_alloc([] { sink = ::operator new[](huge); }));
    CHECK(throws_bad_alloc([] { sink = ::operator new(huge, std::align_val_t(64)); }));
    CHECK(throws_bad_alloc([] { sink = ::operator new[](huge, std::align_val_t(4096)); }));
    // A non-power-of-two alignment throws too (as libstdc++'s own new).
    CHECK(throws_bad_alloc([] { sink = ::operator new(64, std::align_val_t(48)); }));
    // New-expressions, with an object in flight to destroy on the way.
    CHECK(throws_bad_alloc([] {
        char *p = new char[huge];
        p[0] = 1;
        sink = p;
    }));
    struct alignas(128) Wide {
        char bytes[128];
    };
    CHECK(throws_bad_alloc([] {
        Wide *w = new Wide[huge / 1024];
        w[0].bytes[0] = 1;
        sink = w;
    }));
    // Many times in a row: the unwinding path is repeatable.
    int caught = 0;
    for (int i = 0; i < 1000; i++) {
        try {
            sink = ::operator new(huge);
        } catch (const std::bad_alloc &) {
            caught++;
        }
    }
    CHECK(caught == 1000);
    // Success still works after all that.
    char *ok = new char[100];
    std::memset(ok, 1, 100);
    delete[] ok;
    CHECK(::operator new(huge, std::nothrow) == nullptr);
    CHECK(::operator new[](huge, std::nothrow) == nullptr);
    CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr);
    std::puts("bad_alloc ok");
}

static int calls;
static char *reserve;
static const std::size_t MiB = std::size_t(1) << 20;

// Frees the reserve on its first call; a second call means the retry failed.
static void free_reserve() {
    calls++;
    CHECK(calls == 1);
    delete[] reserve;
    reserve = nullptr;
}

static void throw_itself() {
    calls++;
    throw std::bad_alloc();
}

static void uninstall_itself() {
    calls++;
    std::set_new_handler(nullptr);
}

// Allocates a block just under the limit; touches it so it is really used.
static char *fill(std::size_t n) {
    char *p = new char[n];
    std::memset(p, 7, n);
    return p;
}

static void case_handler_retry() {
    // The test runs this under a 96 MiB hard limit. A 48 MiB reserve and a
    // 64 MiB request do not fit together; once the reserve is freed, they do.
    reserve = fill(48 * MiB);
    calls = 0;
    std::set_new_handler(free_reserve);
    char *big = new char[64 * MiB];
    CHECK(calls == 1 && reserve == nullptr);
    std::memset(big, 1, 64 * MiB);
    delete[] big;
    std::puts("handler retry ok");
}

static void case_handler_retry_aligned() {
    reserve = fill(64 * MiB);
    calls = 0;
    std::set_new_handler(free_reserve);
    void *p = ::operator new(48 * MiB, std::align_val_t(4096));
    CHECK(calls == 1 && reserve == nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 4096 == 0);
    ::operator delete(p, std::align_val_t(4096));
    std::set_new_handler(nullptr);
    std::puts("handler aligned ok");
}

static void case_handler_throws_or_leaves() {
    calls = 0;
    std::set_new_handler(throw_itself);
    CHECK(throws_bad_alloc([] { sink = ::operator new(huge); }));
    CHECK(calls == 1);
    CHECK(throws_bad_alloc([] { sink = ::operator new[](huge, std::align_val_t(256)); }));
    CHECK(calls == 2);
    // A throwing handler is not called by the nothrow forms.
    CHECK(::operator new(huge, std::nothrow) == nullptr);
    CHECK(calls == 2);

    calls = 0;
    std::set_new_handler(uninstall_itself);
    CHECK(throws_bad_alloc([] { sink = ::operator new[](huge); }));
    CHECK(calls == 1 && std::get_new_handler() == nullptr);
    std::puts("handler throws ok");
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (std::strcmp(c, "bad_alloc") == 0) {
        case_bad_alloc();
    } else if (std::strcmp(c, "handler") == 0) {
        case_handler_retry();
        case_handler_retry_aligned();
        case_handler_throws_or_leaves();
    } else {
        std::fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    return 0;
}
