//! A SessionService in front of a mockup tree, for the session tests only: no sushy tool
//! has one (sushy-emulator answers basic auth, sushy-static accepts any POST with 204), so
//! this small server plays the part real BMCs play: `POST Sessions` with
//! `UserName`/`Password` → 201 + `X-Auth-Token` + `Location`, every other GET needs a live
//! token (401 without), `DELETE` on the session's Location ends it. Every request is logged.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::support::repo;

pub const USER: &str = "monitor";
pub const PASSWORD: &str = "pw with spaces";

#[derive(Default)]
pub struct State {
    pub log: Vec<String>,
    pub tokens: HashSet<String>,
    next: u32,
}

pub struct SessionService {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl SessionService {
    pub fn start(mockup: &str) -> SessionService {
        let root: PathBuf = repo().join("tests/fixtures/redfish").join(mockup);
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("").to_string(),
                );
                let (mut token, mut len) = (None, 0usize);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or(("", ""));
                    match k.to_ascii_lowercase().as_str() {
                        "x-auth-token" => token = Some(v.trim().to_string()),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let mut g = st.lock().expect("state");
                g.log.push(format!(
                    "{method} {path} token={}",
                    token.clone().unwrap_or_default()
                ));
                let authed = token.as_ref().is_some_and(|t| g.tokens.contains(t));
                let (status, headers, out): (&str, String, Vec<u8>) = match (
                    method.as_str(),
                    path.as_str(),
                ) {
                    ("POST", "/redfish/v1/SessionService/Sessions") => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        if v["UserName"] == USER && v["Password"] == PASSWORD {
                            g.next += 1;
                            let t = format!("token-{}", g.next);
                            g.tokens.insert(t.clone());
                            ("201 Created", format!("X-Auth-Token: {t}\r\nLocation: /redfish/v1/SessionService/Sessions/{}\r\n", g.next), b"{}".to_vec())
                        } else {
                            ("401 Unauthorized", String::new(), b"{}".to_vec())
                        }
                    }
                    ("DELETE", p)
                        if authed && p.starts_with("/redfish/v1/SessionService/Sessions/") =>
                    {
                        if let Some(t) = &token {
                            g.tokens.remove(t);
                        }
                        ("204 No Content", String::new(), Vec::new())
                    }
                    ("GET", "/redfish/v1/") => (
                        "200 OK",
                        String::new(),
                        std::fs::read(root.join("index.json")).unwrap_or_default(),
                    ),
                    ("GET", p) if authed => {
                        let rel = p.trim_start_matches("/redfish/v1").trim_matches('/');
                        match std::fs::read(root.join(rel).join("index.json")) {
                            Ok(b) => ("200 OK", String::new(), b),
                            Err(_) => ("404 Not Found", String::new(), b"{}".to_vec()),
                        }
                    }
                    _ => ("401 Unauthorized", String::new(), b"{}".to_vec()),
                };
                drop(g);
                let mut w = s;
                let _ = w.write_all(
                    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", out.len()).as_bytes(),
                );
                let _ = w.write_all(&out);
            }
        });
        SessionService { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("state").log.clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }
}
