//! The container memory limit, read from fixture cgroup trees.

use std::path::PathBuf;

fn fixture(name: &str) -> (String, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(name);
    let root = dir.join("sys").to_str().unwrap().to_owned();
    let membership = dir.join("self.cgroup").to_str().unwrap().to_owned();
    (root, membership)
}

fn limit(name: &str) -> Option<usize> {
    let (root, membership) = fixture(name);
    goheap::cgroup_memory_limit(root.as_bytes(), membership.as_bytes())
}

#[test]
fn v2_limit_of_the_process_cgroup() {
    assert_eq!(limit("v2"), Some(512 << 20));
}

#[test]
fn v2_max_means_no_limit() {
    assert_eq!(limit("v2max"), None);
}

#[test]
fn v2_smallest_limit_on_the_path_wins() {
    // inner: 1 GiB, its parent: 128 MiB: the kernel enforces the parent's.
    assert_eq!(limit("v2nested"), Some(128 << 20));
}

#[test]
fn v1_memory_controller() {
    assert_eq!(limit("v1"), Some(256 << 20));
}

#[test]
fn v1_unlimited_is_no_limit() {
    assert_eq!(limit("v1unlimited"), None);
}

#[test]
fn missing_files_are_no_limit() {
    assert_eq!(limit("missing"), None);
    assert_eq!(
        goheap::cgroup_memory_limit(b"/nonexistent", b"/nonexistent/cgroup"),
        None
    );
}

#[test]
fn process_picks_up_the_container_limit_and_env_overrides_it() {
    // In a child process, so the environment is its own.
    let exe = std::env::current_exe().unwrap();
    if std::env::var_os("GOHEAP_CGROUP_CHILD").is_some() {
        // Touch the heap so it initialises and reads its configuration.
        let p = goheap::raw::alloc(100, 8);
        assert!(!p.is_null());
        let m = goheap::metrics();
        println!("limit={} source={:?}", m.memory_limit, m.limit_source);
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup/v2");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "process_picks_up_the_container_limit_and_env_overrides_it",
            "--nocapture",
        ])
        .env("GOHEAP_CGROUP_CHILD", "1")
        .env("GOHEAP_CGROUP_ROOT", &dir)
        .env_remove("GOHEAP_MEMORY_LIMIT");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let out = run(&[]);
    assert!(
        out.contains(&format!("limit={} source=Cgroup", 512u64 << 20)),
        "{out}"
    );
    let out = run(&[("GOHEAP_MEMORY_LIMIT", "64MiB")]);
    assert!(
        out.contains(&format!("limit={} source=Env", 64u64 << 20)),
        "{out}"
    );
}
