//! HTTP clients of a run: what every client shares, and what each keeps.
//!
//! Shared: one TLS configuration per certificate rule, built once per
//! process. Its verifier holds the machine's whole root store, about 100 KB;
//! built per client, as reqwest does by default, it was two thirds of each
//! virtual user's memory (bench/RESULTS.md, "Where the per-user memory
//! goes").
//!
//! Each client's own: its cookie jar, its connections, and its TLS session
//! cache. Users do not resume each other's TLS sessions, because a browser
//! does not either, and a full handshake per new user is load the balancer
//! must carry.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// TLS sessions a client remembers for resumption: one server's worth.
/// Its own per client, so no user resumes another's session.
const SESSIONS_PER_CLIENT: usize = 8;

/// The settings every HTTP client of a run shares (virtual users, read-backs,
/// the checks before the load): the scenario's timeout and certificate
/// rule, gzip, surge's user agent, proxies as the environment says, and the
/// one shared TLS configuration.
pub fn client_builder(target: &crate::scenario::TargetSpec) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
        .timeout(target.timeout)
        .gzip(true);
    match shared_tls(target.tls_verify) {
        Ok(config) => {
            let mut own = config.as_ref().clone();
            own.resumption = Resumption::in_memory_sessions(SESSIONS_PER_CLIENT);
            builder.tls_backend_preconfigured(own)
        }
        Err(why) => {
            // reqwest builds its own, and fails or not as it would have: the
            // run is neither worse off nor silently different.
            tracing::warn!("cannot share one TLS configuration between users: {why}");
            builder.danger_accept_invalid_certs(!target.tls_verify)
        }
    }
}

/// The process's TLS configuration for a certificate rule, built on first use.
fn shared_tls(verify: bool) -> Result<Arc<ClientConfig>, String> {
    static VERIFIED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static UNVERIFIED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let cell = if verify { &VERIFIED } else { &UNVERIFIED };
    cell.get_or_init(|| tls_config(verify).map(Arc::new))
        .clone()
}

/// What reqwest 0.13 would build for one client by default: the installed
/// crypto provider (else aws-lc-rs, reqwest's own default), TLS 1.3 and 1.2,
/// the platform's verifier (or, with verification off, one that accepts
/// anything, as reqwest's does), ALPN for HTTP/2 and HTTP/1.1. Only the
/// session cache differs: each client's own, and small.
fn tls_config(verify: bool) -> Result<ClientConfig, String> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous();
    let verifier: Arc<dyn ServerCertVerifier> = if verify {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("the platform's certificate verifier: {e}"))?,
        )
    } else {
        Arc::new(AnyCertificate)
    };
    let mut config = builder
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `tls_verify = false`: anything the server presents is accepted (every
/// report says so), exactly as reqwest's own `danger_accept_invalid_certs`
/// does: neither the certificate nor the handshake's signature is checked,
/// and every signature scheme is offered, SHA-1 included. The old,
/// self-signed internal targets verification is turned off for often have
/// X.509 v1 certificates, short RSA keys or SHA-1 signatures, which a
/// checking verifier would refuse.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::ECDSA_NISTP521_SHA512,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::ED25519,
            SignatureScheme::ED448,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both rules build, once each: every client of the process shares the
    /// one verifier (and with it the root store), not a copy of it.
    #[test]
    fn every_client_shares_one_verifier_per_rule() {
        let verified = shared_tls(true).expect("the platform verifier builds");
        let again = shared_tls(true).unwrap();
        assert!(Arc::ptr_eq(&verified, &again));
        let unverified = shared_tls(false).unwrap();
        assert!(!Arc::ptr_eq(&verified, &unverified));
        assert_eq!(
            verified.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // Clients build on either rule (with their own session caches).
        for verify in [true, false] {
            let scenario = crate::scenario::sample::scenario(
                &format!("base_url = 'https://127.0.0.1:1'\ntls_verify = {verify}"),
                crate::scenario::sample::ONE_USER,
            );
            client_builder(&scenario.target)
                .build()
                .expect("a client on the shared configuration");
        }
    }
}
