/*
 * goheap.h: the C interface of libgoheap (Go's memory allocator, in Rust).
 *
 * Link with -lgoheap (libgoheap.so or libgoheap.a, built by
 * `cargo build --release -p goheap-capi` into target/release/), or load the
 * shared library into any program with LD_PRELOAD=/path/to/libgoheap.so.
 * Either way the standard allocation functions below *are* goheap's: the
 * library defines malloc, free and the rest (and C++ operator new/delete),
 * so every allocation of the process goes through it.
 *
 * Behaviour follows glibc:
 *   - malloc(n) is 16-byte aligned for n > 8 and 8-byte aligned for n <= 8;
 *     malloc(0) returns a unique pointer that must be freed.
 *   - Exhaustion, sizes above GOHEAP_MAX_ALLOC and size overflow in calloc
 *     or reallocarray return NULL with errno = ENOMEM.
 *   - free(NULL) does nothing; realloc(NULL, n) is malloc(n);
 *     realloc(p, 0) frees p and returns NULL.
 *
 * Invalid use is detected, not silently absorbed: free, realloc or
 * malloc_usable_size of a pointer goheap did not allocate (another
 * allocator's, the stack, static data), of a pointer into the middle of an
 * object, or a double free, prints "goheap: fatal error: free of 0x...: ..."
 * naming the pointer on stderr and aborts (SIGABRT). A double free is
 * caught at once, wherever the first copy is (this thread's cache, another
 * thread's, the transfer cache, its span); see "Bad input" in the root
 * README.
 *
 * Environment variables, read once when the heap initialises (every one
 * is in the "Options" table of the root README), for example:
 *   GOHEAP_IGNORE_INVALID_FREE=1  free() of a pointer goheap does not own is
 *                                 ignored (one warning) instead of aborting.
 *   GOHEAP_PRINT_STATS=1          print statistics on stderr at exit.
 *   GOHEAP_VERBOSE=1              print a line on stderr at initialisation.
 *   GOHEAP_HEAP_PROFILE=PATH      sample allocations and write a heap
 *                                 profile (pprof format) to PATH at exit.
 *
 * Threads, fork and dlopen: each thread has its own cache, returned to the
 * shared heap when the thread exits; fork() from a multithreaded process is
 * safe (pthread_atfork handlers take every allocator lock around it); the
 * library may be loaded with dlopen (it needs 8 bytes of static TLS, taken
 * from glibc's surplus; its other thread-locals are dynamic), though a
 * dlopen'ed copy does not replace the malloc that is already in use: call
 * the goheap_ names below to use it.
 *
 * C++: the throwing operator new and new[] (plain and aligned) call the
 * installed std::new_handler and retry while one is installed, and with
 * none throw std::bad_alloc to the caller (on x86-64, through libstdc++'s
 * std::get_new_handler and std::__throw_bad_alloc, bound weakly when
 * libstdc++ is loaded, as in every C++ program). Where they are not bound
 * (a C program calling _Znwm, libstdc++ dlopen'ed later) or on other
 * architectures, a failure prints a message and aborts, as an uncaught
 * bad_alloc would. The nothrow forms return NULL without calling the
 * new_handler. operator delete, sized or not, frees by address.
 */
#ifndef GOHEAP_H
#define GOHEAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of entries of goheap_memstats.by_size (size classes, class 0
 * unused), Go's table. */
#define GOHEAP_NUM_SIZE_CLASSES 68

/* The largest request goheap accepts (PTRDIFF_MAX - 64 MiB); larger ones
 * fail with ENOMEM. */
#define GOHEAP_MAX_ALLOC ((size_t)PTRDIFF_MAX - ((size_t)1 << 26))

/* ---- The standard functions (defined by libgoheap) --------------------
 *
 * They are declared by the system headers (included below), not here, so
 * the declarations cannot disagree. What goheap does:
 *
 *   void *malloc(size_t size);
 *       size bytes (16-aligned if size > 8). NULL + ENOMEM on failure.
 *   void free(void *p);
 *       NULL is ignored; aborts with a report for a pointer goheap does not
 *       own, an interior pointer or a detected double free.
 *   void *calloc(size_t n, size_t size);
 *       n * size zeroed bytes. NULL + ENOMEM on overflow or exhaustion.
 *   void *realloc(void *p, size_t size);
 *       NULL p: malloc(size); size 0: frees p, returns NULL. On failure
 *       NULL + ENOMEM and p is untouched. Aborts like free for bad p.
 *   void *reallocarray(void *p, size_t n, size_t size);
 *       realloc(p, n * size) with overflow checked (NULL + ENOMEM).
 *   int posix_memalign(void **memptr, size_t align, size_t size);
 *       align must be a power of two and a multiple of sizeof(void *).
 *       Returns 0, EINVAL or ENOMEM; errno is never changed.
 *   void *aligned_alloc(size_t align, size_t size);
 *       align a power of two (else NULL + EINVAL); any size.
 *   void *memalign(size_t align, size_t size);
 *       as aligned_alloc, but a non-power-of-two align is rounded up.
 *   void *valloc(size_t size);     page-aligned.
 *   void *pvalloc(size_t size);    page-aligned, size rounded up to whole
 *                                  pages (0 gives one page).
 *   size_t malloc_usable_size(void *p);
 *       bytes usable at p (at least the size asked for); 0 for NULL.
 *   int malloc_trim(size_t pad);
 *       flushes the calling thread's cache so empty spans return to the
 *       page heap; 1 if that gave pages back, else 0. pad is ignored.
 *   void free_sized(void *p, size_t size);
 *   void free_aligned_sized(void *p, size_t align, size_t size);
 *       C23: free p, allocated with size (and align); the size must match
 *       the object's size class, or goheap reports and aborts (declared
 *       by <stdlib.h> from glibc 2.39 on, so not here).
 *   void cfree(void *p);           old name of free (not declared).
 *   __libc_malloc, __libc_free, __libc_calloc, __libc_realloc,
 *   __libc_memalign: glibc's alternative names, the same functions.
 *   C++ operator new / new[] / delete / delete[], every replaceable form
 *   (plain, nothrow, sized, aligned): goheap's (see the top of this file).
 *
 * glibc's <malloc.h> extras, answered from goheap's statistics (glibc's
 * own arenas stay unused under goheap):
 *   struct mallinfo2 mallinfo2(void);
 *       arena: bytes of the small-object heap held from the OS; uordblks:
 *       bytes of its live objects; fordblks: arena - uordblks; hblks,
 *       hblkhd: live large objects and their bytes; keepcost: free bytes
 *       not yet returned to the OS; ordblks, smblks, usmblks, fsmblks: 0.
 *   struct mallinfo mallinfo(void);
 *       the same, each field saturated at INT_MAX (glibc's wrap around).
 *   void malloc_stats(void);
 *       goheap_print_stats(), not glibc's per-arena table.
 *   int malloc_info(int options, FILE *fp);
 *       glibc's XML (<malloc version="1">), one <size> element per used
 *       size class with its live objects. 0; -1 + EINVAL if options != 0
 *       or fp is NULL; -1 if writing failed.
 *   int mallopt(int param, int value);
 *       honours nothing: glibc's M_MXFAST, M_TRIM_THRESHOLD, M_TOP_PAD,
 *       M_MMAP_THRESHOLD, M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB,
 *       M_ARENA_TEST and M_ARENA_MAX are accepted and ignored, returning
 *       1, or 0 for a value glibc rejects (M_MXFAST outside 0..160,
 *       M_MMAP_THRESHOLD above 32 MiB or negative); any other param
 *       returns 0.
 */
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* ---- goheap's own functions -------------------------------------------- */

/* The allocation calls under goheap's names: the same functions as above,
 * for programs in which goheap is not the process's malloc (for example a
 * plugin that loads libgoheap with dlopen). */
void *goheap_malloc(size_t size);
void goheap_free(void *p);
void *goheap_calloc(size_t n, size_t size);
void *goheap_realloc(void *p, size_t size);
void *goheap_aligned_alloc(size_t align, size_t size);
size_t goheap_usable_size(void *p);

/* 1 if p lies in pages goheap has in use (a span of small objects or a
 * large object), else 0: "is this goheap's memory?". It does not say that
 * p is the start of a live object (free() checks that). Never aborts. */
int goheap_owns(const void *p);

/* Allocations and frees of one size class (Go's MemStats.BySize entry). */
struct goheap_bysize {
    uint32_t size;    /* largest object size of the class, bytes */
    uint64_t mallocs; /* cumulative objects allocated in the class */
    uint64_t frees;   /* cumulative objects freed in the class */
};

/* A snapshot of goheap's statistics, with Go's runtime.MemStats names.
 * All sizes are bytes. The same fields as the Rust goheap::MemStats. */
struct goheap_memstats {
    uint64_t alloc;         /* bytes of allocated objects (= heap_alloc) */
    uint64_t total_alloc;   /* cumulative bytes allocated */
    uint64_t sys;           /* bytes obtained from the OS, all uses:
                               heap, span structs, thread caches and all
                               other metadata (Rust: metrics().total) */
    uint64_t mallocs;       /* cumulative objects allocated */
    uint64_t frees;         /* cumulative objects freed */
    uint64_t heap_alloc;    /* bytes of allocated objects */
    uint64_t heap_sys;      /* bytes of heap obtained from the OS */
    uint64_t heap_idle;     /* bytes in idle (unused) spans */
    uint64_t heap_inuse;    /* bytes in in-use spans */
    uint64_t heap_released; /* bytes of physical memory returned to the OS */
    uint64_t heap_objects;  /* live objects (mallocs - frees) */
    uint64_t mspan_inuse;   /* bytes of span structures in use */
    uint64_t mspan_sys;     /* bytes obtained from the OS for spans */
    uint64_t mcache_inuse;  /* bytes of per-thread cache structures in use */
    uint64_t mcache_sys;    /* bytes obtained from the OS for caches */
    /* Per size class (index = class; small objects only, large ones are
     * counted in mallocs/frees but not here). */
    struct goheap_bysize by_size[GOHEAP_NUM_SIZE_CLASSES];
};

#if defined(__cplusplus) && __cplusplus >= 201103L
static_assert(sizeof(struct goheap_bysize) == 24, "goheap_bysize layout");
static_assert(sizeof(struct goheap_memstats) == 15 * 8 + GOHEAP_NUM_SIZE_CLASSES * 24, "goheap_memstats layout");
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct goheap_bysize) == 24, "goheap_bysize layout");
_Static_assert(sizeof(struct goheap_memstats) == 15 * 8 + GOHEAP_NUM_SIZE_CLASSES * 24, "goheap_memstats layout");
#endif

/* Fills *out with current statistics, without allocating and without
 * stopping other threads (counters of running threads are read as they
 * go). out == NULL is ignored. */
void goheap_memstats(struct goheap_memstats *out);

/* Prints the main statistics on stderr, without allocating: a line
 * "goheap: stats: mallocs=N frees=N heap_objects=N heap_alloc=N ..." (Go's
 * MemStats figures) and a line "goheap: memory: ..." (the memory classes,
 * the process's RSS, the limit, what the scavenger released). */
void goheap_print_stats(void);

/* Heap profiles (pprof format; read with `goheap profile FILE` or
 * `go tool pprof FILE`). goheap_write_heap_profile writes the profile of
 * the sampled allocations to path: 0, or -1 with errno set.
 * goheap_set_profile_rate sets the mean bytes between samples (1: every
 * allocation, 0: off; GOHEAP_PROFILE_RATE and GOHEAP_HEAP_PROFILE set it
 * from the environment) and returns the previous rate. */
int goheap_write_heap_profile(const char *path);
size_t goheap_set_profile_rate(size_t rate);

/* Checks goheap's bookkeeping against itself with every thread's cache held
 * still: every span has one owner, free lists hold handed-out slots of
 * their class, no page is lost. Prints each problem on stderr
 * ("goheap: heap check: ...") and returns how many there were (0: all
 * consistent). For tests and debugging: it walks the whole heap. */
size_t goheap_check_heap(void);

/* Returns the calling thread's cached free objects and spans to the shared
 * lists, so other threads can use them and empty spans go back to the page
 * heap (malloc_trim does the same). */
void goheap_flush_thread_cache(void);

/* Returns every free page to the OS now (after flushing the calling
 * thread's cache), whatever the scavenger's pacing; returns the bytes
 * released. Go's debug.FreeOSMemory. */
size_t goheap_free_os_memory(void);

/* Sets the soft memory limit on everything goheap maps, in bytes
 * (SIZE_MAX: none), and returns the previous one. Near the limit goheap
 * releases free pages before growing. Overrides GOHEAP_MEMORY_LIMIT and
 * the container's limit. */
size_t goheap_set_memory_limit(size_t bytes);

/* The soft memory limit in bytes (SIZE_MAX: none). */
size_t goheap_memory_limit(void);

/* hard != 0: allocations that would exceed the memory limit after
 * releasing every free page fail (NULL, errno ENOMEM) instead. */
void goheap_set_hard_limit(int hard);

/* on != 0 (the default): the background scavenger returns free memory to
 * the OS. Off, RSS is bounded only by the limit and goheap_free_os_memory. */
void goheap_set_background_scavenger(int on);

#ifdef __cplusplus
}
#endif

#endif /* GOHEAP_H */
