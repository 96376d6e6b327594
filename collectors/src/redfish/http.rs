//! A small blocking HTTP/1.1 client for Redfish: one request per connection
//! (`Connection: close`), plain TCP or TLS through rustls (ring), every read and write bounded
//! by the request timeout and the whole exchange by a deadline, the body size capped. The
//! response head and body are parsed by pure functions ([`parse_response`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Largest response accepted: a chassis or a collection is a few KiB.
pub const MAX_RESPONSE: usize = 8 << 20;

/// `scheme://host[:port]` of a BMC, parsed from `--redfish.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/]`; a path other than `/` is refused (the service
    /// root is always `/redfish/v1/`).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "{url:?}: the URL must start with https:// or http://"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let authority = authority.strip_suffix("/redfish/v1").unwrap_or(authority);
        if authority.contains('/') || authority.contains('@') || authority.is_empty() {
            return Err(format!(
                "{url:?}: give scheme://host[:port] only (no path, no user)"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url:?}: junk after the host")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("{url:?}: bad port"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(format!("{url:?}: missing host or port"));
        }
        Ok(Endpoint { tls, host, port })
    }

    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{host}:{}",
            if self.tls { "https" } else { "http" },
            self.port
        )
    }
}

/// How a TLS server certificate is checked.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The PEM certificates of this file (a BMC's self-signed certificate, a private CA).
    CaFile(std::path::PathBuf),
    /// No check at all (`--redfish.insecure-skip-verify`).
    Insecure,
}

/// Builds the rustls configuration for `trust`.
pub fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = match trust {
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let certs = read_pem_certs(path)?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("CA file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "CA file {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// `--redfish.insecure-skip-verify`: any certificate is accepted; the handshake signatures
/// are still checked, so the session key is the server's.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole HTTP/1.x response (the connection was read to its end).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response head")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP/1 response: {:?}",
            status_line.chars().take(60).collect::<String>()
        ));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or("bad status code")?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(':').ok_or("header line without ':'")?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &raw[head_end + 4..];
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    resp.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length")?;
        if rest.len() < len {
            return Err(format!("body cut off: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line cut off")?;
        let size_text = std::str::from_utf8(&b[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("chunk cut off".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// One BMC's connection settings.
#[derive(Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    tls: Option<Arc<ClientConfig>>,
    pub timeout: Duration,
}

/// Why a request failed before any HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Client {
    pub fn new(endpoint: Endpoint, tls: Option<Arc<ClientConfig>>, timeout: Duration) -> Client {
        Client {
            endpoint,
            tls,
            timeout,
        }
    }

    /// Sends one request and reads the whole response. `path` starts with `/`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response, TransportError> {
        let deadline = Instant::now() + self.timeout;
        let e = |what: &str, err: &dyn std::fmt::Display| {
            TransportError(format!(
                "{} {method} {path}: {what}: {err}",
                self.endpoint.url()
            ))
        };
        let addrs: Vec<SocketAddr> = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()
            .map_err(|x| e("resolving", &x))?
            .collect();
        let addr = addrs.first().ok_or_else(|| e("resolving", &"no address"))?;
        let tcp =
            TcpStream::connect_timeout(addr, self.timeout).map_err(|x| e("connecting", &x))?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|_| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|x| e("socket", &x))?;
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|x| e("server name", &x))?;
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(|x| e("TLS", &x))?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        };
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: sparewatch\r\n",
            host_header(&self.endpoint)
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        stream.write_all(&bytes).map_err(|x| e("sending", &x))?;
        stream.flush().map_err(|x| e("sending", &x))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            if Instant::now() > deadline {
                return Err(e(
                    "reading",
                    &format!("no complete answer within {:?}", self.timeout),
                ));
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_RESPONSE {
                        return Err(e("reading", &"response larger than 8 MiB"));
                    }
                }
                // A server closing without TLS close_notify: the data is all there.
                Err(x) if x.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
                Err(x) if x.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(x) => return Err(e("reading", &x)),
            }
        }
        parse_response(&raw).map_err(|x| e("response", &x))
    }
}

fn host_header(ep: &Endpoint) -> String {
    let host = if ep.host.contains(':') {
        format!("[{}]", ep.host)
    } else {
        ep.host.clone()
    };
    format!("{host}:{}", ep.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("https://bmc1.example:8443/").unwrap(),
            Endpoint {
                tls: true,
                host: "bmc1.example".into(),
                port: 8443
            }
        );
        assert_eq!(Endpoint::parse("http://10.0.0.5").unwrap().port, 80);
        assert_eq!(
            Endpoint::parse("https://[fe80::1]:443/redfish/v1/")
                .unwrap()
                .host,
            "fe80::1"
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https://x/other",
            "https://x:99999",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses() {
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nX-Auth-Token: abc\r\nContent-Length: 2\r\n\r\n{}junk",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.header("x-auth-token"), r.body.as_slice()),
            (201, Some("abc"), &b"{}"[..])
        );
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=y\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\n{\"eof\":1}").unwrap();
        assert_eq!(r.body, b"{\"eof\":1}");
        for bad in [
            &b""[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
    }
}
