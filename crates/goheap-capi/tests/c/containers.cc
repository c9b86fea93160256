// A C++ workload with standard containers. Prints a deterministic summary
// (the preload test compares it with a run on the system allocator). Built
// with -DGOHEAP_LINKED and -lgoheap, argument "check" also checks that
// operator new and delete in every form are goheap's, and "throw" that a
// failed throwing new throws std::bad_alloc (uncaught here: the test expects
// libstdc++'s terminate message).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#ifdef GOHEAP_LINKED
#include "goheap.h"
#endif

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            std::exit(1);                                                              \
        }                                                                              \
    } while (0)

struct alignas(64) Line {
    char bytes[64];
};
struct alignas(4096) Page {
    char bytes[100];
};

static uint64_t workload(unsigned seed) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    std::map<std::string, std::vector<int>> m;
    std::unordered_map<int, std::string> u;
    std::set<uint64_t> s;
    std::list<std::string> l;
    std::deque<int> d;
    uint64_t x = seed;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        std::string k = "key" + std::to_string(x % 5000);
        m[k].push_back(i);
        u[int(x % 7919)] = k + std::string(x % 300, 'x');
        s.insert(x % 100000);
        if (i % 3 == 0) l.push_back(k);
        if (l.size() > 500) l.pop_front();
        d.push_back(i);
        if (d.size() > 1000) d.pop_front();
    }
    for (auto &kv : m) {
        mix(kv.first.size());
        mix(kv.second.size());
    }
    std::vector<std::string> keys;
    for (auto &kv : u) keys.push_back(kv.second);
    std::sort(keys.begin(), keys.end());
    for (auto &k : keys) mix(k.size());
    for (auto v : s) mix(v);
    mix(l.size());
    mix(d.size());
    auto sp = std::make_shared<std::vector<double>>(10000, 1.5);
    mix(uint64_t(sp->size()));
    return h;
}

#ifdef GOHEAP_LINKED
static void check_goheap() {
    int *i = new int(5);
    CHECK(goheap_owns(i));
    delete i;
    int *a = new int[1000];
    CHECK(goheap_owns(a));
    delete[] a;
    Line *ln = new Line;
    CHECK(goheap_owns(ln) && reinterpret_cast<uintptr_t>(ln) % 64 == 0);
    delete ln;
    Page *pg = new Page[3];
    CHECK(goheap_owns(pg) && reinterpret_cast<uintptr_t>(pg) % 4096 == 0);
    delete[] pg;
    void *p = ::operator new(100, std::nothrow);
    CHECK(p && goheap_owns(p));
    ::operator delete(p, std::nothrow);
    p = ::operator new[](100, std::nothrow);
    CHECK(p && goheap_owns(p));
    ::operator delete[](p, std::nothrow);
    p = ::operator new(100);
    ::operator delete(p, std::size_t(100));
    p = ::operator new[](100);
    ::operator delete[](p, std::size_t(100));
    p = ::operator new(0);
    CHECK(p && goheap_owns(p));
    ::operator delete(p);
    for (std::size_t al = 1; al <= (1u << 20); al <<= 1) {
        p = ::operator new(77, std::align_val_t(al));
        CHECK(p && goheap_owns(p) && reinterpret_cast<uintptr_t>(p) % al == 0);
        ::operator delete(p, std::align_val_t(al));
        p = ::operator new[](77, std::align_val_t(al));
        CHECK(p && reinterpret_cast<uintptr_t>(p) % al == 0);
        ::operator delete[](p, std::align_val_t(al));
        p = ::operator new(77, std::align_val_t(al), std::nothrow);
        CHECK(p && reinterpret_cast<uintptr_t>(p) % al == 0);
        ::operator delete(p, std::align_val_t(al), std::nothrow);
        p = ::operator new[](77, std::align_val_t(al), std::nothrow);
        CHECK(p && reinterpret_cast<uintptr_t>(p) % al == 0);
        ::operator delete[](p, std::align_val_t(al), std::nothrow);
        p = ::operator new(77, std::align_val_t(al));
        ::operator delete(p, std::size_t(77), std::align_val_t(al));
        p = ::operator new[](77, std::align_val_t(al));
        ::operator delete[](p, std::size_t(77), std::align_val_t(al));
    }
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
    // nothrow new of an impossible size returns null.
    std::size_t huge = std::size_t(-1) / 2;
    CHECK(::operator new(huge, std::nothrow) == nullptr);
    CHECK(::operator new[](huge, std::nothrow) == nullptr);
    CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr);
    CHECK(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr);
}

#endif

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
#ifdef GOHEAP_LINKED
    bool check = argc > 1 && std::strcmp(argv[1], "check") == 0;
    if (argc > 1 && std::strcmp(argv[1], "throw") == 0) {
        // Throws std::bad_alloc, which nothing catches.
        void *p = ::operator new(std::size_t(-1) / 2);
        std::printf("survived %p\n", p);
        return 0;
    }
    if (check) check_goheap();
#endif
    uint64_t results[4];
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < 4; t++) ts.emplace_back([t, &results] { results[t] = workload(t + 1); });
    for (auto &t : ts) t.join();
    for (unsigned t = 0; t < 4; t++) std::printf("workload %u: %016llx\n", t, (unsigned long long)results[t]);
    return 0;
}
