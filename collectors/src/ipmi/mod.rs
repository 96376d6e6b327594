//! The `ipmi` collector: power supplies, power redundancy and fans from the BMC, in-band
//! (`/dev/ipmi0`) or over RMCP+ (lanplus), through the crate ipmi-rs.
//!
//! Each cycle asks the BMC for its SDR repository info; the records themselves are read
//! (reservation + chunked Get SDR) only when the repository's addition/erase timestamps or
//! record count changed. Then one Get Sensor Reading per sensor. Parsing and the redundancy
//! decoding are pure ([`sdr`], [`decode`], [`groups`]); the I/O is in [`session`].

pub mod decode;
pub mod groups;
pub mod sdr;
pub mod session;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgMatches};
use serde::Deserialize;

use crate::{BuildContext, BuildError, CollectError, Collection, Collector, Reading};
use groups::{Naming, Sample};
use sdr::{Record, RepositoryInfo, SensorRecord};
use session::{RequestError, Secret, Session, Target};

/// Environment variable with the password of the BMC given by `--ipmi.host` when no
/// `--ipmi.password-file` is given.
pub const PASSWORD_ENV: &str = "SPAREWATCH_IPMI_PASSWORD";
const DEFAULT_PORT: u16 = 623;
/// The only cipher suite ipmi-rs 0.6 negotiates: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
const SUPPORTED_CIPHER_SUITE: u8 = 3;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RETRIES: u32 = 1;
const DEFAULT_CHUNK: u8 = 16;
/// At most this often does a sensor answering "not present" force an SDR reread.
const FORCED_REREAD_MIN_INTERVAL: Duration = Duration::from_secs(600);

/// `collectors.ipmi` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpmiConfig {
    /// In-band device (default `/dev/ipmi0` under `--path.rootfs`).
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// Timeout of one request, e.g. `2s`.
    #[serde(default)]
    pub request_timeout: Option<String>,
    /// Retries of a request that got no answer, each on a new session.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Bytes per Get SDR request (4..=32, default 16).
    #[serde(default)]
    pub sdr_chunk_size: Option<u8>,
    /// Remote BMCs watched besides (or instead of) the host's own.
    #[serde(default)]
    pub bmcs: Vec<BmcConfig>,
}

/// One remote BMC of `collectors.ipmi.bmcs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcConfig {
    /// Goes into the `bmc` label and in front of its group names (`psu:<name>/chassis`).
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub cipher_suite: Option<u8>,
}

pub fn args() -> Vec<Arg> {
    vec![
        Arg::new("ipmi.host")
            .long("ipmi.host")
            .value_name("HOST")
            .help("BMC to read over RMCP+ (lanplus) instead of the in-band device"),
        Arg::new("ipmi.port")
            .long("ipmi.port")
            .value_name("PORT")
            .value_parser(clap::value_parser!(u16))
            .help("UDP port of --ipmi.host [default: 623]"),
        Arg::new("ipmi.user")
            .long("ipmi.user")
            .value_name("USER")
            .help("User name for --ipmi.host (at most 16 ASCII characters)"),
        Arg::new("ipmi.password-file")
            .long("ipmi.password-file")
            .value_name("FILE")
            .help("File holding the password for --ipmi.host (else $SPAREWATCH_IPMI_PASSWORD)"),
        Arg::new("ipmi.cipher-suite")
            .long("ipmi.cipher-suite")
            .value_name("ID")
            .value_parser(clap::value_parser!(u8))
            .help("RMCP+ cipher suite; ipmi-rs supports 3 only [default: 3]"),
        Arg::new("ipmi.device")
            .long("ipmi.device")
            .value_name("PATH")
            .help("In-band IPMI device, used when it exists and no --ipmi.host is given [default: /dev/ipmi0 under --path.rootfs]"),
        Arg::new("ipmi.timeout")
            .long("ipmi.timeout")
            .value_name("DURATION")
            .help("Timeout of one IPMI request [default: 2s]"),
        Arg::new("ipmi.retries")
            .long("ipmi.retries")
            .value_name("N")
            .value_parser(clap::value_parser!(u32))
            .help("Retries of an unanswered request, each on a new session [default: 1]"),
    ]
}

fn config_error(detail: impl Into<String>) -> BuildError {
    BuildError::Config {
        collector: "ipmi",
        detail: detail.into(),
    }
}

fn flag<'a>(m: &'a ArgMatches, id: &str) -> Option<&'a String> {
    m.try_get_one::<String>(id).ok().flatten()
}

fn check_user(user: &str, whose: &str) -> Result<(), BuildError> {
    // ipmi-rs would silently log in anonymously with a name it cannot encode.
    if user.len() > 16 || !user.chars().all(|c| c.is_ascii() && c != '\0') {
        return Err(config_error(format!(
            "{whose}: the user name must be at most 16 ASCII characters"
        )));
    }
    Ok(())
}

fn check_cipher(suite: Option<u8>, whose: &str) -> Result<(), BuildError> {
    match suite {
        None | Some(SUPPORTED_CIPHER_SUITE) => Ok(()),
        Some(s) => Err(config_error(format!(
            "{whose}: cipher suite {s} is not supported: ipmi-rs 0.6 negotiates cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) only"
        ))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: IpmiConfig = crate::parse_config("ipmi", ctx.config)?;
    let m = ctx.matches;
    let timeout = match flag(m, "ipmi.timeout").or(config.request_timeout.as_ref()) {
        Some(s) => crate::parse_duration(s).map_err(config_error)?,
        None => DEFAULT_REQUEST_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(config_error("request timeout must be above zero"));
    }
    let retries = m
        .try_get_one::<u32>("ipmi.retries")
        .ok()
        .flatten()
        .copied()
        .or(config.retries)
        .unwrap_or(DEFAULT_RETRIES);
    let chunk = config.sdr_chunk_size.unwrap_or(DEFAULT_CHUNK);
    if !(4..=32).contains(&chunk) {
        return Err(config_error("sdr_chunk_size must be within 4..=32"));
    }

    let mut bmcs = Vec::new();
    let mut in_band = None;
    if let Some(host) = flag(m, "ipmi.host") {
        let user = flag(m, "ipmi.user").cloned().unwrap_or_default();
        check_user(&user, "--ipmi.user")?;
        check_cipher(
            m.try_get_one::<u8>("ipmi.cipher-suite")
                .ok()
                .flatten()
                .copied(),
            "--ipmi.cipher-suite",
        )?;
        let password = match flag(m, "ipmi.password-file") {
            Some(p) => Secret::File(PathBuf::from(p)),
            None if std::env::var_os(PASSWORD_ENV).is_some() => Secret::Env(PASSWORD_ENV.into()),
            None => Secret::None,
        };
        let port = m
            .try_get_one::<u16>("ipmi.port")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(DEFAULT_PORT);
        bmcs.push(Bmc::new(
            Naming {
                bmc: host.clone(),
                group_prefix: String::new(),
            },
            Session::new(
                Target::Lan {
                    host: host.clone(),
                    port,
                    user,
                    password,
                },
                timeout,
                retries,
            ),
            chunk,
        ));
    } else {
        let device = match flag(m, "ipmi.device") {
            Some(d) => PathBuf::from(d),
            None => config
                .device
                .clone()
                .unwrap_or_else(|| ctx.roots.root("dev/ipmi0")),
        };
        // Looked for on every cycle until it is there: ipmi_si / ipmi_devintf may load
        // after the agent started (a module loaded late, a BMC that came up slowly).
        in_band = Some(InBand {
            device,
            timeout,
            retries,
            chunk,
            attached: false,
        });
    }
    let mut names = std::collections::HashSet::new();
    for b in &config.bmcs {
        let whose = format!("collectors.ipmi.bmcs[{}]", b.name);
        if !valid_name(&b.name) || !names.insert(b.name.clone()) {
            return Err(config_error(format!(
                "{whose}: a BMC needs a unique name of letters, digits, '.', '_', '-', ':'"
            )));
        }
        let user = b.user.clone().unwrap_or_default();
        check_user(&user, &whose)?;
        check_cipher(b.cipher_suite, &whose)?;
        let password = match (&b.password_file, &b.password_env) {
            (Some(_), Some(_)) => {
                return Err(config_error(format!(
                    "{whose}: password_file and password_env exclude each other"
                )))
            }
            (Some(p), None) => Secret::File(p.clone()),
            (None, Some(e)) => Secret::Env(e.clone()),
            (None, None) => Secret::None,
        };
        bmcs.push(Bmc::new(
            Naming {
                bmc: b.name.clone(),
                group_prefix: format!("{}/", b.name),
            },
            Session::new(
                Target::Lan {
                    host: b.host.clone(),
                    port: b.port.unwrap_or(DEFAULT_PORT),
                    user,
                    password,
                },
                timeout,
                retries,
            ),
            chunk,
        ));
    }
    Ok(Box::new(IpmiCollector { bmcs, in_band }))
}

/// The host's in-band device while no `--ipmi.host` is given: looked for once per cycle
/// (one stat) until it exists, then read like any other BMC.
struct InBand {
    device: PathBuf,
    timeout: Duration,
    retries: u32,
    chunk: u8,
    /// Found once: from then on it is a [`Bmc`] of the collector, and a device that goes
    /// away is that BMC failing (collector down), not "not present".
    attached: bool,
}

impl InBand {
    /// `Ok(Some)` the first time the device is there, `Ok(None)` while it is absent (or
    /// once it was attached), `Err` when it cannot be told (a stat error other than "does
    /// not exist"): broken, not absent.
    fn probe(&mut self) -> Result<Option<Bmc>, String> {
        if self.attached {
            return Ok(None);
        }
        match std::fs::metadata(&self.device) {
            Ok(_) => {
                self.attached = true;
                tracing::info!(device = %self.device.display(), "in-band IPMI device found");
                Ok(Some(Bmc::new(
                    Naming {
                        bmc: "local".into(),
                        group_prefix: String::new(),
                    },
                    Session::new(
                        Target::Device(self.device.clone()),
                        self.timeout,
                        self.retries,
                    ),
                    self.chunk,
                )))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!(
                "in-band IPMI device {}: {e}",
                self.device.display()
            )),
        }
    }
}

/// One BMC, its session and its SDR cache.
pub struct Bmc {
    pub naming: Naming,
    session: Session,
    chunk: u8,
    cache: Option<((u32, u32, u16), Vec<SensorRecord>)>,
    /// Force a reread of the repository next cycle (a sensor vanished).
    cache_suspect: bool,
    /// When a vanished sensor last forced a reread: some BMCs answer "not present" for the
    /// sensors of an absent PSU on every cycle, which must not mean a reread every cycle.
    last_forced_reread: Option<std::time::Instant>,
    sdr_reads: u64,
}

/// What one cycle of one BMC produced.
pub struct BmcCycle {
    pub samples: Vec<Sample>,
    /// Sensors not read: owned by another controller (not reachable over RMCP+) or by
    /// system software.
    pub skipped: usize,
}

impl Bmc {
    pub fn new(naming: Naming, session: Session, chunk: u8) -> Self {
        Bmc {
            naming,
            session,
            chunk,
            cache: None,
            cache_suspect: false,
            last_forced_reread: None,
            sdr_reads: 0,
        }
    }

    /// A BMC for tests and benchmarks: RMCP+ to `host:port`.
    pub fn lan(
        name: &str,
        host: &str,
        port: u16,
        user: &str,
        password_file: PathBuf,
        timeout: Duration,
        retries: u32,
    ) -> Self {
        Bmc::new(
            Naming {
                bmc: name.into(),
                group_prefix: String::new(),
            },
            Session::new(
                Target::Lan {
                    host: host.into(),
                    port,
                    user: user.into(),
                    password: Secret::File(password_file),
                },
                timeout,
                retries,
            ),
            DEFAULT_CHUNK,
        )
    }

    /// Puts the BMC's name in front of its group names (`psu:<name>/chassis`), as for the
    /// BMCs of the config file.
    pub fn with_name_in_groups(mut self) -> Self {
        self.naming.group_prefix = format!("{}/", self.naming.bmc);
        self
    }

    /// How many times the whole SDR repository was read.
    pub fn sdr_reads(&self) -> u64 {
        self.sdr_reads
    }

    pub fn stats(&self) -> session::SessionStats {
        self.session.stats
    }

    /// The cached sensor records (empty before the first successful read).
    pub fn records(&self) -> &[SensorRecord] {
        self.cache.as_ref().map(|c| c.1.as_slice()).unwrap_or(&[])
    }

    fn refresh_sdrs(&mut self) -> Result<(), RequestError> {
        let info: RepositoryInfo =
            self.session
                .request(None, 0, session::GetSdrRepositoryInfo {})?;
        let key = info.cache_key();
        if !self.cache_suspect && self.cache.as_ref().is_some_and(|c| c.0 == key) {
            return Ok(());
        }
        if self.cache_suspect {
            self.last_forced_reread = Some(std::time::Instant::now());
        }
        let raw = session::read_repository(&mut self.session, self.chunk)?;
        self.sdr_reads += 1;
        let mut records = Vec::new();
        for bytes in raw {
            match sdr::parse_record(&bytes) {
                Ok(Record::Sensors(s)) => records.extend(s),
                Ok(Record::Other { .. }) => {}
                Err(e) => {
                    tracing::warn!(bmc = %self.naming.bmc, error = %e, "skipping an SDR that does not parse")
                }
            }
        }
        tracing::debug!(bmc = %self.naming.bmc, sensors = records.len(), "SDR repository read");
        self.cache = Some((key, records));
        self.cache_suspect = false;
        Ok(())
    }

    /// One cycle: SDRs (cached), then every sensor's reading.
    pub fn cycle(&mut self) -> Result<BmcCycle, RequestError> {
        self.refresh_sdrs()?;
        let records = self.records().to_vec();
        let lan = self.session.is_lan();
        let mut samples = Vec::with_capacity(records.len());
        let mut skipped = 0;
        for r in records {
            let software = r.owner_id & 1 == 1;
            let remote_controller = r.owner_id != 0x20;
            if software || (lan && remote_controller) {
                skipped += 1;
                continue;
            }
            let owner = remote_controller.then_some((r.owner_id, r.channel));
            let reading = match self.session.request(
                owner,
                r.owner_lun,
                session::GetSensorReading { number: r.number },
            ) {
                Ok(x) => Ok(x),
                Err(RequestError::Completion(cc)) => {
                    let recently = self
                        .last_forced_reread
                        .is_some_and(|t| t.elapsed() < FORCED_REREAD_MIN_INTERVAL);
                    if session::CC_NO_SUCH_SENSOR.contains(&cc) && !recently {
                        self.cache_suspect = true;
                    }
                    Err(format!("completion code {cc:#04x}"))
                }
                Err(RequestError::Parse(e)) => Err(e),
                Err(e @ RequestError::Transport(_)) => return Err(e),
            };
            samples.push(Sample { record: r, reading });
        }
        Ok(BmcCycle { samples, skipped })
    }

    fn bmc_readings(&self, up: bool, skipped: usize, out: &mut Vec<Reading>) {
        let l = || vec![("bmc", self.naming.bmc.clone())];
        let (interface, address) = match self.session.target() {
            Target::Device(p) => ("device", p.display().to_string()),
            Target::Lan { host, port, .. } => ("lanplus", format!("{host}:{port}")),
        };
        out.push(Reading::gauge(
            "sparewatch_ipmi_bmc_info",
            "A BMC the ipmi collector reads, and how.",
            vec![
                ("bmc", self.naming.bmc.clone()),
                ("interface", interface.to_string()),
                ("address", address),
            ],
            1.0,
        ));
        out.push(Reading::gauge(
            "sparewatch_ipmi_bmc_up",
            "Whether the last cycle of this BMC succeeded.",
            l(),
            up as u8 as f64,
        ));
        out.push(Reading::gauge(
            "sparewatch_ipmi_sdr_sensors",
            "Sensors in the cached SDR repository of this BMC.",
            l(),
            self.records().len() as f64,
        ));
        out.push(Reading::gauge(
            "sparewatch_ipmi_sensors_skipped",
            "Sensors not read: owned by another controller (not reachable over RMCP+) or by system software.",
            l(),
            skipped as f64,
        ));
        let st = self.session.stats;
        for (name, help, v) in [
            (
                "sparewatch_ipmi_sdr_repository_reads_total",
                "Times the whole SDR repository was read (only when its timestamps or record count changed).",
                self.sdr_reads,
            ),
            (
                "sparewatch_ipmi_requests_total",
                "IPMI requests sent, retries included.",
                st.requests,
            ),
            (
                "sparewatch_ipmi_request_retries_total",
                "Requests sent again after getting no usable answer.",
                st.retries,
            ),
            (
                "sparewatch_ipmi_transport_errors_total",
                "Requests without a usable answer (timeout, socket error, login failure).",
                st.transport_errors,
            ),
            (
                "sparewatch_ipmi_sessions_total",
                "Sessions opened (RMCP+ logins or device opens); more than one means re-established sessions.",
                st.logins,
            ),
            (
                "sparewatch_ipmi_stale_sessions_closed_total",
                "Sessions given up after a timeout that were still open on the BMC and were closed from the next session.",
                st.stale_closed,
            ),
        ] {
            out.push(Reading::counter(name, help, l(), v as f64));
        }
    }
}

/// The collector: the host's own BMC (in-band or `--ipmi.host`) and the config file's BMCs.
pub struct IpmiCollector {
    bmcs: Vec<Bmc>,
    in_band: Option<InBand>,
}

impl IpmiCollector {
    pub fn new(bmcs: Vec<Bmc>) -> Self {
        IpmiCollector {
            bmcs,
            in_band: None,
        }
    }

    pub fn bmcs(&self) -> &[Bmc] {
        &self.bmcs
    }
}

fn run_bmc(b: &mut Bmc) -> (Result<BmcCycle, RequestError>, Collection) {
    let res = b.cycle();
    let mut c = Collection::present();
    match &res {
        Ok(cycle) => {
            c.groups = groups::build_groups(&b.naming, &cycle.samples);
            groups::sensor_readings(&b.naming, &cycle.samples, &mut c.readings);
            b.bmc_readings(true, cycle.skipped, &mut c.readings);
        }
        Err(e) => {
            let why = format!("BMC not answering: {e}");
            c.groups = groups::unknown_groups(&b.naming, b.records(), &why);
            b.bmc_readings(false, 0, &mut c.readings);
        }
    }
    (res, c)
}

impl Collector for IpmiCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let probe_error = match self.in_band.as_mut().map(InBand::probe) {
            Some(Ok(Some(local))) => {
                // The host's own BMC comes first, as when it exists at start-up.
                self.bmcs.insert(0, local);
                None
            }
            Some(Err(e)) => Some(e),
            Some(Ok(None)) | None => None,
        };
        match (self.bmcs.len(), probe_error) {
            (0, None) => Ok(Collection::not_present()),
            (0, Some(e)) => Err(CollectError::Other(e)),
            (1, None) => {
                let b = &mut self.bmcs[0];
                let (res, c) = run_bmc(b);
                match res {
                    Ok(_) => Ok(c),
                    Err(e) => Err(CollectError::Other(format!(
                        "BMC {} ({:?}): {e}",
                        b.naming.bmc,
                        b.session.target()
                    ))),
                }
            }
            (_, probe_error) => {
                // Every BMC on its own thread: a hung one costs its timeout, not the others'.
                let results: Vec<(Result<BmcCycle, RequestError>, Collection)> =
                    std::thread::scope(|s| {
                        let handles: Vec<_> = self
                            .bmcs
                            .iter_mut()
                            .map(|b| s.spawn(move || run_bmc(b)))
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| {
                                h.join().unwrap_or_else(|_| {
                                    (
                                        Err(RequestError::Transport("BMC thread panicked".into())),
                                        Collection::present(),
                                    )
                                })
                            })
                            .collect()
                    });
                let mut out = Collection::present();
                let mut errors: Vec<String> = probe_error.into_iter().collect();
                let sources = self.bmcs.len() + errors.len();
                for ((res, c), b) in results.into_iter().zip(&self.bmcs) {
                    if let Err(e) = res {
                        tracing::warn!(bmc = %b.naming.bmc, error = %e, "BMC not answering");
                        errors.push(format!(
                            "BMC {} ({:?}): {e}",
                            b.naming.bmc,
                            b.session.target()
                        ));
                    }
                    out.groups.extend(c.groups);
                    out.readings.extend(c.readings);
                }
                if errors.len() == sources {
                    return Err(CollectError::Other(errors.join("; ")));
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_names_users_and_cipher_suites() {
        assert!(check_user("admin", "x").is_ok());
        assert!(check_user("", "x").is_ok());
        assert!(check_user(&"a".repeat(17), "x").is_err());
        assert!(check_user("adm\u{e9}n", "x").is_err());
        assert!(check_cipher(None, "x").is_ok());
        assert!(check_cipher(Some(3), "x").is_ok());
        assert!(check_cipher(Some(17), "x").is_err());
        assert!(valid_name("rack1-node07"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn config_keys_parse_and_unknown_keys_are_refused() {
        let ok: serde_yaml::Value = serde_yaml::from_str(
            "request_timeout: 1s\nretries: 2\nbmcs: [{name: a, host: h, password_env: P}]",
        )
        .expect("yaml");
        let c: IpmiConfig = crate::parse_config("ipmi", Some(&ok)).expect("parses");
        assert_eq!(c.bmcs[0].password_env.as_deref(), Some("P"));
        let bad: serde_yaml::Value =
            serde_yaml::from_str("bmcs: [{name: a, host: h, password: x}]").expect("yaml");
        assert!(crate::parse_config::<IpmiConfig>("ipmi", Some(&bad)).is_err());
    }
}
