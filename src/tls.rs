//! TLS for `sslmode`, with rustls. Modes mean what they mean in libpq:
//! prefer/require encrypt without checking the certificate (unless a root certificate is
//! given), verify-ca checks the chain, verify-full also checks the host name.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    Chain,
    Full,
}

pub fn parse_sslmode(mode: &str, has_root_cert: bool) -> Result<(SslMode, Verify), String> {
    Ok(match mode {
        "disable" => (SslMode::Disable, Verify::None),
        "allow" | "prefer" => (SslMode::Prefer, Verify::None),
        "require" if has_root_cert => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::None),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => {
            return Err(format!(
                "invalid sslmode value: \"{other}\" (expected disable, allow, prefer, require, verify-ca or verify-full)"
            ))
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// tokio-postgres asks for a TLS connector for every host before it knows whether TLS
/// will be used; a Unix-socket path is no DNS name, and TLS never runs over sockets.
#[derive(Clone)]
pub struct Connector(MakeRustlsConnect);

impl MakeTlsConnect<Socket> for Connector {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let domain = if domain.is_empty() || domain.starts_with('/') { "localhost" } else { domain };
        <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(&mut self.0, domain)
    }
}

impl Connector {
    /// The same TLS settings over another stream type (the cancel connection's).
    pub fn for_stream<S>(&self, domain: &str) -> Result<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect, String>
    where
        MakeRustlsConnect: MakeTlsConnect<S>,
        <MakeRustlsConnect as MakeTlsConnect<S>>::Error: std::fmt::Display,
    {
        let domain = if domain.is_empty() || domain.starts_with('/') { "localhost" } else { domain };
        let mut inner = self.0.clone();
        <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(&mut inner, domain).map_err(|e| e.to_string())
    }
}

pub fn connector(verify: Verify, root_cert: Option<&str>) -> Result<Connector, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match verify {
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth(),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(load_roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainVerifier { inner: webpki, check_name: verify == Verify::Full }))
                .with_no_client_auth()
        }
    };
    Ok(Connector(MakeRustlsConnect::new(config)))
}

fn load_roots(path: Option<&str>) -> Result<RootCertStore, String> {
    let default_path = std::env::var("HOME").map(|h| format!("{h}/.postgresql/root.crt")).unwrap_or_default();
    let path = path.map(str::to_string).unwrap_or(default_path);
    let pem = std::fs::read(&path).map_err(|e| format!("could not read root certificate file \"{path}\": {e}"))?;
    let mut store = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("invalid certificate in \"{path}\": {e}"))?;
        store.add(cert).map_err(|e| format!("invalid certificate in \"{path}\": {e}"))?;
    }
    if store.is_empty() {
        return Err(format!("no certificates found in root certificate file \"{path}\""));
    }
    Ok(store)
}

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain must be trusted, the name need not match.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
