//! Real programs under `LD_PRELOAD=libgoheap.so`: each must print exactly
//! what it prints on the system allocator, and its exit statistics
//! (`GOHEAP_PRINT_STATS=1`) must show that goheap served its allocations.

mod common;

use common::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `make_cmd()` twice, on the system allocator and under goheap, and
/// checks that stdout, the exit status and stderr (less goheap's lines)
/// agree and that every process reported goheap statistics with at least
/// `min_mallocs` allocations for the busiest one. `make_cmd` gets a fresh
/// directory for each run.
fn compare(name: &str, min_mallocs: u64, make_cmd: impl Fn(&Path) -> Command) -> Run {
    let base_dir = work_dir(&format!("preload-{name}/system"));
    let mut cmd = make_cmd(&base_dir);
    cmd.env_remove("LD_PRELOAD")
        .env_remove("GOHEAP_PRINT_STATS");
    let base = run(cmd, LIMIT);
    base.assert_ok(&format!("{name} on the system allocator"));

    let dir = work_dir(&format!("preload-{name}/goheap"));
    let mut cmd = make_cmd(&dir);
    cmd.env("LD_PRELOAD", lib_so())
        .env("GOHEAP_PRINT_STATS", "1");
    let r = run(cmd, LIMIT);
    r.assert_ok(&format!("{name} under goheap"));
    assert!(
        r.stdout == base.stdout,
        "{name}: stdout differs under goheap:\n{}\n--- vs system:\n{}",
        r.stdout,
        base.stdout
    );
    let own: String = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("goheap: "))
        .fold(String::new(), |mut s, l| {
            let _ = writeln!(s, "{l}");
            s
        });
    let base_err: String = base.stderr.lines().fold(String::new(), |mut s, l| {
        let _ = writeln!(s, "{l}");
        s
    });
    assert_eq!(own, base_err, "{name}: stderr differs");
    let mallocs = r.stats_mallocs();
    assert!(
        !mallocs.is_empty(),
        "{name}: no goheap statistics on stderr: {}",
        r.stderr
    );
    let max = mallocs.iter().copied().max().unwrap_or(0);
    assert!(
        max >= min_mallocs,
        "{name}: goheap served only {max} allocations: {mallocs:?}"
    );
    r
}

/// The real interpreter behind `python3` (not a pyenv shim script).
fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("run python3");
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !p.is_empty(),
        "python3 did not print its executable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(p)
}

#[test]
fn python_with_pythonmalloc_malloc() {
    if !need("python3") {
        return;
    }
    let py = python();
    let script = work_dir("preload-python").join("work.py");
    std::fs::write(
        &script,
        r#"
import collections, hashlib, json, random, re, threading
random.seed(1)
d = {}
for i in range(100000):
    d.setdefault("k%d" % random.randrange(30000), []).append(i)
s = json.dumps(d, sort_keys=True)
assert json.loads(s) == d
words = ["".join(random.choice("abcdefghij") for _ in range(random.randrange(1, 12))) for _ in range(60000)]
c = collections.Counter(words)
print(len(d), len(s), hashlib.sha256(s.encode()).hexdigest())
print(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
print(sorted(words)[:5], len(set(words)))
big = [bytearray(random.randrange(1, 300000)) for _ in range(100)]
print(sum(map(len, big)))
print(len(re.findall(r"a+b", " ".join(words))))
out = []
def work(n):
    out.append(sum(len(str(x)) for x in range(n)))
ts = [threading.Thread(target=work, args=(20000 * (i + 1),)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(sorted(out))
"#,
    )
    .expect("write script");
    compare("python", 100_000, |_| {
        let mut c = Command::new(&py);
        c.arg(&script)
            .env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0");
        c
    });
}

#[test]
fn python_fork_from_threads() {
    if !need("python3") {
        return;
    }
    let py = python();
    let script = work_dir("preload-python-fork").join("fork.py");
    std::fs::write(
        &script,
        r#"
import multiprocessing as mp, os, threading
def churn(stop):
    while not stop.is_set():
        x = [bytes(1000) for _ in range(100)]
def f(i):
    return sum(len(str(j)) for j in range(20000 + i))
if __name__ == "__main__":
    mp.set_start_method("fork")
    stop = threading.Event()
    ts = [threading.Thread(target=churn, args=(stop,)) for _ in range(3)]
    for t in ts: t.start()
    with mp.Pool(4) as p:
        print(sum(p.map(f, range(100))))
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            [bytes(5000) for _ in range(1000)]
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    stop.set()
    for t in ts: t.join()
    print("ok")
"#,
    )
    .expect("write script");
    compare("python-fork", 10_000, |_| {
        let mut c = Command::new(&py);
        c.arg(&script).env("PYTHONMALLOC", "malloc");
        c
    });
}

/// A program whose last thread leaves through `pthread_exit` ends then, as
/// on glibc's allocator (status 0, atexit handlers run): goheap's
/// background thread must not keep it alive. Both ways it happens: `main`
/// calling `pthread_exit`, and a child forked from a worker thread whose
/// start routine returns (CPython's `test_threading` waited 300 s for such
/// a child).
#[test]
fn the_last_threads_pthread_exit_ends_the_process() {
    if !need("cc") {
        return;
    }
    let bin = work_dir("preload-last-thread").join("last_thread");
    let mut c = cc(false);
    c.arg(c_src("last_thread.c")).arg("-o").arg(&bin);
    compile(c);
    for mode in ["main-exit", "fork-thread"] {
        let mut base = Command::new(&bin);
        base.arg(mode).env_remove("LD_PRELOAD");
        let base = run(base, Duration::from_secs(20));
        base.assert_ok(&format!("last_thread {mode} on the system allocator"));
        let mut cmd = Command::new(&bin);
        cmd.arg(mode).env("LD_PRELOAD", lib_so());
        let r = run(cmd, Duration::from_secs(20));
        assert!(
            !r.timed_out,
            "last_thread {mode} never ended under goheap:\n{}",
            r.stdout
        );
        r.assert_ok(&format!("last_thread {mode} under goheap"));
        assert_eq!(r.stdout, base.stdout, "last_thread {mode}");
    }
}

#[test]
fn cxx_containers() {
    if !need("c++") {
        return;
    }
    let bin = work_dir("preload-cxx").join("containers");
    let mut c = cc(true);
    c.arg(c_src("containers.cc")).arg("-o").arg(&bin);
    compile(c);
    compare("cxx", 50_000, |_| Command::new(&bin));
}

/// A deterministic text file of `lines` lines of words and numbers.
fn text_file(path: &Path, lines: usize) {
    let mut s = String::with_capacity(lines * 40);
    let mut x: u64 = 88172645463325252;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = x % 100_003;
        let _ = writeln!(
            s,
            "w{:x}{} {} field{} {}",
            w,
            "z".repeat((x >> 20) as usize % 20),
            x % 1000,
            i % 97,
            x >> 40
        );
    }
    std::fs::write(path, s).expect("write text file");
}

#[test]
fn sort_large_file() {
    if !need("sort") {
        return;
    }
    let input = work_dir("preload-sort").join("input.txt");
    text_file(&input, 300_000);
    compare("sort", 100, |dir| {
        let mut c = Command::new("sort");
        // A small buffer makes sort spill to temporary files and merge.
        c.args(["--parallel=2", "-S", "2M", "-T"])
            .arg(dir)
            .arg("-k2,2n")
            .arg("-k1,1")
            .arg(&input);
        c.env("LC_ALL", "C");
        c
    });
}

#[test]
fn gcc_compiles_a_file() {
    if !need("gcc") {
        return;
    }
    let r = compare("gcc", 1000, |dir| {
        let mut c = Command::new("gcc");
        c.args(["-O2", "-c", "-pthread"])
            .arg("-I")
            .arg(include_dir())
            .arg(c_src("api.c"))
            .arg("-o");
        c.arg(dir.join("api.o"));
        c
    });
    // gcc runs cc1 and as, each with its own statistics line.
    assert!(r.stats_mallocs().len() >= 3, "{}", r.stderr);
    let a = std::fs::read(work_dir("preload-gcc/system").join("api.o")).expect("object");
    let b = std::fs::read(work_dir("preload-gcc/goheap").join("api.o")).expect("object");
    assert!(a == b, "gcc produced a different object file under goheap");
}

#[test]
fn sqlite3_queries() {
    if !need("sqlite3") {
        return;
    }
    let sql = "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);\n\
               WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000)\n\
               INSERT INTO t SELECT x, printf('%08d-%s', x * 7919 % 100003, substr('abcdefghij', 1 + x % 10)), x * 1.5 FROM n;\n\
               CREATE INDEX tb ON t(b);\n\
               SELECT count(*), sum(c), min(b), max(b) FROM t;\n\
               SELECT b FROM t ORDER BY b DESC LIMIT 5;\n\
               SELECT length(group_concat(b, ',')) FROM t;\n\
               SELECT substr(b, 10), count(*) FROM t GROUP BY substr(b, 10) ORDER BY 1;\n\
               DELETE FROM t WHERE a % 3 = 0; VACUUM;\n\
               SELECT count(*), total(c) FROM t;\n";
    let file = work_dir("preload-sqlite").join("q.sql");
    std::fs::write(&file, sql).expect("write sql");
    compare("sqlite", 10_000, |dir| {
        let mut c = Command::new("sqlite3");
        c.arg(dir.join("db.sqlite"))
            .arg(format!(".read {}", file.display()));
        let _ = std::fs::remove_file(dir.join("db.sqlite"));
        c
    });
}

#[test]
fn git_commit_and_log() {
    if !(need("sh") && need("git")) {
        return;
    }
    compare("git", 1000, |dir| {
        let repo = dir.join("repo");
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&repo).expect("repo dir");
        for i in 0..200 {
            let mut s = String::new();
            for j in 0..(i % 50 + 1) {
                let _ = writeln!(s, "file {i} line {j}");
            }
            std::fs::write(repo.join(format!("f{i:03}.txt")), s).expect("write file");
        }
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(
                "set -e; git init -q -b main; git add .; git commit -q -m first; \
                 for i in 1 2 3; do echo change $i >> f007.txt; git commit -q -am \"change $i\"; done; \
                 git log --stat --format='%H %s' | head -40; git rev-list --count HEAD; \
                 git gc -q; git count-objects -v | grep -v size; git diff HEAD~3 --stat",
            )
            .current_dir(&repo)
            .env("HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z");
        c
    });
}

#[test]
fn awk_aggregates() {
    if !need("awk") {
        return;
    }
    let input = work_dir("preload-awk").join("input.txt");
    text_file(&input, 100_000);
    compare("awk", 1000, |_| {
        let mut c = Command::new("awk");
        c.arg(
            "{ c[$1]++; s += length($0); n = split($0, parts, \"z\"); t += n; g = $0; gsub(/[0-9]/, \"#\", g); u[g] = 1 } \
             END { k = 0; for (x in c) k++; m = 0; for (x in u) m++; print k, s, t, m }",
        )
        .arg(&input)
        .env("LC_ALL", "C");
        c
    });
}

#[test]
fn tar_and_gzip_pipeline() {
    if !(need("sh") && need("tar") && need("gzip") && need("cksum")) {
        return;
    }
    let src = work_dir("preload-tar").join("src");
    std::fs::create_dir_all(&src).expect("src dir");
    for i in 0..20 {
        text_file(&src.join(format!("part{i}.txt")), 2000 + i * 100);
    }
    compare("tar", 10, |dir| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "set -e; tar -C {src} --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . \
                 | gzip -n -6 > {out}; gzip -dc {out} | tar -tf - | wc -l; gzip -dc {out} | cksum; cksum < {out}",
                src = src.display(),
                out = dir.join("out.tgz").display()
            ))
            .env("LC_ALL", "C");
        c
    });
}
