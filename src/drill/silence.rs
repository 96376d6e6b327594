//! An Alertmanager silence for this host and group while a drill runs (`--alertmanager.url`),
//! expired right after. Plain HTTP/1.1 like the alert push; a failure is logged, never fatal:
//! the drill is short and its alerts say what they are.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use hyper::Uri;

use crate::alertmanager::PushConfig;

/// The Alertmanager API base (`…/api/v2`) of a push endpoint (`…/api/v2/alerts`).
fn api_base(endpoint: &Uri) -> String {
    endpoint
        .path()
        .strip_suffix("/alerts")
        .unwrap_or(endpoint.path())
        .to_string()
}

fn request(
    endpoint: &Uri,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let auth = endpoint.authority().ok_or("no host")?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let port = auth.port_u16().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: sparewatch/{}\r\n\r\n{body}",
        body.len(),
        env!("CARGO_PKG_VERSION")
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut resp)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((code, body))
}

/// Creates the silence on every Alertmanager; returns (endpoint index, silence ID) pairs.
pub fn start(
    p: &PushConfig,
    hostname: &str,
    group: &str,
    lasting: Duration,
) -> Vec<(usize, String)> {
    let now = SystemTime::now();
    let fmt = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let body = serde_json::json!({
        "matchers": [
            {"name": "hostname", "value": hostname, "isRegex": false, "isEqual": true},
            {"name": "group", "value": group, "isRegex": false, "isEqual": true},
        ],
        "startsAt": fmt(now),
        "endsAt": fmt(now + lasting),
        "createdBy": "sparewatch drill",
        "comment": format!("failover drill of {group} on {hostname}"),
    })
    .to_string();
    let mut ids = Vec::new();
    for (i, e) in p.endpoints.iter().enumerate() {
        let path = format!("{}/silences", api_base(e));
        match request(e, "POST", &path, &body, p.timeout) {
            Ok((200, b)) => {
                match serde_json::from_str::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v.get("silenceID")?.as_str().map(str::to_string))
                {
                    Some(id) => {
                        tracing::info!(alertmanager = %e, %id, "silence for the drill created");
                        ids.push((i, id));
                    }
                    None => {
                        tracing::warn!(alertmanager = %e, body = %b, "silence created, but no ID in the answer")
                    }
                }
            }
            Ok((code, b)) => {
                tracing::warn!(alertmanager = %e, code, body = %b, "silence for the drill refused")
            }
            Err(err) => {
                tracing::warn!(alertmanager = %e, error = %err, "cannot create the drill's silence")
            }
        }
    }
    ids
}

/// Expires the silences [`start`] created.
pub fn expire(p: &PushConfig, ids: &[(usize, String)]) {
    for (i, id) in ids {
        let Some(e) = p.endpoints.get(*i) else {
            continue;
        };
        let path = format!("{}/silence/{id}", api_base(e));
        match request(e, "DELETE", &path, "", p.timeout) {
            Ok((200, _)) => tracing::info!(alertmanager = %e, %id, "drill silence expired"),
            Ok((code, b)) => {
                tracing::warn!(alertmanager = %e, code, body = %b, "cannot expire the drill silence")
            }
            Err(err) => {
                tracing::warn!(alertmanager = %e, error = %err, "cannot expire the drill silence")
            }
        }
    }
}
