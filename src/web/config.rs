//! `--web.config.file`: TLS and HTTP basic auth in the format of the Prometheus
//! exporter-toolkit, so an operator's existing `web.yml` works unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt         # relative paths are relative to this file
//!   key_file: server.key
//!   min_version: TLS12            # TLS12 (default) or TLS13
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients.pem
//! http_server_config:
//!   headers: { Strict-Transport-Security: max-age=31536000 }
//! basic_auth_users:
//!   prometheus: $2y$10$...        # bcrypt hash
//! ```
//!
//! Settings that the toolkit knows but rustls cannot honour (TLS 1.0/1.1, cipher suite and
//! curve lists) are refused with a clear error instead of being silently ignored: a security
//! setting that does not take effect is worse than a startup error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("reading web config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("web config {path}: {detail}")]
    Invalid { path: String, detail: String },
}

/// The file as written (exporter-toolkit keys).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    /// Inline PEM (newer exporter-toolkit versions).
    cert: Option<String>,
    key: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    // Known to the toolkit, refused here (see the module doc).
    cipher_suites: Option<serde_norway::Value>,
    curve_preferences: Option<serde_norway::Value>,
    prefer_server_cipher_suites: Option<serde_norway::Value>,
    client_allowed_sans: Option<serde_norway::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Highest bcrypt cost accepted. Each step doubles the work: cost 10–12 (what
/// exporter-toolkit users commonly use) takes tens to hundreds of milliseconds, 17 (the
/// highest `htpasswd -B` makes) about ten seconds per verification, and 31 would take days,
/// so a hash above this is a startup error rather than a lock-out.
pub const MAX_BCRYPT_COST: u32 = 17;
/// Largest web config file and PEM file read.
pub const MAX_WEB_FILE_BYTES: u64 = 1024 * 1024;

/// TLS protocol versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Whether and how clients must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// `VerifyClientCertIfGiven`: optional, but verified against the CA when given.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`.
    Require,
}

/// Where PEM data comes from: a file (resolved against the config file's directory) or
/// inline text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub client_auth: ClientAuth,
    pub client_ca: Option<Pem>,
}

/// A validated web config.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    pub tls: Option<TlsSettings>,
    /// user → bcrypt hash (validated as bcrypt at load).
    pub basic_auth_users: BTreeMap<String, String>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

fn version(key: &str, v: &str) -> Result<TlsVersion, String> {
    match v {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {v} is not supported (TLS 1.2 and 1.3 only)"
        )),
        other => Err(format!(
            "tls_server_config.{key}: unknown version {other:?} (TLS12 or TLS13)"
        )),
    }
}

fn pem(
    base: &Path,
    key: &str,
    file: Option<PathBuf>,
    inline: Option<String>,
) -> Result<Option<Pem>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: give {key}_file or {key}, not both"
        )),
        (Some(f), None) if f.as_os_str().is_empty() => Ok(None),
        (Some(f), None) => Ok(Some(Pem::File(base.join(f)))),
        (None, Some(s)) if s.trim().is_empty() => Ok(None),
        (None, Some(s)) => Ok(Some(Pem::Inline(s))),
        (None, None) => Ok(None),
    }
}

/// Parses and validates the text of a web config. `base` is the directory relative file
/// names are resolved against. Pure: reads no files (the TLS files are read by
/// [`tls_server_config`]).
pub fn parse(text: &str, base: &Path) -> Result<WebConfig, String> {
    let raw: RawWebConfig = if text.trim().is_empty() {
        RawWebConfig::default()
    } else {
        crate::config::from_yaml_limited(text)?
    };
    let mut cfg = WebConfig::default();
    if let Some(t) = raw.tls_server_config {
        for (key, set) in [
            ("cipher_suites", t.cipher_suites.is_some()),
            ("curve_preferences", t.curve_preferences.is_some()),
            (
                "prefer_server_cipher_suites",
                t.prefer_server_cipher_suites.is_some(),
            ),
            ("client_allowed_sans", t.client_allowed_sans.is_some()),
        ] {
            if set {
                return Err(format!(
                    "tls_server_config.{key}: not supported by sparewatch (rustls picks safe \
                     suites and curves itself); remove it"
                ));
            }
        }
        let cert = pem(base, "cert", t.cert_file, t.cert)?;
        let key = pem(base, "key", t.key_file, t.key)?;
        let client_auth = match t.client_auth_type.as_deref() {
            None | Some("") | Some("NoClientCert") => ClientAuth::None,
            Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
            Some("RequireAndVerifyClientCert") => ClientAuth::Require,
            Some(other @ ("RequestClientCert" | "RequireAnyClientCert")) => {
                return Err(format!(
                    "tls_server_config.client_auth_type: {other} accepts unverified client \
                     certificates and is not supported; use RequireAndVerifyClientCert"
                ))
            }
            Some(other) => {
                return Err(format!(
                    "tls_server_config.client_auth_type: unknown value {other:?}"
                ))
            }
        };
        let client_ca = pem(base, "client_ca", t.client_ca_file, t.client_ca)?;
        if client_auth != ClientAuth::None && client_ca.is_none() {
            return Err("tls_server_config.client_auth_type needs client_ca_file".into());
        }
        let min_version = match t.min_version.as_deref() {
            None | Some("") => TlsVersion::Tls12,
            Some(v) => version("min_version", v)?,
        };
        let max_version = match t.max_version.as_deref() {
            None | Some("") => TlsVersion::Tls13,
            Some(v) => version("max_version", v)?,
        };
        if min_version > max_version {
            return Err("tls_server_config: min_version is above max_version".into());
        }
        match (cert, key) {
            (Some(cert), Some(key)) => {
                cfg.tls = Some(TlsSettings {
                    cert,
                    key,
                    min_version,
                    max_version,
                    client_auth,
                    client_ca,
                })
            }
            (None, None) => {
                return Err("tls_server_config: cert_file and key_file are required".into())
            }
            (None, Some(_)) => return Err("tls_server_config: cert_file is missing".into()),
            (Some(_), None) => return Err("tls_server_config: key_file is missing".into()),
        }
    }
    for (user, hash) in &raw.basic_auth_users {
        if user.is_empty() || user.contains(':') {
            return Err(format!(
                "basic_auth_users: invalid user name {user:?} (empty or contains ':')"
            ));
        }
        // The hash itself is never printed: it is a secret too.
        match hash.parse::<bcrypt::HashParts>() {
            Err(_) => {
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\"`)"
                ))
            }
            Ok(p) if p.get_cost() > MAX_BCRYPT_COST => {
                return Err(format!(
                    "basic_auth_users.{user}: bcrypt cost {} is above the maximum of \
                     {MAX_BCRYPT_COST} (every check would take minutes or more); make a new \
                     hash with `htpasswd -nBC 10 \"\"`",
                    p.get_cost()
                ))
            }
            Ok(_) => {}
        }
    }
    cfg.basic_auth_users = raw.basic_auth_users;
    if let Some(h) = raw.http_server_config {
        if h.http2 == Some(true) {
            tracing::info!("http_server_config.http2: sparewatch serves HTTP/1.1 only");
        }
        for (name, value) in h.headers {
            let n = axum::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("http_server_config.headers: {name:?}: {e}"))?;
            let v = axum::http::HeaderValue::from_str(&value)
                .map_err(|e| format!("http_server_config.headers.{name}: {e}"))?;
            cfg.headers.push((n, v));
        }
    }
    Ok(cfg)
}

/// Reads and validates a web config file, and loads its TLS material, so that every
/// mistake (bad YAML, a missing or unreadable cert, a key that does not match) is a startup
/// error naming the file.
pub fn load(path: &Path) -> Result<(WebConfig, Option<LoadedTls>), WebConfigError> {
    let text = crate::config::read_bounded_text(path, MAX_WEB_FILE_BYTES).map_err(|source| {
        WebConfigError::Read {
            path: path.display().to_string(),
            source,
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |detail: String| WebConfigError::Invalid {
        path: path.display().to_string(),
        detail,
    };
    let cfg = parse(&text, base).map_err(invalid)?;
    let tls = match &cfg.tls {
        Some(t) => {
            let config = tls_server_config(t).map_err(invalid)?;
            let not_after = read_pem(&t.cert, "cert_file")
                .ok()
                .and_then(|pem| parse_certs(&pem).ok())
                .and_then(|certs| certs.first().and_then(|c| cert_not_after(c)));
            Some(LoadedTls { config, not_after })
        }
        None => None,
    };
    Ok((cfg, tls))
}

/// The server's TLS config and when its certificate expires.
#[derive(Clone)]
pub struct LoadedTls {
    pub config: Arc<rustls::ServerConfig>,
    /// notAfter of the leaf certificate, Unix seconds (`None` if it cannot be parsed).
    pub not_after: Option<i64>,
}

/// notAfter of a DER certificate, Unix seconds.
pub fn cert_not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn read_pem(p: &Pem, what: &str) -> Result<Vec<u8>, String> {
    match p {
        Pem::Inline(s) => Ok(s.as_bytes().to_vec()),
        Pem::File(f) => crate::config::read_bounded(f, MAX_WEB_FILE_BYTES)
            .map_err(|e| format!("{what} {}: {e}", f.display())),
    }
}

fn describe(p: &Pem, what: &str) -> String {
    match p {
        Pem::Inline(_) => format!("{what} (inline)"),
        Pem::File(f) => format!("{what} {}", f.display()),
    }
}

/// Parses a PEM certificate chain.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key: {e}"))
}

/// Builds the rustls server config (ring provider, HTTP/1.1 ALPN).
pub fn tls_server_config(t: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = parse_certs(&read_pem(&t.cert, "cert_file")?)
        .map_err(|e| format!("{}: {e}", describe(&t.cert, "cert_file")))?;
    let key = parse_key(&read_pem(&t.key, "key_file")?)
        .map_err(|e| format!("{}: {e}", describe(&t.key, "key_file")))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= t.min_version && *v <= t.max_version)
    .map(|(_, p)| p)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (&t.client_auth, &t.client_ca) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in parse_certs(&read_pem(ca, "client_ca_file")?)
                .map_err(|e| format!("{}: {e}", describe(ca, "client_ca_file")))?
            {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", describe(ca, "client_ca_file")))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if *auth == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?,
            )
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} / {}: {e}",
            describe(&t.cert, "cert_file"),
            describe(&t.key, "key_file")
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$Wv4ZQw1EzK6o8U0mQ9b1/uJ2JmCk6HVv9n0xjvUq3eKx0D6yP3jTy";

    #[test]
    fn empty_file_is_plain_http_without_auth() {
        let c = parse("", Path::new("/etc")).expect("parses");
        assert!(c.tls.is_none() && c.basic_auth_users.is_empty());
    }

    #[test]
    fn toolkit_file_parses_with_relative_paths() {
        let text = format!(
            "tls_server_config:\n  cert_file: tls/a.crt\n  key_file: /abs/a.key\n  min_version: TLS13\n\
             basic_auth_users:\n  prometheus: {HASH}\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        );
        let c = parse(&text, Path::new("/etc/sparewatch")).expect("parses");
        let t = c.tls.expect("tls");
        assert_eq!(t.cert, Pem::File("/etc/sparewatch/tls/a.crt".into()));
        assert_eq!(t.key, Pem::File("/abs/a.key".into()));
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert_eq!(c.basic_auth_users["prometheus"], HASH);
        assert_eq!(c.headers.len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases = [
            ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS10}", "TLS10"),
            ("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [X]}", "cipher_suites"),
            ("tls_server_config: {cert_file: a}", "key_file is missing"),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert}", "client_ca_file"),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}", "not supported"),
            ("basic_auth_users: {prometheus: secret}", "not a bcrypt hash"),
            ("basic_auth_users: {\"a:b\": x}", "invalid user name"),
            (
                "basic_auth_users: {p: \"$2y$31$Wv4ZQw1EzK6o8U0mQ9b1/uJ2JmCk6HVv9n0xjvUq3eKx0D6yP3jTy\"}",
                "bcrypt cost 31 is above the maximum of 17",
            ),
            ("tls_config: {}", "unknown field"),
        ];
        for (text, want) in cases {
            let e = parse(text, Path::new(".")).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("secret"), "error leaks the password: {e}");
        }
    }

    #[test]
    fn pem_errors_are_clear() {
        assert!(parse_certs(b"").unwrap_err().contains("no CERTIFICATE"));
        assert!(
            parse_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s, Path::new("."));
        }
        #[test]
        fn pem_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_certs(&b);
            let _ = parse_key(&b);
        }
    }
}
