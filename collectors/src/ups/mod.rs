//! The `ups` collector: UPSes through NUT's upsd, over its network protocol (`LIST UPS`,
//! `LIST VAR`, optional `USERNAME`/`PASSWORD`). Every UPS is a group `ups:<name>` of two
//! members, `utility` (active) and `battery` (standby); [`nut::verdict`] decides their
//! health from `ups.status` and the battery readings. Parsing is in [`nut`]; the I/O is a
//! plain TCP conversation here, bounded by a timeout.

pub mod nut;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, GroupReading, MemberHealth,
    MemberReading, Reading, Role,
};
use nut::{Limits, ReplyError};

/// Environment variable with the upsd password when no `--ups.nut-password-file` is given.
pub const PASSWORD_ENV: &str = "SPAREWATCH_UPS_PASSWORD";
/// Tried when no address is given; refused there means "no UPS here" (not present).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:3493";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// A reply longer than this is not upsd's (a UPS has a few hundred bytes of variables).
const MAX_REPLY: usize = 1 << 20;

/// `collectors.ups` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsConfig {
    /// upsd addresses `HOST:PORT` (the flag `--ups.nut-address` adds to these).
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Timeout of one connection/command, e.g. `2s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Battery member unhealthy below this `battery.charge` (percent).
    #[serde(default)]
    pub min_battery_charge_percent: Option<f64>,
    /// Battery member unhealthy below this `battery.runtime`, e.g. `5m`.
    #[serde(default)]
    pub min_battery_runtime: Option<String>,
    /// UPS name (as in the group, without `ups:`) → power feed (`A`, `B`).
    #[serde(default)]
    pub feeds: BTreeMap<String, String>,
}

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec::repeated(
        "ups.nut-address",
        "HOST:PORT",
        "upsd to read UPSes from; repeatable [default: 127.0.0.1:3493, not present when refused there]",
    ),
    FlagSpec::text(
        "ups.nut-user",
        "USER",
        "upsd user (USERNAME); none by default",
    ),
    FlagSpec::text(
        "ups.nut-password-file",
        "FILE",
        "File holding the upsd password (else $SPAREWATCH_UPS_PASSWORD)",
    ),
    FlagSpec::text(
        "ups.timeout",
        "DURATION",
        "Timeout of one connection or command to upsd [default: 2s]",
    ),
];

fn config_error(detail: impl Into<String>) -> BuildError {
    BuildError::Config {
        collector: "ups",
        detail: detail.into(),
    }
}

pub use crate::password::Password;

/// How to reach upsd and what counts as a weak battery.
#[derive(Clone, Debug)]
pub struct Settings {
    pub user: Option<String>,
    pub password: Password,
    pub timeout: Duration,
    pub limits: Limits,
    pub feeds: BTreeMap<String, String>,
}

/// One upsd server and the UPSes it served last time (reported `unknown` while it is away).
#[derive(Debug)]
struct Server {
    address: String,
    /// The default address tried without configuration: refused there means not present.
    implicit: bool,
    /// The group suffix `@address`, when more than one server is watched.
    suffix: String,
    known: Vec<String>,
    ever_answered: bool,
}

/// The collector.
#[derive(Debug)]
pub struct UpsCollector {
    servers: Vec<Server>,
    settings: Settings,
}

impl UpsCollector {
    /// Watches these upsd addresses (`HOST:PORT`); `implicit` marks the default address.
    pub fn new(addresses: Vec<String>, implicit: bool, settings: Settings) -> UpsCollector {
        let several = addresses.len() > 1;
        UpsCollector {
            servers: addresses
                .into_iter()
                .map(|a| Server {
                    suffix: if several {
                        format!("@{a}")
                    } else {
                        String::new()
                    },
                    address: a,
                    implicit,
                    known: Vec::new(),
                    ever_answered: false,
                })
                .collect(),
            settings,
        }
    }
}

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: UpsConfig = crate::parse_config("ups", ctx.config)?;
    let m = ctx.flags;
    let mut addresses = config.servers.clone();
    addresses.extend(m.repeated("ups", "ups.nut-address")?.iter().cloned());
    for a in &addresses {
        check_address(a).map_err(config_error)?;
    }
    addresses.dedup();
    let implicit = addresses.is_empty();
    if implicit {
        addresses.push(DEFAULT_ADDRESS.to_string());
    }
    let timeout = match m.text("ups", "ups.timeout")?.or(config.timeout.as_deref()) {
        Some(s) => crate::parse_duration(s).map_err(config_error)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(config_error("timeout must be above zero"));
    }
    let user = m
        .text("ups", "ups.nut-user")?
        .map(str::to_string)
        .or(config.user.clone());
    if let Some(u) = &user {
        if u.is_empty() || u.contains(char::is_whitespace) {
            return Err(config_error("the upsd user must be one word"));
        }
    }
    let password = match m
        .text("ups", "ups.nut-password-file")?
        .map(PathBuf::from)
        .or(config.password_file.clone())
    {
        Some(p) => Password::File(p),
        None if std::env::var_os(PASSWORD_ENV).is_some() => Password::Env(PASSWORD_ENV.into()),
        None => Password::None,
    };
    let min_runtime_seconds = match &config.min_battery_runtime {
        Some(s) => Some(
            crate::parse_duration(s)
                .map_err(config_error)?
                .as_secs_f64(),
        ),
        None => None,
    };
    if let Some(c) = config.min_battery_charge_percent {
        if !(0.0..=100.0).contains(&c) {
            return Err(config_error(
                "min_battery_charge_percent must be within 0..=100",
            ));
        }
    }
    Ok(Box::new(UpsCollector::new(
        addresses,
        implicit,
        Settings {
            user,
            password,
            timeout,
            limits: Limits {
                min_charge_percent: config.min_battery_charge_percent,
                min_runtime_seconds,
            },
            feeds: config.feeds,
        },
    )))
}

fn check_address(a: &str) -> Result<(), String> {
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("upsd address {a:?} is not HOST:PORT")),
    }
}

/// Why a server gave nothing: `Refused` on the implicit default means not present.
enum ServerError {
    Refused(String),
    Other(String),
}

/// One conversation with upsd.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(address: &str, timeout: Duration) -> Result<Conn, ServerError> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|e| ServerError::Other(format!("resolving {address}: {e}")))?
            .collect();
        let mut last = ServerError::Other(format!("{address}: no address"));
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    let io = |e: std::io::Error| ServerError::Other(format!("{address}: {e}"));
                    s.set_read_timeout(Some(timeout)).map_err(io)?;
                    s.set_write_timeout(Some(timeout)).map_err(io)?;
                    let writer = s.try_clone().map_err(io)?;
                    return Ok(Conn {
                        reader: BufReader::new(s),
                        writer,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = ServerError::Refused(format!("connecting to upsd at {address}: {e}"));
                }
                Err(e) => {
                    last = ServerError::Other(format!("connecting to upsd at {address}: {e}"))
                }
            }
        }
        Err(last)
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("sending to upsd: {e}"))
    }

    fn line(&mut self) -> Result<String, String> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("reading from upsd: {e}"))?;
        if n == 0 {
            return Err("upsd closed the connection".into());
        }
        if !buf.ends_with(b"\n") {
            return Err("reply line too long or cut off".into());
        }
        String::from_utf8(buf).map_err(|_| "reply is not UTF-8".into())
    }

    /// Sends a command and reads one line, or a whole list up to `END LIST`.
    fn request(&mut self, command: &str) -> Result<String, String> {
        self.send(command)?;
        let first = self.line()?;
        if !first.starts_with("BEGIN LIST ") {
            return Ok(first);
        }
        let end = format!("END {}", first.trim_end()["BEGIN ".len()..].trim_end());
        let mut all = first;
        loop {
            let l = self.line()?;
            all.push_str(&l);
            if all.len() > MAX_REPLY {
                return Err("list reply too long".into());
            }
            if l.trim_end() == end {
                return Ok(all);
            }
        }
    }
}

/// What one server gave: per UPS either its variables or why not.
type ServerResult = Vec<(String, Result<BTreeMap<String, String>, String>)>;

fn query(address: &str, s: &Settings) -> Result<ServerResult, ServerError> {
    let mut c = Conn::open(address, s.timeout)?;
    let other = ServerError::Other;
    if let Some(user) = &s.user {
        let r = c.request(&format!("USERNAME {user}")).map_err(other)?;
        nut::parse_ok(&r).map_err(|e| other(format!("USERNAME: {e}")))?;
    }
    if let Some(p) = s.password.read().map_err(other)? {
        let r = c
            .request(&format!("PASSWORD {}", quote(&p)))
            .map_err(other)?;
        nut::parse_ok(&r).map_err(|e| other(format!("PASSWORD: {e}")))?;
    }
    let list = c.request("LIST UPS").map_err(other)?;
    let upses = nut::parse_list_ups(&list).map_err(|e| other(format!("LIST UPS: {e}")))?;
    let mut out = Vec::new();
    for u in upses {
        let r = c.request(&format!("LIST VAR {}", u.name)).map_err(other)?;
        let vars = match nut::parse_list_var(&r, &u.name) {
            Ok(v) => Ok(v),
            // upsd's no for one UPS (driver gone, data stale) costs only that UPS.
            Err(e @ ReplyError::Err(_)) => Err(e.to_string()),
            Err(e) => return Err(other(format!("LIST VAR {}: {e}", u.name))),
        };
        out.push((u.name, vars));
    }
    let _ = c.send("LOGOUT");
    Ok(out)
}

/// A password as one protocol word.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn unknown_group(name: &str, why: &str) -> GroupReading {
    let mut g = GroupReading::new(format!("ups:{name}"), "ups", 1);
    for (m, role) in [("utility", Role::Active), ("battery", Role::Standby)] {
        g.members.push(MemberReading::new(
            m,
            role,
            MemberHealth::Unknown(why.to_string()),
        ));
    }
    g
}

/// Group and readings of one UPS from its variables (pure; used by the fuzz target).
pub fn ups_collection(
    name: &str,
    vars: &BTreeMap<String, String>,
    limits: &Limits,
    out: &mut Collection,
) {
    let label = || vec![("ups", name.to_string())];
    for (var, metric, help, scale) in [
        (
            "battery.charge",
            "sparewatch_ups_battery_charge_ratio",
            "Battery charge as a ratio of full (NUT battery.charge / 100).",
            0.01,
        ),
        (
            "battery.runtime",
            "sparewatch_ups_battery_runtime_seconds",
            "Estimated runtime on battery (NUT battery.runtime).",
            1.0,
        ),
        (
            "ups.load",
            "sparewatch_ups_load_ratio",
            "UPS load as a ratio of its capacity (NUT ups.load / 100).",
            0.01,
        ),
        (
            "input.voltage",
            "sparewatch_ups_input_voltage_volts",
            "Utility input voltage (NUT input.voltage).",
            1.0,
        ),
    ] {
        if let Some(v) = nut::number(vars, var) {
            out.readings
                .push(Reading::gauge(metric, help, label(), v * scale));
        }
    }
    let status = vars
        .get("ups.status")
        .ok_or_else(|| "upsd gave no ups.status".to_string())
        .and_then(|s| nut::parse_status(s));
    match status {
        Ok(st) => {
            for f in &st.flags {
                out.readings.push(Reading::gauge(
                    "sparewatch_ups_status_flag",
                    "1 for every flag of the UPS's ups.status (OL, OB, LB, RB, BYPASS, OVER, CHRG…).",
                    vec![("ups", name.to_string()), ("flag", f.clone())],
                    1.0,
                ));
            }
            let v = nut::verdict(&st, vars, limits);
            let mut g = GroupReading::new(format!("ups:{name}"), "ups", 1);
            g.members
                .push(MemberReading::new("utility", Role::Active, v.utility));
            g.members
                .push(MemberReading::new("battery", Role::Standby, v.battery));
            out.groups.push(g);
        }
        Err(e) => out.groups.push(unknown_group(name, &e)),
    }
}

impl Collector for UpsCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let mut out = Collection::present();
        let mut failures = Vec::new();
        let mut any_present = false;
        for srv in &mut self.servers {
            let result = query(&srv.address, &self.settings);
            let up = result.is_ok();
            match result {
                Ok(upses) => {
                    srv.ever_answered = true;
                    any_present = true;
                    let mut names = Vec::new();
                    for (ups, vars) in upses {
                        let name = format!("{ups}{}", srv.suffix);
                        match vars {
                            Ok(v) => ups_collection(&name, &v, &self.settings.limits, &mut out),
                            Err(why) => out.groups.push(unknown_group(&name, &why)),
                        }
                        names.push(name);
                    }
                    srv.known = names;
                }
                Err(ServerError::Refused(_)) if srv.implicit && !srv.ever_answered => continue,
                Err(ServerError::Refused(why) | ServerError::Other(why)) => {
                    any_present = true;
                    tracing::warn!(server = %srv.address, error = %why, "upsd unreachable");
                    for name in &srv.known {
                        out.groups.push(unknown_group(name, &why));
                    }
                    failures.push(why);
                }
            }
            out.readings.push(Reading::gauge(
                "sparewatch_ups_server_up",
                "1 when the last conversation with this upsd succeeded.",
                vec![("server", srv.address.clone())],
                if up { 1.0 } else { 0.0 },
            ));
        }
        if !any_present {
            return Ok(Collection::not_present());
        }
        if failures.len() == self.servers.len() {
            return Err(CollectError::Other(failures.join("; ")));
        }
        let names: HashSet<&str> = out
            .groups
            .iter()
            .filter_map(|g| g.name.strip_prefix("ups:"))
            .collect();
        for (ups, feed) in &self.settings.feeds {
            if names.contains(ups.as_str()) {
                out.readings.push(Reading::gauge(
                    "sparewatch_ups_feed_info",
                    "The power feed a UPS is on, from collectors.ups.feeds (always 1).",
                    vec![("ups", ups.clone()), ("feed", feed.clone())],
                    1.0,
                ));
            }
        }
        Ok(out)
    }
}
