//! The `redfish` collector: PSUs, power redundancy and fans from Redfish BMCs (iDRAC, iLO,
//! XClarity, OpenBMC, …), both schema generations: `Chassis/{id}/PowerSubsystem/PowerSupplies`
//! + `ThermalSubsystem/Fans`, and the deprecated `Power` / `Thermal` resources.
//!
//! The resource layout (which chassis, which schema, which member URLs) is walked once and
//! then again only every [`REWALK_EVERY`] cycles or after an error; a steady cycle reads
//! only what can change (the PSUs and fans, with `$expand` where the service supports it).
//! Sessions: a `SessionService` login (`X-Auth-Token`) reused across cycles, basic auth
//! when the service has none, the session deleted when the collector goes away or the
//! agent exits ([`close_sessions`]). Parsing is pure ([`parse`]); HTTP is in [`http`].
//!
//! Size: about 970 lines, over the ~500 the project aims for: the config and flags (~200), the
//! session bookkeeping, and `Bmc` (login, re-login on 401, the layout walk, one cycle: ~450 lines
//! that share one BMC's session and layout state, so they stay one type). Parsing is in
//! [`parse`], HTTP in [`http`]; the config/flags part is the next to move to a module of
//! its own.

pub mod http;
pub mod parse;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::FlagSpec;
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, GroupReading, MemberHealth,
    Reading,
};
use http::{Client, Endpoint, Response, Trust};
use parse::{Fan, Redundancy, Supply};

/// Environment variable with the password of `--redfish.url` when no
/// `--redfish.password-file` is given.
pub const PASSWORD_ENV: &str = "SPAREWATCH_REDFISH_PASSWORD";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_RETRIES: u32 = 1;
/// A full walk of the resource tree every this many cycles (else only the members).
pub const REWALK_EVERY: u32 = 20;
/// The system CA bundle, used for https when neither a CA file nor insecure is given.
const SYSTEM_CA: &str = "etc/ssl/certs/ca-certificates.crt";

/// `collectors.redfish` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishConfig {
    /// Timeout of one request, e.g. `3s`.
    #[serde(default)]
    pub request_timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub bmcs: Vec<BmcConfig>,
    /// PSU group → member → power feed (`A`, `B`), exported as `sparewatch_psu_feed_info`.
    #[serde(default)]
    pub feeds: BTreeMap<String, BTreeMap<String, String>>,
    /// Headroom the surviving PSUs must keep in the capacity check (10: the load must fit
    /// in 90 % of what is left after losing the largest supply). Default 0.
    #[serde(default)]
    pub psu_capacity_margin_percent: f64,
}

/// One BMC of `collectors.redfish.bmcs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcConfig {
    /// Goes into the `bmc` label and in front of its group names (`psu:<name>/<chassis>`).
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec::text(
        "redfish.url",
        "URL",
        "Redfish service to read, https://HOST[:PORT] (or http://)",
    ),
    FlagSpec::text(
        "redfish.user",
        "USER",
        "User for --redfish.url (session login, else basic auth)",
    ),
    FlagSpec::text(
        "redfish.password-file",
        "FILE",
        "File holding the password for --redfish.url (else $SPAREWATCH_REDFISH_PASSWORD)",
    ),
    FlagSpec::text(
        "redfish.ca-file",
        "FILE",
        "PEM certificates to trust for --redfish.url (a BMC's self-signed certificate) [default: the system CA bundle]",
    ),
    FlagSpec::switch(
        "redfish.insecure-skip-verify",
        "Do not check the TLS certificate of --redfish.url",
    ),
    FlagSpec::text(
        "redfish.timeout",
        "DURATION",
        "Timeout of one Redfish request [default: 3s]",
    ),
    FlagSpec::unsigned(
        "redfish.retries",
        "N",
        32,
        "Retries of a failed request [default: 1]",
    ),
];

fn config_error(detail: impl Into<String>) -> BuildError {
    BuildError::Config {
        collector: "redfish",
        detail: detail.into(),
    }
}

pub use crate::password::Password;

/// Everything to reach one BMC.
#[derive(Clone, Debug)]
pub struct BmcSpec {
    /// The `bmc` label.
    pub name: String,
    /// In front of the group names: empty for `--redfish.url`, `<name>/` for config BMCs.
    pub group_prefix: String,
    pub url: String,
    pub user: Option<String>,
    pub password: Password,
    /// Required for https.
    pub trust: Option<Trust>,
    pub timeout: Duration,
    pub retries: u32,
}

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: RedfishConfig = crate::parse_config("redfish", ctx.config)?;
    let m = ctx.flags;
    let timeout = match m
        .text("redfish", "redfish.timeout")?
        .or(config.request_timeout.as_deref())
    {
        Some(s) => crate::parse_duration(s).map_err(config_error)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(config_error("request timeout must be above zero"));
    }
    let retries = m
        .unsigned::<u32>("redfish", "redfish.retries")?
        .or(config.retries)
        .unwrap_or(DEFAULT_RETRIES);
    let system_ca = ctx.roots.root(SYSTEM_CA);
    let trust_for = |url: &str, ca: Option<PathBuf>, insecure: bool, whose: &str| {
        let ep = Endpoint::parse(url).map_err(|e| config_error(format!("{whose}: {e}")))?;
        if !ep.tls {
            return Ok(None);
        }
        Ok(Some(match (ca, insecure) {
            (_, true) => Trust::Insecure,
            (Some(f), false) => Trust::CaFile(f),
            (None, false) if system_ca.exists() => Trust::CaFile(system_ca.clone()),
            (None, false) => {
                return Err(config_error(format!(
                    "{whose}: https needs a CA file (no system bundle at {})",
                    system_ca.display()
                )))
            }
        }))
    };
    let mut specs = Vec::new();
    if let Some(url) = m.text("redfish", "redfish.url")? {
        let trust = trust_for(
            url,
            m.text("redfish", "redfish.ca-file")?.map(PathBuf::from),
            m.switch("redfish", "redfish.insecure-skip-verify")?,
            "--redfish.url",
        )?;
        let password = match m.text("redfish", "redfish.password-file")? {
            Some(p) => Password::File(PathBuf::from(p)),
            None if std::env::var_os(PASSWORD_ENV).is_some() => Password::Env(PASSWORD_ENV.into()),
            None => Password::None,
        };
        let ep = Endpoint::parse(url).map_err(config_error)?;
        specs.push(BmcSpec {
            name: ep.host.clone(),
            group_prefix: String::new(),
            url: url.to_string(),
            user: m.text("redfish", "redfish.user")?.map(str::to_string),
            password,
            trust,
            timeout,
            retries,
        });
    }
    let mut names = std::collections::HashSet::new();
    for b in &config.bmcs {
        let whose = format!("collectors.redfish.bmcs[{}]", b.name);
        let valid = !b.name.is_empty()
            && b.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
        if !valid || !names.insert(b.name.clone()) {
            return Err(config_error(format!(
                "{whose}: a BMC needs a unique name of letters, digits, '.', '_', '-', ':'"
            )));
        }
        let password = match (&b.password_file, &b.password_env) {
            (Some(_), Some(_)) => {
                return Err(config_error(format!(
                    "{whose}: password_file and password_env exclude each other"
                )))
            }
            (Some(p), None) => Password::File(p.clone()),
            (None, Some(e)) => Password::Env(e.clone()),
            (None, None) => Password::None,
        };
        specs.push(BmcSpec {
            name: b.name.clone(),
            group_prefix: format!("{}/", b.name),
            url: b.url.clone(),
            user: b.user.clone(),
            password,
            trust: trust_for(&b.url, b.ca_file.clone(), b.insecure_skip_verify, &whose)?,
            timeout,
            retries,
        });
    }
    let mut c = RedfishCollector::new(specs).map_err(config_error)?;
    c.feeds = config.feeds;
    let margin = config.psu_capacity_margin_percent;
    if !(0.0..100.0).contains(&margin) {
        return Err(config_error(format!(
            "psu_capacity_margin_percent must be at least 0 and below 100, not {margin}"
        )));
    }
    c.capacity_margin_percent = margin;
    Ok(Box::new(c))
}

/// Sessions open on BMCs, deleted by [`close_sessions`] when the agent exits.
static OPEN_SESSIONS: Mutex<Vec<(u64, Client, String, String)>> = Mutex::new(Vec::new());
static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Deletes every Redfish session still open (on agent shutdown). BMCs have few session
/// slots; a session left behind holds one until it times out on the BMC.
pub fn close_sessions() {
    let open: Vec<_> = match OPEN_SESSIONS.lock() {
        Ok(mut g) => g.drain(..).collect(),
        Err(_) => return,
    };
    for (_, client, location, token) in open {
        delete_session(&client, &location, &token);
    }
}

fn delete_session(client: &Client, location: &str, token: &str) {
    match client.request(
        "DELETE",
        location,
        &[("X-Auth-Token", token.to_string())],
        None,
    ) {
        Ok(r) if r.status < 300 || r.status == 404 => {
            tracing::debug!(bmc = %client.endpoint.url(), "Redfish session deleted")
        }
        Ok(r) => {
            tracing::warn!(bmc = %client.endpoint.url(), status = r.status, "deleting the Redfish session failed")
        }
        Err(e) => {
            tracing::warn!(bmc = %client.endpoint.url(), error = %e, "deleting the Redfish session failed")
        }
    }
}

#[derive(Debug)]
enum Auth {
    /// Not decided yet (first cycle, or after the session was refused).
    Pending,
    /// No user configured: no credentials sent.
    Anonymous,
    Basic(String),
    Session {
        id: u64,
        token: String,
        location: String,
    },
}

/// Where a chassis keeps its PSUs.
#[derive(Clone, Debug)]
enum PsuSource {
    None,
    /// Current schema: the subsystem (redundancy) and the collection of supplies.
    Subsystem {
        subsystem: String,
        supplies: String,
    },
    /// Deprecated `Power`, everything inline.
    Power(String),
}

#[derive(Clone, Debug)]
enum FanSource {
    None,
    Subsystem { subsystem: String, fans: String },
    Thermal(String),
}

#[derive(Clone, Debug)]
struct ChassisLayout {
    id: String,
    psu: PsuSource,
    fan: FanSource,
}

#[derive(Clone, Debug)]
struct Layout {
    expand: bool,
    chassis: Vec<ChassisLayout>,
}

/// One BMC and what the collector keeps of it between cycles.
pub struct Bmc {
    spec: BmcSpec,
    client: Client,
    auth: Auth,
    layout: Option<Layout>,
    cycles_since_walk: u32,
    /// Groups of the last good cycle: reported with every member `unknown` while the BMC
    /// does not answer, so the members (and their history) stay the same.
    known: Vec<GroupReading>,
    /// The service advertised `$expand` but refused it once.
    expand_refused: bool,
    /// PSUs of a chassis losing input together: a suspected shared feed.
    feed_watch: crate::topology::FeedWatch,
    requests: u64,
    logins: u64,
    walks: u64,
}

/// An error of one BMC's cycle.
#[derive(Debug)]
struct BmcError(String);

impl Bmc {
    pub fn new(spec: BmcSpec) -> Result<Bmc, String> {
        let ep = Endpoint::parse(&spec.url)?;
        let tls = match (&spec.trust, ep.tls) {
            (_, false) => None,
            (Some(t), true) => Some(http::tls_config(t)?),
            (None, true) => return Err(format!("{}: https needs a trust setting", spec.url)),
        };
        let client = Client::new(ep, tls, spec.timeout);
        Ok(Bmc {
            spec,
            client,
            auth: Auth::Pending,
            layout: None,
            cycles_since_walk: 0,
            known: Vec::new(),
            expand_refused: false,
            feed_watch: crate::topology::FeedWatch::default(),
            requests: 0,
            logins: 0,
            walks: 0,
        })
    }

    fn auth_header(&self) -> Vec<(&'static str, String)> {
        match &self.auth {
            Auth::Basic(b) => vec![("Authorization", format!("Basic {b}"))],
            Auth::Session { token, .. } => vec![("X-Auth-Token", token.clone())],
            Auth::Pending | Auth::Anonymous => Vec::new(),
        }
    }

    /// One request with retries on transport errors (not on HTTP errors).
    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, BmcError> {
        let mut last = None;
        for _ in 0..=self.spec.retries {
            self.requests += 1;
            match self.client.request(method, path, &self.auth_header(), body) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(BmcError(last.map_or_else(|| "no attempt".into(), |e| e.0)))
    }

    /// GET a resource's body; a 401 on a session logs in again once.
    fn get(&mut self, path: &str) -> Result<Vec<u8>, BmcError> {
        let mut r = self.send("GET", path, None)?;
        if r.status == 401 && matches!(self.auth, Auth::Session { .. }) {
            self.forget_session();
            self.login()?;
            r = self.send("GET", path, None)?;
        }
        match r.status {
            200..=299 => Ok(r.body),
            401 | 403 => Err(BmcError(format!(
                "{} GET {path}: HTTP {}: wrong user or password, or not allowed",
                self.client.endpoint.url(),
                r.status
            ))),
            s => Err(BmcError(format!(
                "{} GET {path}: HTTP {s}",
                self.client.endpoint.url()
            ))),
        }
    }

    fn forget_session(&mut self) {
        if let Auth::Session { id, .. } = self.auth {
            if let Ok(mut g) = OPEN_SESSIONS.lock() {
                g.retain(|s| s.0 != id);
            }
        }
        self.auth = Auth::Pending;
    }

    /// Deletes the session on the BMC, if one is open.
    pub fn logout(&mut self) {
        if let Auth::Session {
            token, location, ..
        } = &self.auth
        {
            let (token, location) = (token.clone(), location.clone());
            self.forget_session();
            delete_session(&self.client, &location, &token);
        }
    }

    /// Decides the authentication: a session when the service has a SessionService and
    /// accepts the login, else basic auth; no credentials without a user.
    fn login(&mut self) -> Result<(), BmcError> {
        let Some(user) = self.spec.user.clone() else {
            self.auth = Auth::Anonymous;
            return Ok(());
        };
        let password = self
            .spec
            .password
            .read()
            .map_err(BmcError)?
            .unwrap_or_default();
        let basic = {
            use base64_lite::encode;
            encode(format!("{user}:{password}").as_bytes())
        };
        self.auth = Auth::Pending;
        // The service root needs no authentication; a service that still wants some
        // (401 here) gets basic auth, any other failure is the BMC's.
        let sessions = match self.get("/redfish/v1/") {
            Ok(b) => parse::service_root(&b).map_err(BmcError)?.sessions,
            Err(BmcError(e)) if e.contains("HTTP 401") => None,
            Err(e) => return Err(e),
        };
        if let Some(sessions) = sessions {
            let body = serde_json::json!({"UserName": user, "Password": password}).to_string();
            let r = self.send("POST", &sessions, Some(body.as_bytes()))?;
            let token = r.header("x-auth-token").map(str::to_string);
            match (r.status, token) {
                (200..=299, Some(token)) if !token.is_empty() => {
                    let location = r
                        .header("location")
                        .map(|l| match l.find("/redfish/") {
                            Some(i) => l[i..].to_string(),
                            None => l.to_string(),
                        })
                        .unwrap_or_default();
                    let id = NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if location.starts_with('/') {
                        if let Ok(mut g) = OPEN_SESSIONS.lock() {
                            g.push((id, self.client.clone(), location.clone(), token.clone()));
                        }
                    }
                    self.logins += 1;
                    self.auth = Auth::Session {
                        id,
                        token,
                        location,
                    };
                    return Ok(());
                }
                (401 | 403, _) => {
                    return Err(BmcError(format!(
                        "{} session login: HTTP {}: wrong user or password",
                        self.client.endpoint.url(),
                        r.status
                    )))
                }
                // No usable SessionService (404, 405, a 2xx without a token): basic auth.
                _ => {}
            }
        }
        self.logins += 1;
        self.auth = Auth::Basic(basic);
        Ok(())
    }

    /// Walks the tree: service root → chassis → where the PSUs and fans are.
    fn walk(&mut self) -> Result<Layout, BmcError> {
        self.walks += 1;
        let root = self.get("/redfish/v1/")?;
        let root = parse::service_root(&root).map_err(BmcError)?;
        let Some(chassis_path) = root.chassis else {
            return Ok(Layout {
                expand: root.expand,
                chassis: Vec::new(),
            });
        };
        let body = self.get(&chassis_path)?;
        let members = parse::collection(&body, &chassis_path).map_err(BmcError)?;
        let mut chassis = Vec::new();
        for m in members {
            let body = self.get(&m.path)?;
            let c = parse::chassis(&body, &m.path).map_err(BmcError)?;
            let psu = if let Some(sub) = c.power_subsystem {
                let b = self.get(&sub)?;
                let ps = parse::power_subsystem(&b, &sub).map_err(BmcError)?;
                match ps.supplies {
                    Some(supplies) => PsuSource::Subsystem {
                        subsystem: sub,
                        supplies,
                    },
                    None => PsuSource::None,
                }
            } else if let Some(p) = c.power {
                PsuSource::Power(p)
            } else {
                PsuSource::None
            };
            let fan = if let Some(sub) = c.thermal_subsystem {
                let b = self.get(&sub)?;
                let ts = parse::thermal_subsystem(&b, &sub).map_err(BmcError)?;
                match ts.fans {
                    Some(fans) => FanSource::Subsystem {
                        subsystem: sub,
                        fans,
                    },
                    None => FanSource::None,
                }
            } else if let Some(t) = c.thermal {
                FanSource::Thermal(t)
            } else {
                FanSource::None
            };
            chassis.push(ChassisLayout { id: c.id, psu, fan });
        }
        let mut ids: Vec<ChassisLayout> = chassis;
        parse::unique_ids(&mut ids, |c| &mut c.id);
        Ok(Layout {
            expand: root.expand,
            chassis: ids,
        })
    }

    /// Members of a collection, with `$expand` when the service supports it.
    fn members(&mut self, path: &str, expand: bool) -> Result<Vec<serde_json::Value>, BmcError> {
        let body = if expand && !self.expand_refused {
            match self.get(&format!("{path}?$expand=.($levels=1)")) {
                Ok(b) => b,
                // A service that advertises $expand but answers 4xx/5xx to it: read the
                // members one by one from now on.
                Err(BmcError(e)) if e.contains(": HTTP 4") || e.contains(": HTTP 5") => {
                    tracing::info!(bmc = %self.spec.name, error = %e, "$expand refused; reading members one by one");
                    self.expand_refused = true;
                    self.get(path)?
                }
                Err(e) => return Err(e),
            }
        } else {
            self.get(path)?
        };
        let list = parse::collection(&body, path).map_err(BmcError)?;
        let mut out = Vec::new();
        for m in list {
            match m.expanded {
                Some(v) => out.push(v),
                None => {
                    let b = self.get(&m.path)?;
                    out.push(parse::object(&b, &m.path).map_err(BmcError)?);
                }
            }
        }
        Ok(out)
    }

    /// Reads the `PowerSupplyMetrics` of each current-schema supply that states no power of
    /// its own (one GET each), for the capacity check's load. One that cannot be read leaves
    /// that supply's load unknown and the rest of the cycle goes on; the errors are returned.
    fn read_supply_metrics(&mut self, supplies: &mut [Supply]) -> Vec<String> {
        let mut errors = Vec::new();
        for p in supplies.iter_mut() {
            let Some(path) = p.metrics.clone() else {
                continue;
            };
            if p.output_watts.is_some() || p.input_watts.is_some() {
                continue;
            }
            match self
                .get(&path)
                .and_then(|b| parse::supply_metrics(&b, &path).map_err(BmcError))
            {
                Ok(m) => {
                    p.input_watts = m.input_watts;
                    p.output_watts = m.output_watts;
                }
                Err(e) => errors.push(e.0),
            }
        }
        errors
    }

    fn cycle(&mut self, out: &mut Collection, margin_percent: f64) -> Result<(), BmcError> {
        if matches!(self.auth, Auth::Pending) {
            self.login()?;
        }
        if self.layout.is_none() || self.cycles_since_walk >= REWALK_EVERY {
            self.layout = Some(self.walk()?);
            self.cycles_since_walk = 0;
        }
        self.cycles_since_walk += 1;
        let layout = self.layout.clone().unwrap_or(Layout {
            expand: false,
            chassis: Vec::new(),
        });
        let bmc = self.spec.name.clone();
        for c in &layout.chassis {
            let labels = |k: &'static str, v: &str| {
                vec![
                    ("bmc", bmc.clone()),
                    ("chassis", c.id.clone()),
                    (k, v.to_string()),
                ]
            };
            let mut consumed = None;
            let mut metrics_errors = Vec::new();
            let (mut supplies, red): (Vec<Supply>, Vec<Redundancy>) = match &c.psu {
                PsuSource::None => (Vec::new(), Vec::new()),
                PsuSource::Subsystem {
                    subsystem,
                    supplies,
                } => {
                    let b = self.get(subsystem)?;
                    let ps = parse::power_subsystem(&b, subsystem).map_err(BmcError)?;
                    if let Some(w) = ps.capacity_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_chassis_power_capacity_watts",
                            "Power capacity of the chassis as its BMC states it (PowerSubsystem.CapacityWatts, Power.PowerControl[0].PowerCapacityWatts).",
                            vec![("bmc", bmc.clone()), ("chassis", c.id.clone())],
                            w,
                        ));
                    }
                    let list = self.members(supplies, layout.expand)?;
                    let mut s: Vec<Supply> = list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| parse::supply(v, i))
                        .collect();
                    metrics_errors = self.read_supply_metrics(&mut s);
                    (s, ps.redundancy)
                }
                PsuSource::Power(p) => {
                    let b = self.get(p)?;
                    let pw = parse::power(&b, p).map_err(BmcError)?;
                    let lbl = vec![("bmc", bmc.clone()), ("chassis", c.id.clone())];
                    consumed = pw.consumed_watts;
                    if let Some(w) = pw.consumed_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_chassis_power_consumed_watts",
                            "Power the chassis draws (Power.PowerControl[0].PowerConsumedWatts).",
                            lbl.clone(),
                            w,
                        ));
                    }
                    if let Some(w) = pw.capacity_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_chassis_power_capacity_watts",
                            "Power capacity of the chassis as its BMC states it (PowerSubsystem.CapacityWatts, Power.PowerControl[0].PowerCapacityWatts).",
                            lbl,
                            w,
                        ));
                    }
                    (pw.supplies, pw.redundancy)
                }
            };
            parse::unique_ids(&mut supplies, |s| &mut s.id);
            let mut fan_red = Vec::new();
            let mut fans: Vec<Fan> = match &c.fan {
                FanSource::None => Vec::new(),
                FanSource::Subsystem { subsystem, fans } => {
                    let b = self.get(subsystem)?;
                    let ts = parse::thermal_subsystem(&b, subsystem).map_err(BmcError)?;
                    fan_red = ts.redundancy;
                    let list = self.members(fans, layout.expand)?;
                    list.iter()
                        .enumerate()
                        .map(|(i, v)| parse::fan(v, i))
                        .collect()
                }
                FanSource::Thermal(t) => {
                    let b = self.get(t)?;
                    let th = parse::thermal(&b, t).map_err(BmcError)?;
                    fan_red = th.redundancy;
                    th.fans
                }
            };
            parse::unique_ids(&mut fans, |f| &mut f.id);
            if !supplies.is_empty() {
                for p in &supplies {
                    if let Some(w) = p.capacity_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_psu_capacity_watts",
                            "Rated output of a PSU (PowerCapacityWatts).",
                            labels("psu", &p.id),
                            w,
                        ));
                    }
                    if let Some(w) = p.input_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_psu_input_watts",
                            "Input power of a PSU (PowerInputWatts, or InputPowerWatts of its PowerSupplyMetrics).",
                            labels("psu", &p.id),
                            w,
                        ));
                    }
                    if let Some(w) = p.output_watts {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_psu_output_watts",
                            "Output power of a PSU (LastPowerOutputWatts, or OutputPowerWatts of its PowerSupplyMetrics).",
                            labels("psu", &p.id),
                            w,
                        ));
                    }
                }
                let name = format!("psu:{}{}", self.spec.group_prefix, c.id);
                let mut g = parse::psu_group(name, &supplies, &red);
                g.capacity = crate::topology::power::capacity(
                    &parse::capacity_supplies(&supplies, consumed),
                    margin_percent,
                );
                // A load left unknown because its PowerSupplyMetrics could not be read says why.
                if let Some(cap) = g.capacity.as_mut().filter(|c| c.sufficient.is_none()) {
                    if !metrics_errors.is_empty() {
                        cap.reason = format!("{} ({})", cap.reason, metrics_errors.join("; "));
                    }
                }
                let lost = supplies
                    .iter()
                    .filter(|p| parse::input_lost(p))
                    .map(|p| p.id.clone())
                    .collect();
                self.feed_watch
                    .observe(std::time::Instant::now(), &mut g, &lost);
                out.groups.push(g);
            }
            if !fans.is_empty() {
                for f in &fans {
                    if let Some(r) = f.rpm {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_fan_speed_rpm",
                            "Fan speed in RPM as the BMC reports it.",
                            labels("fan", &f.id),
                            r,
                        ));
                    }
                    if let Some(p) = f.percent {
                        out.readings.push(Reading::gauge(
                            "sparewatch_redfish_fan_speed_ratio",
                            "Fan speed as a ratio of its maximum (percent / 100).",
                            labels("fan", &f.id),
                            p / 100.0,
                        ));
                    }
                }
                let name = format!("fan:{}{}", self.spec.group_prefix, c.id);
                out.groups.push(parse::fan_group(name, &fans, &fan_red));
            }
        }
        Ok(())
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        self.logout();
    }
}

/// A tiny base64 encoder for the basic-auth header (the collectors crate has no base64).
mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(b: &[u8]) -> String {
        let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= c.len() {
                    out.push(T[((n >> shift) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// The collector: every BMC read in parallel, each bounded by its own timeouts.
pub struct RedfishCollector {
    bmcs: Vec<Bmc>,
    /// PSU group → member → feed.
    pub feeds: BTreeMap<String, BTreeMap<String, String>>,
    /// `psu_capacity_margin_percent` of the capacity check.
    pub capacity_margin_percent: f64,
}

impl RedfishCollector {
    pub fn new(specs: Vec<BmcSpec>) -> Result<RedfishCollector, String> {
        Ok(RedfishCollector {
            bmcs: specs.into_iter().map(Bmc::new).collect::<Result<_, _>>()?,
            feeds: BTreeMap::new(),
            capacity_margin_percent: 0.0,
        })
    }
}

impl Collector for RedfishCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        if self.bmcs.is_empty() {
            return Ok(Collection::not_present());
        }
        let margin = self.capacity_margin_percent;
        let results: Vec<(Collection, Result<(), BmcError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .bmcs
                .iter_mut()
                .map(|b| {
                    s.spawn(move || {
                        let mut c = Collection::present();
                        let r = b.cycle(&mut c, margin);
                        if r.is_err() {
                            // Re-walk and re-decide the login after any failure.
                            b.layout = None;
                        }
                        (c, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            Collection::present(),
                            Err(BmcError("BMC thread panicked".into())),
                        )
                    })
                })
                .collect()
        });
        let mut out = Collection::present();
        let mut errors = Vec::new();
        for (b, (c, r)) in self.bmcs.iter_mut().zip(results) {
            let up = r.is_ok();
            match r {
                Ok(_) => {
                    b.known = c.groups.clone();
                    out.groups.extend(c.groups);
                    out.readings.extend(c.readings);
                }
                Err(BmcError(why)) => {
                    tracing::warn!(bmc = %b.spec.name, error = %why, "Redfish BMC failed");
                    for g in &b.known {
                        let mut g = g.clone();
                        g.stated = None;
                        // Watts of a BMC that does not answer are not known now.
                        g.capacity = None;
                        for m in &mut g.members {
                            m.health = MemberHealth::Unknown(format!("BMC not answering: {why}"));
                        }
                        out.groups.push(g);
                    }
                    errors.push(why);
                }
            }
            let lbl = || vec![("bmc", b.spec.name.clone())];
            out.readings.push(Reading::gauge(
                "sparewatch_redfish_bmc_up",
                "1 when the last cycle of this Redfish BMC succeeded.",
                lbl(),
                if up { 1.0 } else { 0.0 },
            ));
            let auth = match b.auth {
                Auth::Session { .. } => "session",
                Auth::Basic(_) => "basic",
                Auth::Anonymous => "none",
                Auth::Pending => "pending",
            };
            out.readings.push(Reading::gauge(
                "sparewatch_redfish_bmc_info",
                "Always 1: the URL of a Redfish BMC and how the collector authenticates (session, basic, none, pending).",
                vec![
                    ("bmc", b.spec.name.clone()),
                    ("url", b.client.endpoint.url()),
                    ("auth", auth.to_string()),
                ],
                1.0,
            ));
            for (metric, help, v) in [
                ("sparewatch_redfish_requests_total", "HTTP requests sent to this BMC, retries included.", b.requests),
                ("sparewatch_redfish_logins_total", "Authentication decisions made (session logins or fallbacks to basic auth); growing means sessions are re-established.", b.logins),
                ("sparewatch_redfish_walks_total", "Full walks of the BMC's resource tree (else only the PSUs and fans are read).", b.walks),
            ] {
                out.readings.push(Reading::counter(metric, help, lbl(), v as f64));
            }
        }
        if errors.len() == self.bmcs.len() {
            return Err(CollectError::Other(errors.join("; ")));
        }
        // The configured feed of each PSU is its `feed` failure domain (as hwmon's
        // `psu_feeds`): two PSUs of one group on one feed leave effective spare 0.
        for g in out.groups.iter_mut().filter(|g| g.kind == "psu") {
            if let Some(members) = self.feeds.get(&g.name) {
                crate::topology::annotate_psu_feeds(members, g);
            }
        }
        for (group, members) in &self.feeds {
            let Some(g) = out.groups.iter().find(|g| &g.name == group) else {
                continue;
            };
            for (member, feed) in members {
                if g.members.iter().any(|m| &m.name == member) {
                    out.readings.push(Reading::gauge(
                        "sparewatch_psu_feed_info",
                        "Always 1: the power feed a PSU is on, from collectors.redfish.feeds; two PSUs of one group on one feed share that failure domain.",
                        vec![
                            ("group", group.clone()),
                            ("member", member.clone()),
                            ("feed", feed.clone()),
                        ],
                        1.0,
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(
            super::base64_lite::encode(b"admin:password"),
            "YWRtaW46cGFzc3dvcmQ="
        );
        assert_eq!(super::base64_lite::encode(b"ab"), "YWI=");
        assert_eq!(super::base64_lite::encode(b""), "");
    }
}
