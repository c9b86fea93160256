// larson-sized: larson.c's server loop with C++'s sized deallocation: each
// block comes from `operator new(size)` and goes back through
// `operator delete(p, size)` (C++14), as mimalloc-bench's larson-sized.
#include <new>

#define LARSON_NAME "larson-sized"
#define LARSON_ALLOC(size) ::operator new(size)
#define LARSON_FREE(p, size) ::operator delete(p, size)
#include "larson.c"
