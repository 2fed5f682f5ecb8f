//! Each Kubernetes test in a network namespace of its own. The control
//! plane, the node double, the pods it runs, the balancer and surge all
//! live in it: pods get addresses such as 10.244.0.12 on the namespace's
//! own `lo` (the API server refuses loopback addresses in EndpointSlices),
//! and nothing a test sends can leave it.
//!
//! A network namespace belongs to a thread; threads and processes started
//! from it inherit it. So a test enters its namespace first, then builds
//! its runtime (whose worker threads start inside), then starts everything
//! else. The namespace goes when the last process in it ends.

use std::future::Future;
use std::net::Ipv4Addr;
use std::process::Command;

/// Runs `test` in a fresh network namespace, on a runtime built inside it.
pub fn run<F: Future>(test: impl FnOnce() -> F) -> F::Output {
    enter();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime builds")
        .block_on(test())
}

/// Moves this thread into a new network namespace with its loopback up.
fn enter() {
    // SAFETY: unshare(2) takes no pointers; CLONE_NEWNET changes only the
    // calling thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) failed ({}): the Kubernetes tests need root \
         (CAP_SYS_ADMIN) for a network namespace of their own",
        std::io::Error::last_os_error()
    );
    ip(&["link", "set", "lo", "up"]).unwrap();
}

/// Gives this namespace's `lo` the address `address` (a pod's).
pub fn add_address(address: Ipv4Addr) -> Result<(), String> {
    ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"])
}

/// Takes a pod's address away again.
pub fn remove_address(address: Ipv4Addr) -> Result<(), String> {
    ip(&["addr", "del", &format!("{address}/32"), "dev", "lo"])
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Makes a process the test starts die with it: SIGKILL when the thread
/// that started it ends, even if nothing drops its handle (a test process
/// killed, a panic mid-way).
pub fn dies_with_test(command: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches nothing of the
    // parent's.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
