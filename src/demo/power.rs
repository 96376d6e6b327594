//! The demo server's power layer: a Redfish BMC with two PSUs (deprecated `Power` schema)
//! and a UPS behind a NUT server, both served on loopback from files in the simulated tree,
//! so the real redfish and ups collectors read them over HTTP and the NUT protocol. Kept
//! small: only what the demo story changes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fixture::SysTree;

const POWER: &str = "redfish/Chassis/1/Power";
const UPS: &str = "ups/ups-a";

fn psu(id: u32, input: bool) -> serde_json::Value {
    serde_json::json!({
        "MemberId": format!("PSU{id}"), "Name": format!("PSU{id}"), "PowerCapacityWatts": 800,
        "LineInputVoltage": if input { 230 } else { 0 },
        "Status": {"State": "Enabled", "Health": if input { "OK" } else { "Critical" }}
    })
}

fn json(t: &SysTree, rel: &str, v: serde_json::Value) -> io::Result<()> {
    t.set(&format!("{rel}/index.json"), &v.to_string())
}

/// Writes the BMC's resources and the UPS's variables, everything healthy.
pub fn build(t: &SysTree) -> io::Result<()> {
    json(
        t,
        "redfish",
        serde_json::json!({"Chassis": {"@odata.id": "/redfish/v1/Chassis"}}),
    )?;
    json(
        t,
        "redfish/Chassis",
        serde_json::json!({"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]}),
    )?;
    json(
        t,
        "redfish/Chassis/1",
        serde_json::json!({"Id": "1", "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"}}),
    )?;
    redfish_psu(t, true)?;
    ups(t, false)
}

/// PSU2 of the Redfish BMC loses (or regains) its input.
pub fn redfish_psu(t: &SysTree, input: bool) -> io::Result<()> {
    json(
        t,
        POWER,
        serde_json::json!({
            "PowerSupplies": [psu(1, true), psu(2, input)],
            "PowerControl": [{"PowerConsumedWatts": 412}]
        }),
    )
}

/// The UPS goes on battery (or back on line).
pub fn ups(t: &SysTree, on_battery: bool) -> io::Result<()> {
    let (status, runtime) = if on_battery {
        ("OB DISCHRG", 1400)
    } else {
        ("OL", 1800)
    };
    t.set(
        UPS,
        &format!(
            "ups.status {status}\nbattery.charge 100\nbattery.runtime {runtime}\nups.load 35\n"
        ),
    )
}

/// The running servers: `http://…` of the BMC and `host:port` of the NUT server.
pub struct Servers {
    pub redfish_url: String,
    pub nut_address: String,
}

/// Starts both servers on loopback ports; their threads live as long as the process.
pub fn start(root: &Path) -> io::Result<Servers> {
    let http = TcpListener::bind("127.0.0.1:0")?;
    let nut = TcpListener::bind("127.0.0.1:0")?;
    let servers = Servers {
        redfish_url: format!("http://{}", http.local_addr()?),
        nut_address: nut.local_addr()?.to_string(),
    };
    let r = root.to_path_buf();
    std::thread::Builder::new()
        .name("demo-redfish".into())
        .spawn(move || serve(http, r, redfish))?;
    let r = root.to_path_buf();
    std::thread::Builder::new()
        .name("demo-nut".into())
        .spawn(move || serve(nut, r, nut_session))?;
    Ok(servers)
}

fn serve(l: TcpListener, root: PathBuf, f: fn(TcpStream, &Path) -> io::Result<()>) {
    for s in l.incoming().flatten() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if let Err(e) = f(s, &root) {
            tracing::debug!(error = %e, "demo power server");
        }
    }
}

fn redfish(s: TcpStream, root: &Path) -> io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let rel = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches("/redfish/v1");
    let rel = rel.trim_matches('/');
    let body = if rel.split('/').any(|p| p == "..") {
        None
    } else {
        std::fs::read(root.join("redfish").join(rel).join("index.json")).ok()
    };
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"{}".to_vec()),
    };
    let mut w = s;
    w.write_all(format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes())?;
    w.write_all(&body)
}

fn nut_session(s: TcpStream, root: &Path) -> io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        let reply = match line.trim() {
            "LIST UPS" => "BEGIN LIST UPS\nUPS ups-a \"demo UPS\"\nEND LIST UPS\n".to_string(),
            "LIST VAR ups-a" => {
                let mut vars = String::new();
                std::fs::File::open(root.join(UPS))?.read_to_string(&mut vars)?;
                let mut out = String::from("BEGIN LIST VAR ups-a\n");
                for l in vars.lines() {
                    if let Some((k, v)) = l.split_once(' ') {
                        out.push_str(&format!("VAR ups-a {k} \"{v}\"\n"));
                    }
                }
                out + "END LIST VAR ups-a\n"
            }
            "LOGOUT" => {
                w.write_all(b"OK Goodbye\n")?;
                return Ok(());
            }
            _ => "ERR UNKNOWN-COMMAND\n".to_string(),
        };
        w.write_all(reply.as_bytes())?;
        line.clear();
    }
    Ok(())
}
