//! The C API, tested from C and C++: `tests/c/api.c` (every entry point
//! with edge cases, misuse), `tests/c/containers.cc` (operator new/delete),
//! a `dlopen`ed plugin, the static library and the header.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `api.c` linked with `-lgoheap` (the shared library).
fn api() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = work_dir("api").join("api");
        let mut c = cc(false);
        c.arg(c_src("api.c")).arg("-o").arg(&out);
        link_goheap(&mut c);
        compile(c);
        out
    })
}

/// `api.c` linked with `libgoheap.a`.
fn api_static() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = work_dir("api-static").join("api-static");
        let mut c = cc(false);
        c.arg(c_src("api.c"))
            .arg("-o")
            .arg(&out)
            .arg(lib_dir().join("libgoheap.a"));
        // What rustc's `--print native-static-libs` asks for.
        c.args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]);
        compile(c);
        out
    })
}

fn run_api(bin: &PathBuf, case: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.arg(case).env_remove("LD_PRELOAD");
    for &(k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, LIMIT)
}

fn case(name: &str) {
    run_api(api(), name, &[]).assert_ok(name);
}

#[test]
fn basic() {
    if !need("cc") {
        return;
    }
    case("basic");
}

#[test]
fn size_class_boundaries() {
    if !need("cc") {
        return;
    }
    case("classes");
}

#[test]
fn alignments_1_to_1mib() {
    if !need("cc") {
        return;
    }
    case("align");
}

#[test]
fn huge_sizes_fail_with_enomem() {
    if !need("cc") {
        return;
    }
    case("huge");
}

#[test]
fn calloc_overflow_and_zeroing() {
    if !need("cc") {
        return;
    }
    case("calloc");
}

#[test]
fn realloc_family() {
    if !need("cc") {
        return;
    }
    case("realloc");
}

#[test]
fn threads_free_each_others_memory() {
    if !need("cc") {
        return;
    }
    case("threads");
}

#[test]
fn fork_from_threaded_parent() {
    if !need("cc") {
        return;
    }
    case("fork");
}

#[test]
fn trim_and_flush() {
    if !need("cc") {
        return;
    }
    case("trim");
}

#[test]
fn memstats_and_print_stats() {
    if !need("cc") {
        return;
    }
    let r = run_api(api(), "stats", &[]);
    r.assert_ok("stats");
    let m = r.stats_mallocs();
    assert_eq!(
        m.len(),
        1,
        "one stats line from goheap_print_stats:\n{}",
        r.stderr
    );
    assert!(m[0] > 100, "{}", r.stderr);
}

#[test]
fn static_library() {
    if !need("cc") {
        return;
    }
    for name in ["basic", "classes", "threads", "fork", "stats"] {
        run_api(api_static(), name, &[]).assert_ok(name);
    }
    // The static library's malloc is the process's malloc.
    let r = run_api(api_static(), "double_free", &[]);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.stderr);
}

#[test]
fn options_verbose_and_print_stats() {
    if !need("cc") {
        return;
    }
    let r = run_api(
        api(),
        "basic",
        &[("GOHEAP_VERBOSE", "1"), ("GOHEAP_PRINT_STATS", "1")],
    );
    r.assert_ok("basic with options");
    let first = r.stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("goheap: libgoheap ") && first.contains("GOHEAP_PRINT_STATS=1"),
        "{}",
        r.stderr
    );
    let m = r.stats_mallocs();
    assert_eq!(m.len(), 1, "{}", r.stderr);
    assert!(m[0] > 1000, "{}", r.stderr);
    // Off by default.
    let r = run_api(api(), "basic", &[]);
    assert!(!r.stderr.contains("goheap:"), "{}", r.stderr);
    let r = run_api(
        api(),
        "basic",
        &[("GOHEAP_PRINT_STATS", "0"), ("GOHEAP_VERBOSE", "no")],
    );
    assert!(!r.stderr.contains("goheap:"), "{}", r.stderr);
}

/// Runs a misuse case: it must die of SIGABRT with a report on stderr that
/// names the pointer it printed, and contains `expect`.
fn misuse(bin: &PathBuf, name: &str, expect: &str) {
    let r = run_api(bin, name, &[]);
    let ptr = r.stdout.lines().next().unwrap_or("").trim().to_string();
    assert!(
        ptr.starts_with("0x"),
        "{name}: no pointer printed; stdout {:?} stderr {:?}",
        r.stdout,
        r.stderr
    );
    assert_eq!(
        r.signal(),
        Some(libc::SIGABRT),
        "{name}: status {:?}, stderr {}",
        r.status,
        r.stderr
    );
    assert!(!r.stdout.contains("survived"), "{name}");
    assert!(
        r.stderr.contains("goheap: fatal error: "),
        "{name}: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&ptr),
        "{name}: report does not name {ptr}: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(expect),
        "{name}: report lacks {expect:?}: {}",
        r.stderr
    );
}

#[test]
fn free_of_stack_address_aborts() {
    if !need("cc") {
        return;
    }
    misuse(api(), "free_stack", "not a pointer goheap allocated");
}

#[test]
fn free_of_static_data_aborts() {
    if !need("cc") {
        return;
    }
    misuse(api(), "free_static", "not a pointer goheap allocated");
}

#[test]
fn free_of_interior_pointer_aborts() {
    if !need("cc") {
        return;
    }
    misuse(api(), "free_interior", "middle of a 64-byte object");
}

#[test]
fn double_free_aborts() {
    if !need("cc") {
        return;
    }
    misuse(api(), "double_free", "double free");
    misuse(api(), "double_free_later", "double free");
    misuse(api(), "double_free_large", "free of");
}

#[test]
fn realloc_and_usable_size_of_foreign_pointer_abort() {
    if !need("cc") {
        return;
    }
    misuse(api(), "realloc_foreign", "realloc of");
    misuse(api(), "usable_foreign", "usable size of");
}

#[test]
fn ignore_invalid_free_option() {
    if !need("cc") {
        return;
    }
    let r = run_api(
        api(),
        "ignored_frees",
        &[("GOHEAP_IGNORE_INVALID_FREE", "1")],
    );
    r.assert_ok("ignored_frees");
    assert!(r.stdout.contains("survived"));
    let ptr = r.stdout.lines().next().unwrap_or("").trim().to_string();
    let warnings: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| l.contains("ignoring free"))
        .collect();
    assert_eq!(warnings.len(), 1, "said once: {}", r.stderr);
    assert!(warnings[0].contains(&ptr), "{}", r.stderr);
    // Without the option the same program aborts.
    let r = run_api(api(), "ignored_frees", &[]);
    assert_eq!(r.signal(), Some(libc::SIGABRT));
    // With it, memory goheap owns is still checked.
    let r = run_api(
        api(),
        "free_interior",
        &[("GOHEAP_IGNORE_INVALID_FREE", "1")],
    );
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.stderr);
    let r = run_api(api(), "double_free", &[("GOHEAP_IGNORE_INVALID_FREE", "1")]);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.stderr);
}

/// `containers.cc` linked with `-lgoheap`.
fn containers_linked() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = work_dir("containers-linked").join("containers");
        let mut c = cc(true);
        c.arg("-DGOHEAP_LINKED")
            .arg(c_src("containers.cc"))
            .arg("-o")
            .arg(&out);
        link_goheap(&mut c);
        compile(c);
        out
    })
}

#[test]
fn cxx_operator_new_delete() {
    if !need("c++") {
        return;
    }
    let mut cmd = Command::new(containers_linked());
    cmd.arg("check").env_remove("LD_PRELOAD");
    let r = run(cmd, LIMIT);
    r.assert_ok("containers check");
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
}

/// A failed throwing `new` that nobody catches: `std::bad_alloc` reaches
/// libstdc++'s terminate handler (goheap threw it; it did not abort by
/// itself).
#[test]
fn cxx_uncaught_bad_alloc_terminates() {
    if !need("c++") {
        return;
    }
    let mut cmd = Command::new(containers_linked());
    cmd.arg("throw").env_remove("LD_PRELOAD");
    let r = run(cmd, LIMIT);
    assert_eq!(
        r.signal(),
        Some(libc::SIGABRT),
        "{:?} {}",
        r.status,
        r.stderr
    );
    assert!(!r.stdout.contains("survived"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("terminate called after throwing an instance of 'std::bad_alloc'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("goheap: fatal error"), "{}", r.stderr);
}

#[test]
fn dlopen_a_library_linked_with_goheap() {
    if !need("cc") {
        return;
    }
    let dir = work_dir("dlopen");
    let plugin = dir.join("libplugin.so");
    let mut c = cc(false);
    c.args(["-shared", "-fPIC"])
        .arg(c_src("plugin.c"))
        .arg("-o")
        .arg(&plugin);
    link_goheap(&mut c);
    compile(c);
    let host = dir.join("host");
    let mut c = cc(false);
    c.arg(c_src("dlopen_host.c"))
        .arg("-o")
        .arg(&host)
        .arg("-ldl");
    compile(c);
    let mut cmd = Command::new(&host);
    cmd.arg(&plugin).env_remove("LD_PRELOAD");
    let r = run(cmd, LIMIT);
    r.assert_ok("dlopen host");
    assert_eq!(r.stdout.trim(), "ok");
    // libgoheap is marked NODELETE: dlclose keeps it, and its exit report
    // comes at exit.
    let mut cmd = Command::new(&host);
    cmd.arg(&plugin)
        .env_remove("LD_PRELOAD")
        .env("GOHEAP_PRINT_STATS", "1");
    let r = run(cmd, LIMIT);
    r.assert_ok("dlopen host with GOHEAP_PRINT_STATS");
    let m = r.stats_mallocs();
    assert_eq!(m.len(), 1, "{}", r.stderr);
    assert!(m[0] >= 16000, "{}", r.stderr);
}

#[test]
fn header_compiles_in_c_and_cxx_dialects() {
    if !(need("cc") && need("c++")) {
        return;
    }
    let dir = work_dir("header");
    let src = dir.join("h.c");
    std::fs::write(
        &src,
        "#include \"goheap.h\"\nint main(void) {\n  struct goheap_memstats m;\n  goheap_memstats(&m);\n  \
         goheap_print_stats();\n  goheap_flush_thread_cache();\n  return m.by_size[1].size == 8 ? 0 : 1;\n}\n",
    )
    .expect("write h.c");
    let srcxx = dir.join("h.cc");
    std::fs::copy(&src, &srcxx).expect("copy");
    let dialects: [(&str, &PathBuf, &str); 5] = [
        ("cc", &src, "-std=c99"),
        ("cc", &src, "-std=c11"),
        ("cc", &src, "-std=gnu17"),
        ("c++", &srcxx, "-std=c++98"),
        ("c++", &srcxx, "-std=c++17"),
    ];
    for (i, (compiler, s, std)) in dialects.iter().enumerate() {
        let out = dir.join(format!("h{i}"));
        let mut c = Command::new(compiler);
        c.args([*std, "-Wall", "-Wextra", "-pedantic", "-Werror"])
            .arg("-I")
            .arg(include_dir())
            .arg(s);
        c.arg("-o").arg(&out);
        link_goheap(&mut c);
        compile(c);
        let r = run(Command::new(&out), LIMIT);
        r.assert_ok(std);
        assert_eq!(r.stats_mallocs().len(), 1);
    }
}

/// The shared library takes one word of static TLS (the thread's cache
/// pointer, read with the initial-exec model: one `TPOFF` relocation), so
/// `dlopen` needs only 8 bytes of glibc's static-TLS surplus (the dlopen
/// tests load it so); its other thread-locals stay dynamic; and it is
/// never unloaded (`NODELETE`).
#[test]
fn shared_library_uses_one_word_of_static_tls_and_is_never_unloaded() {
    if !need("readelf") {
        return;
    }
    let out = Command::new("readelf")
        .arg("-rdW")
        .arg(lib_so())
        .output()
        .expect("run readelf");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    if cfg!(target_arch = "x86_64") {
        let tpoff: Vec<&str> = text.lines().filter(|l| l.contains("TPOFF")).collect();
        assert_eq!(
            tpoff.len(),
            1,
            "expected one initial-exec TLS relocation (the cache pointer), found {tpoff:?}"
        );
    }
    assert!(
        text.contains("NODELETE"),
        "libgoheap.so is not marked NODELETE (-z nodelete)"
    );
    assert!(
        text.contains("R_X86_64_DTPMOD64") || !cfg!(target_arch = "x86_64"),
        "no dynamic TLS relocation found"
    );
}
