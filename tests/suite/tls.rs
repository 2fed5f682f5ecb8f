//! A target whose certificate is not trusted fails up front, naming the
//! certificate problem; with `tls_verify = false` the run goes on and every
//! report says verification was off. The HTTPS target is `openssl s_server`
//! on loopback with a self-signed certificate made by the test.

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let made = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        made.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// The certificate a test's server presents.
#[derive(PartialEq)]
enum Cert {
    /// A server's own, valid today.
    Fresh,
    /// Valid for one day in 2020.
    Expired,
    /// What old internal servers still present: X.509 version 1, a 1024-bit
    /// RSA key, signed with SHA-1.
    Old,
}

/// A self-signed HTTPS server on loopback with such a certificate: its base URL.
fn self_signed_server(dir: &std::path::Path, kind: Cert) -> (Server, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if kind == Cert::Old {
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:1024",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "req.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        // Without extensions, `x509 -req` makes a version 1 certificate.
        openssl(
            dir,
            &[
                "x509", "-req", "-in", "req.csr", "-signkey", "key.pem", "-days", "1", "-sha1",
                "-out", "cert.pem",
            ],
        );
    } else if kind == Cert::Expired {
        // `openssl ca` is the one way to set past dates in OpenSSL 3.0.
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca=own\n[own]\ndir=.\ndatabase=./index.txt\nserial=./serial\nnew_certs_dir=.\n\
             default_md=sha256\npolicy=any\ncopy_extensions=copy\nunique_subject=no\n[any]\ncommonName=supplied\n\
             [req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=127.0.0.1\n\
             [leaf]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        openssl(
            dir,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out",
                "req.csr", "-config", "ca.cnf",
            ],
        );
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-selfsign",
                "-keyfile",
                "key.pem",
                "-in",
                "req.csr",
                "-out",
                "cert.pem",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-extensions",
                "leaf",
            ],
        );
    } else {
        // A server's certificate (not an authority's), as a self-signed site has.
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ],
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
            // OpenSSL's default security level refuses a 1024-bit key.
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let ready_by = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < ready_by, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("https://127.0.0.1:{port}"))
}

fn scenario(dir: &std::path::Path, url: &str, verify: bool) -> std::path::PathBuf {
    scenario_file(
        dir,
        if verify {
            "tls-verified"
        } else {
            "tls-unverified"
        },
        &format!(
            r#"[target]
base_url = "{url}"
tls_verify = {verify}
timeout = "5s"

[load]
model = "closed"
[[load.stages]]
users = 1
hold = "2s"

[[personas]]
name = "visitor"
steps = [{{ request = "home", think = "200ms" }}]

[requests.home]
path = "/"
"#
        ),
    )
}

/// `surge run` of the test's scenario against `url`, its bundle under `out`.
fn surge_run(
    dir: &std::path::Path,
    url: &str,
    verify: bool,
    out: &std::path::Path,
) -> std::process::Output {
    Command::new(surge_bin())
        .args([
            "run",
            scenario(dir, url, verify).to_str().unwrap(),
            "--no-progress",
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn an_untrusted_certificate_fails_up_front_unless_verification_is_off() {
    let _engine = engine_lock_blocking();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = self_signed_server(dir.path(), Cert::Fresh);
    let out = dir.path().join("out");
    let run = |verify: bool| surge_run(dir.path(), &url, verify, &out);
    let refused = run(true);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("its certificate is signed by an authority this machine does not trust"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tls_verify = false"),
        "says how to accept it: {stderr}"
    );
    assert!(!out.exists(), "no load was sent");

    let accepted = run(false);
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(
        stdout.contains("WARNING: TLS certificates were not verified"),
        "{stdout}"
    );
    let bundle = only_bundle(&out);
    let r = surge::bundle::read_results(&bundle).unwrap();
    assert!(!r.tls_verify);
    assert!(r.overall.ok > 0);
    for file in ["summary.md", "report.html"] {
        let text = std::fs::read_to_string(bundle.join(file)).unwrap();
        assert!(text.contains("not verified"), "{file} says so");
    }
}

#[test]
fn an_expired_certificate_is_named_as_expired() {
    let _engine = engine_lock_blocking();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = self_signed_server(dir.path(), Cert::Expired);
    let out = surge_run(dir.path(), &url, true, &dir.path().join("out"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("its certificate has expired"), "{stderr}");
}

/// With verification off, surge accepts what reqwest's own "accept invalid
/// certificates" accepts: an old server's version 1 certificate with a
/// 1024-bit key, signed with SHA-1. With it on, that server is refused up
/// front.
#[test]
fn an_old_certificate_is_accepted_with_verification_off_and_refused_with_it_on() {
    let _engine = engine_lock_blocking();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = self_signed_server(dir.path(), Cert::Old);
    for verify in [false, true] {
        let out = dir.path().join(format!("out-{verify}"));
        let ran = surge_run(dir.path(), &url, verify, &out);
        let said = format!(
            "{}\n{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
        if verify {
            assert_eq!(ran.status.code(), Some(2), "{said}");
            assert!(!out.exists(), "no load was sent: {said}");
            continue;
        }
        assert_eq!(ran.status.code(), Some(0), "{said}");
        let bundle = only_bundle(&out);
        let r = surge::bundle::read_results(&bundle).unwrap();
        assert!(r.overall.ok > 0 && r.overall.failed == 0, "{said}");
    }
}
