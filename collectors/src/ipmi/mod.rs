//! The `ipmi` collector: power supplies, power redundancy and fans from the BMC, in-band
//! (`/dev/ipmi0`) or over RMCP+ (lanplus), through the crate ipmi-rs.
//!
//! Each cycle asks the BMC for its SDR repository info; the records themselves are read
//! (reservation + chunked Get SDR) only when the repository's addition/erase timestamps or
//! record count changed. Then one Get Sensor Reading per sensor. Parsing and the redundancy
//! decoding are pure ([`sdr`], [`decode`], [`groups`]); the I/O is in [`session`].
//!
//! Between passes the BMC's System Event Log is followed ([`sel`]): a thread per BMC, on a
//! session of its own, asks for the SEL info every `sel_poll_interval` (1 s) and reads only
//! the entries added since. New entries wake the collector, which then re-reads only the
//! sensors those entries name and keeps every other sensor's last reading. A state that
//! came and went between two SEL polls (asserted, then deasserted) is shown for one pass
//! and the true reading on the next, so the engine still counts the transition. Full passes
//! stay the safety net: on the interval, when the SEL is full or unreadable (at most every
//! [`SEL_FALLBACK_PASS`]), and when the last full pass is older than [`FULL_PASS_MAX_AGE`].
//!
//! In-band, the BMC's event messages come too ([`events`]): a thread holds a descriptor of
//! `/dev/ipmi0` of its own in the driver's gets-events mode; an event about a PSU, power
//! unit, fan or redundancy wakes the collector like a new SEL entry, without waiting for
//! the SEL poll. The same event read from both sources is re-read once.
//!
//! Size: about 1,430 lines of code, the largest module, over the ~500 the project aims for:
//! the config, flags and build (~270), then one `Bmc` with its two followers (the SEL
//! follower and the in-band event listener, ~250, each on its own thread but feeding the
//! same partial pass and sharing its dedup state) and the cycle (~550: SDR cache, full and
//! partial passes, the capacity check). Decoding, grouping, SDR and session I/O are already
//! modules of their own; the followers (to `follow.rs`) and the config (to `config.rs`) are
//! the next to move out.

pub mod decode;
pub mod events;
pub mod groups;
pub mod sdr;
pub mod sel;
pub mod session;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::FlagSpec;
use serde::Deserialize;

use crate::{BuildContext, BuildError, CollectError, Collection, Collector, Reading, Wake};
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
/// How often the SEL is polled by default.
const DEFAULT_SEL_POLL: Duration = Duration::from_secs(1);
/// While the SEL cannot tell of new events (full, or answering garbage), a full pass is
/// asked for this often, whatever the collector's interval.
pub const SEL_FALLBACK_PASS: Duration = Duration::from_secs(15);
/// SEL-driven partial passes are used only while the last full pass is at most this old.
pub const FULL_PASS_MAX_AGE: Duration = Duration::from_secs(600);

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
    /// How often the System Event Log is asked for new entries, e.g. `1s`; `0s` turns SEL
    /// following off (then only the interval's full passes see changes).
    #[serde(default)]
    pub sel_poll_interval: Option<String>,
    /// Remote BMCs watched besides (or instead of) the host's own.
    #[serde(default)]
    pub bmcs: Vec<BmcConfig>,
    /// Rated watts of each PSU, for the capacity check (IPMI does not say it).
    #[serde(default)]
    pub psu_rated_watts: Option<f64>,
    /// Headroom the surviving PSUs must keep in the capacity check (default 0).
    #[serde(default)]
    pub psu_capacity_margin_percent: f64,
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

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec::text(
        "ipmi.host",
        "HOST",
        "BMC to read over RMCP+ (lanplus) instead of the in-band device",
    ),
    FlagSpec::unsigned(
        "ipmi.port",
        "PORT",
        16,
        "UDP port of --ipmi.host [default: 623]",
    ),
    FlagSpec::text(
        "ipmi.user",
        "USER",
        "User name for --ipmi.host (at most 16 ASCII characters)",
    ),
    FlagSpec::text(
        "ipmi.password-file",
        "FILE",
        "File holding the password for --ipmi.host (else $SPAREWATCH_IPMI_PASSWORD)",
    ),
    FlagSpec::unsigned(
        "ipmi.cipher-suite",
        "ID",
        8,
        "RMCP+ cipher suite; ipmi-rs supports 3 only [default: 3]",
    ),
    FlagSpec::text(
        "ipmi.device",
        "PATH",
        "In-band IPMI device, used when it exists and no --ipmi.host is given [default: /dev/ipmi0 under --path.rootfs]",
    ),
    FlagSpec::text(
        "ipmi.timeout",
        "DURATION",
        "Timeout of one IPMI request [default: 2s]",
    ),
    FlagSpec::unsigned(
        "ipmi.retries",
        "N",
        32,
        "Retries of an unanswered request, each on a new session [default: 1]",
    ),
];

fn config_error(detail: impl Into<String>) -> BuildError {
    BuildError::Config {
        collector: "ipmi",
        detail: detail.into(),
    }
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
    let m = ctx.flags;
    let timeout = match m
        .text("ipmi", "ipmi.timeout")?
        .or(config.request_timeout.as_deref())
    {
        Some(s) => crate::parse_duration(s).map_err(config_error)?,
        None => DEFAULT_REQUEST_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(config_error("request timeout must be above zero"));
    }
    let retries = m
        .unsigned::<u32>("ipmi", "ipmi.retries")?
        .or(config.retries)
        .unwrap_or(DEFAULT_RETRIES);
    let sel_poll = match &config.sel_poll_interval {
        Some(s) => crate::parse_duration(s).map_err(config_error)?,
        None => DEFAULT_SEL_POLL,
    };
    let chunk = config.sdr_chunk_size.unwrap_or(DEFAULT_CHUNK);
    if !(4..=32).contains(&chunk) {
        return Err(config_error("sdr_chunk_size must be within 4..=32"));
    }

    let mut bmcs = Vec::new();
    let mut in_band = None;
    if let Some(host) = m.text("ipmi", "ipmi.host")?.map(str::to_string) {
        let user = m.text("ipmi", "ipmi.user")?.unwrap_or_default().to_string();
        check_user(&user, "--ipmi.user")?;
        check_cipher(
            m.unsigned::<u8>("ipmi", "ipmi.cipher-suite")?,
            "--ipmi.cipher-suite",
        )?;
        let password = match m.text("ipmi", "ipmi.password-file")? {
            Some(p) => Secret::File(PathBuf::from(p)),
            None if std::env::var_os(PASSWORD_ENV).is_some() => Secret::Env(PASSWORD_ENV.into()),
            None => Secret::None,
        };
        let port = m
            .unsigned::<u16>("ipmi", "ipmi.port")?
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
        let device = match m.text("ipmi", "ipmi.device")? {
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
    let psu_rating = groups::PsuRating {
        rated_watts: config.psu_rated_watts,
        margin_percent: config.psu_capacity_margin_percent,
    };
    if psu_rating
        .rated_watts
        .is_some_and(|w| !(w.is_finite() && w > 0.0))
        || !(0.0..100.0).contains(&psu_rating.margin_percent)
    {
        return Err(config_error(
            "psu_rated_watts must be above 0; psu_capacity_margin_percent at least 0 and below 100",
        ));
    }
    Ok(Box::new(IpmiCollector {
        bmcs,
        in_band,
        sel_poll,
        wake: None,
        alive: Arc::new(()),
        psu_rating,
    }))
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
    /// PSUs losing input together: a suspected shared feed (failure-domains.md).
    feed_watch: crate::topology::FeedWatch,
    session: Session,
    chunk: u8,
    cache: Option<((u32, u32, u16), Vec<SensorRecord>)>,
    /// Force a reread of the repository next cycle (a sensor vanished).
    cache_suspect: bool,
    /// When a vanished sensor last forced a reread: some BMCs answer "not present" for the
    /// sensors of an absent PSU on every cycle, which must not mean a reread every cycle.
    last_forced_reread: Option<std::time::Instant>,
    sdr_reads: u64,
    /// What the last pass read, and the sensors it skipped: a SEL-driven pass re-reads
    /// only some sensors and keeps the others.
    samples: Vec<Sample>,
    skipped: usize,
    last_full: Option<Instant>,
    /// Shared with this BMC's SEL follower thread, once it runs.
    sel: Option<Arc<Mutex<SelShared>>>,
    /// The last pass showed a state that already went away (from the SEL): the next pass
    /// shows the true readings, without asking the BMC.
    replay: bool,
    /// This pass was woken by another BMC's SEL: keep this one's readings.
    keep: bool,
    sel_rereads: u64,
    full_passes: u64,
    /// Shared with this BMC's event listener thread (in-band only), once it runs.
    events: Option<Arc<Mutex<EventShared>>>,
    /// Events lately consumed from one source (SEL follower or event messages), so the same
    /// event read from the other source a moment later is not shown twice.
    recent: std::collections::VecDeque<(Instant, Source, sel::SelEntry)>,
    event_rereads: u64,
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Sel,
    EventMessage,
}

/// How many consumed events [`Bmc::recent`] remembers, and for how long: the other source
/// tells of the same event within about a second (the SEL poll, the driver's event fetch).
const RECENT_EVENTS: usize = 128;
const RECENT_WINDOW: Duration = Duration::from_secs(60);
/// How long the event listener waits in `poll` before it looks whether its collector is
/// still there.
const EVENT_POLL: Duration = Duration::from_secs(1);
/// After the event descriptor failed (or could not be opened), it is opened again this
/// often; meanwhile the SEL follower and the interval's passes see what happens.
const EVENT_REOPEN: Duration = Duration::from_secs(10);

/// What an event listener hands to its collector.
#[derive(Default)]
struct EventShared {
    pending: Vec<sel::SelEntry>,
    /// Event messages received (every one, whatever it concerns).
    received: u64,
    errors: u64,
    /// Why the descriptor is down; `None` while it listens.
    error: Option<String>,
    /// The descriptor is open in gets-events mode.
    up: bool,
    /// The BMC's event message buffer bit after the listener's check (`None`: unknown).
    buffer: Option<bool>,
}

fn lock_events(m: &Mutex<EventShared>) -> std::sync::MutexGuard<'_, EventShared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the listener down; logs only the first failure of a run of them.
fn events_down(shared: &Weak<Mutex<EventShared>>, bmc: &str, why: String) {
    let Some(sh) = shared.upgrade() else {
        return;
    };
    let mut g = lock_events(&sh);
    g.errors += 1;
    g.up = false;
    if g.error.is_none() {
        tracing::warn!(bmc = %bmc, error = %why, "IPMI event messages unavailable; the SEL follower and the interval carry on");
    }
    g.error = Some(why);
}

/// The event listener of the in-band BMC: a descriptor of the device of its own in
/// gets-events mode, until the collector is gone. Event messages about PSUs, power units,
/// fans or redundancy wake the collector, which re-reads the sensors they name.
fn listen_events(
    shared: Weak<Mutex<EventShared>>,
    device: PathBuf,
    timeout: Duration,
    retries: u32,
    wake: Wake,
    bmc: String,
) {
    let mut was_down = false;
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        let dev = match events::EventDevice::open(&device) {
            Ok(d) => d,
            Err(e) => {
                events_down(&shared, &bmc, format!("{} (events): {e}", device.display()));
                was_down = true;
                std::thread::sleep(EVENT_REOPEN);
                continue;
            }
        };
        // The event message buffer bit, on a request/response descriptor of its own.
        let mut s = Session::new(Target::Device(device.clone()), timeout, retries);
        let buffer = match events::ensure_event_buffer(&mut s) {
            Ok(events::BufferState::Enabled) => Some(true),
            Ok(events::BufferState::EnabledNow) => {
                tracing::info!(bmc = %bmc, "the BMC's event message buffer was off; enabled it (Set BMC Global Enables)");
                Some(true)
            }
            Err(e) => {
                tracing::warn!(bmc = %bmc, error = %e, "cannot check or enable the BMC's event message buffer; listening anyway");
                None
            }
        };
        drop(s);
        {
            let Some(sh) = shared.upgrade() else {
                return;
            };
            let mut g = lock_events(&sh);
            if g.error.take().is_some() {
                tracing::info!(bmc = %bmc, "IPMI event messages available again");
            }
            g.up = true;
            g.buffer = buffer;
        }
        if was_down {
            // Events may have come and gone meanwhile: one full pass.
            wake.wake();
        }
        let why = loop {
            let Some(sh) = shared.upgrade() else {
                return;
            };
            drop(sh);
            match dev.wait(EVENT_POLL) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => break e.to_string(),
            }
            let mut got = Vec::new();
            let mut received = 0;
            let mut bad = 0;
            let failed = loop {
                match dev.receive() {
                    Ok(None) => break None,
                    Ok(Some(m)) if m.recv_type == events::ASYNC_EVENT_RECV_TYPE => {
                        received += 1;
                        match events::EventMessage::parse(&m.data) {
                            Ok(e) => {
                                tracing::debug!(bmc = %bmc, event = ?e, "IPMI event message");
                                if e.concerns_redundancy() {
                                    got.push(e.as_sel_entry());
                                }
                            }
                            Err(e) => {
                                bad += 1;
                                tracing::debug!(bmc = %bmc, error = %e.0, "IPMI event message does not parse");
                            }
                        }
                    }
                    // Nothing is sent on this descriptor: no responses or commands expected.
                    Ok(Some(_)) => {}
                    Err(e) => break Some(e.to_string()),
                }
            };
            let news = !got.is_empty();
            if let Some(sh) = shared.upgrade() {
                let mut g = lock_events(&sh);
                g.received += received;
                g.errors += bad;
                g.pending.extend(got);
            }
            if news {
                wake.wake();
            }
            if let Some(e) = failed {
                break e;
            }
        };
        drop(dev);
        events_down(
            &shared,
            &bmc,
            format!("{} (events): {why}", device.display()),
        );
        was_down = true;
        std::thread::sleep(EVENT_REOPEN);
    }
}

/// What a SEL follower hands to its collector.
#[derive(Default)]
struct SelShared {
    pending: Vec<sel::SelEntry>,
    follower: sel::SelFollower,
    stats: session::SessionStats,
    last_event: Option<SystemTime>,
    error: Option<String>,
}

fn lock(m: &Mutex<SelShared>) -> std::sync::MutexGuard<'_, SelShared> {
    // A panic while holding it leaves plain data behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The SEL follower of one BMC: polls on its own session until the collector is gone.
fn follow(
    shared: Weak<Mutex<SelShared>>,
    mut session: Session,
    every: Duration,
    wake: Wake,
    bmc: String,
) {
    let mut follower = sel::SelFollower::default();
    let mut last_fallback = Instant::now();
    // Whether the last poll found the SEL full; `None` before the first poll.
    let mut was_full: Option<bool> = None;
    loop {
        std::thread::sleep(every);
        let Some(sh) = shared.upgrade() else {
            return;
        };
        let res = follower.poll(&mut session);
        let mut g = lock(&sh);
        let mut wake_now = false;
        match res {
            Ok(p) => {
                let recovered = g.error.take().is_some();
                if p.cleared {
                    tracing::info!(bmc = %bmc, "SEL cleared");
                }
                if !p.entries.is_empty() {
                    g.last_event = Some(SystemTime::now());
                    g.pending.extend(p.entries);
                    wake_now = true;
                }
                let full = follower.info().is_some_and(|i| i.full());
                // The first poll, a clear and the SEL filling up or emptying show in the
                // metrics at once (readings are rendered by a pass).
                let news = p.cleared || was_full != Some(full);
                was_full = Some(full);
                if news || recovered || (full && last_fallback.elapsed() >= SEL_FALLBACK_PASS) {
                    wake_now = true;
                    last_fallback = Instant::now();
                }
            }
            Err(e) => {
                follower.errors += 1;
                let transport = matches!(e, RequestError::Transport(_));
                if !transport {
                    // Garbage or a refused command: start again from a new baseline.
                    follower.reset();
                }
                if g.error.is_none() {
                    tracing::warn!(bmc = %bmc, error = %e, "SEL poll failed; full passes carry on");
                }
                // A BMC that stopped answering: one full pass shows it down at once.
                let first = g.error.is_none();
                if (first && transport)
                    || (!transport && last_fallback.elapsed() >= SEL_FALLBACK_PASS)
                {
                    wake_now = true;
                    last_fallback = Instant::now();
                }
                g.error = Some(e.to_string());
            }
        }
        g.follower = follower.clone();
        g.stats = session.stats;
        drop(g);
        drop(sh);
        if wake_now {
            wake.wake();
        }
    }
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
            feed_watch: crate::topology::FeedWatch::default(),
            session,
            chunk,
            cache: None,
            cache_suspect: false,
            last_forced_reread: None,
            sdr_reads: 0,
            samples: Vec::new(),
            skipped: 0,
            last_full: None,
            sel: None,
            replay: false,
            keep: false,
            sel_rereads: 0,
            full_passes: 0,
            events: None,
            recent: std::collections::VecDeque::new(),
            event_rereads: 0,
        }
    }

    /// In-band only: listens for the BMC's event messages on a descriptor of its own,
    /// waking `wake` on an event that concerns redundancy.
    fn start_events(&mut self, wake: Wake) {
        let Target::Device(device) = self.session.target() else {
            return;
        };
        if self.events.is_some() {
            return;
        }
        let shared = Arc::new(Mutex::new(EventShared::default()));
        let weak = Arc::downgrade(&shared);
        let (device, timeout, retries) = (
            device.clone(),
            self.session.timeout(),
            self.session.retries(),
        );
        let name = self.naming.bmc.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ipmi-ev-{name}"))
            .stack_size(256 * 1024)
            .spawn(move || listen_events(weak, device, timeout, retries, wake, name));
        match spawned {
            Ok(_) => self.events = Some(shared),
            Err(e) => {
                tracing::warn!(bmc = %self.naming.bmc, error = %e, "cannot start the IPMI event listener; SEL follower and polling only")
            }
        }
    }

    /// Whether an event of either source waits for a pass.
    fn has_pending(&self) -> bool {
        self.sel
            .as_ref()
            .is_some_and(|s| !lock(s).pending.is_empty())
            || self
                .events
                .as_ref()
                .is_some_and(|s| !lock_events(s).pending.is_empty())
    }

    /// Takes what both sources found, SEL first; an event consumed from the other source
    /// within [`RECENT_WINDOW`] (the SEL entry of an event message, or the other way round)
    /// is dropped, paired one to one. Events are the same when generator, sensor type and
    /// number, event type, direction and offset are: record IDs and timestamps are not
    /// compared, as the event message buffer need not carry them (ipmi_sim's event messages
    /// have timestamp 0 where its SEL entry has the time).
    fn take_pending(&mut self) -> Vec<(Source, sel::SelEntry)> {
        self.take_pending_at(Instant::now())
    }

    fn take_pending_at(&mut self, now: Instant) -> Vec<(Source, sel::SelEntry)> {
        let mut all: Vec<(Source, sel::SelEntry)> = Vec::new();
        if let Some(s) = &self.sel {
            all.extend(
                std::mem::take(&mut lock(s).pending)
                    .into_iter()
                    .map(|e| (Source::Sel, e)),
            );
        }
        if let Some(s) = &self.events {
            all.extend(
                std::mem::take(&mut lock_events(s).pending)
                    .into_iter()
                    .map(|e| (Source::EventMessage, e)),
            );
        }
        let key = |e: &sel::SelEntry| sel::SelEntry {
            record_id: 0,
            timestamp: 0,
            ..*e
        };
        self.recent
            .retain(|(t, _, _)| now.saturating_duration_since(*t) < RECENT_WINDOW);
        let mut out = Vec::with_capacity(all.len());
        for (src, e) in all {
            let k = key(&e);
            if let Some(i) = self
                .recent
                .iter()
                .position(|(_, s, r)| *s != src && *r == k)
            {
                self.recent.remove(i);
                continue;
            }
            if self.recent.len() == RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back((now, src, k));
            out.push((src, e));
        }
        out
    }

    /// Starts following this BMC's SEL on a session of its own, waking `wake` on news.
    fn start_sel(&mut self, every: Duration, wake: Wake) {
        if every.is_zero() || self.sel.is_some() {
            return;
        }
        let shared = Arc::new(Mutex::new(SelShared::default()));
        let session = Session::new(
            self.session.target().clone(),
            self.session.timeout(),
            self.session.retries(),
        );
        let weak = Arc::downgrade(&shared);
        let name = self.naming.bmc.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ipmi-sel-{name}"))
            .spawn(move || follow(weak, session, every, wake, name));
        match spawned {
            Ok(_) => self.sel = Some(shared),
            Err(e) => {
                tracing::warn!(bmc = %self.naming.bmc, error = %e, "cannot start the SEL follower; polling only")
            }
        }
    }

    /// Sensors re-read because the SEL named them.
    pub fn sel_rereads(&self) -> u64 {
        self.sel_rereads
    }

    /// Sensors re-read because an event message named them.
    pub fn event_rereads(&self) -> u64 {
        self.event_rereads
    }

    /// Full passes (every sensor read).
    pub fn full_passes(&self) -> u64 {
        self.full_passes
    }

    /// One pass: only the sensors that new SEL entries name when there are such entries
    /// and a recent full pass to build on, else [`Bmc::cycle`].
    pub fn pass(&mut self) -> Result<BmcCycle, RequestError> {
        if self.replay {
            self.replay = false;
            return Ok(BmcCycle {
                samples: self.samples.clone(),
                skipped: self.skipped,
            });
        }
        let pending = self.take_pending();
        let recent = self
            .last_full
            .is_some_and(|t| t.elapsed() < FULL_PASS_MAX_AGE);
        let keep = std::mem::take(&mut self.keep);
        if pending.is_empty() && keep && recent && !self.samples.is_empty() {
            // Another BMC's event woke the collector: nothing to ask this one.
            return Ok(BmcCycle {
                samples: self.samples.clone(),
                skipped: self.skipped,
            });
        }
        if pending.is_empty() || !recent || self.samples.is_empty() {
            return self.cycle();
        }
        self.partial(&pending)
    }

    /// Re-reads the sensors `entries` name; shows, for this pass only, a state an entry
    /// reported that the fresh reading no longer has.
    fn partial(&mut self, entries: &[(Source, sel::SelEntry)]) -> Result<BmcCycle, RequestError> {
        let mut shown = self.samples.clone();
        for (i, shown) in shown.iter_mut().enumerate() {
            let r = &shown.record;
            let named = |e: &sel::SelEntry| {
                e.is_sensor_event() && e.sensor_number == r.number && e.generator == r.owner_id
            };
            let mine: Vec<&sel::SelEntry> = entries
                .iter()
                .map(|(_, e)| e)
                .filter(|e| named(e))
                .collect();
            if mine.is_empty() {
                continue;
            }
            if entries
                .iter()
                .any(|(s, e)| *s == Source::EventMessage && named(e))
            {
                self.event_rereads += 1;
            } else {
                self.sel_rereads += 1;
            }
            let (owner, lun, number) = (
                (r.owner_id != 0x20).then_some((r.owner_id, r.channel)),
                r.owner_lun,
                r.number,
            );
            let reading =
                match self
                    .session
                    .request(owner, lun, session::GetSensorReading { number })
                {
                    Ok(x) => Ok(x),
                    Err(e @ RequestError::Transport(_)) => return Err(e),
                    Err(e) => Err(e.to_string()),
                };
            self.samples[i].reading = reading.clone();
            shown.reading = reading.map(|fresh| {
                let mut show = fresh;
                let mut done = 0u16;
                for e in &mine {
                    let Some(bit) = e.state_bit() else { continue };
                    if fresh.asserted(bit) != e.assertion && done & (1 << bit) == 0 {
                        // It was so between two polls: show it once.
                        done |= 1 << bit;
                        show.states ^= 1 << bit;
                        self.replay = true;
                    }
                }
                show
            });
        }
        Ok(BmcCycle {
            samples: shown,
            skipped: self.skipped,
        })
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
        self.replay = false;
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
        self.full_passes += 1;
        self.last_full = Some(Instant::now());
        self.samples = samples.clone();
        self.skipped = skipped;
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
        if let Some(shared) = &self.events {
            let g = lock_events(shared);
            out.push(Reading::gauge(
                "sparewatch_ipmi_events_up",
                "Whether the in-band event listener has /dev/ipmi0 open in gets-events mode.",
                l(),
                g.up as u8 as f64,
            ));
            if let Some(on) = g.buffer {
                out.push(Reading::gauge(
                    "sparewatch_ipmi_event_buffer_enabled",
                    "Whether the BMC's event message buffer is enabled (Get BMC Global Enables bit 2, set by the agent where it was off).",
                    l(),
                    on as u8 as f64,
                ));
            }
            for (name, help, v) in [
                (
                    "sparewatch_ipmi_events_received_total",
                    "Event messages received from the BMC on the in-band device.",
                    g.received,
                ),
                (
                    "sparewatch_ipmi_events_errors_total",
                    "Event listener failures: the device could not be opened or read, or a message did not parse.",
                    g.errors,
                ),
                (
                    "sparewatch_ipmi_event_sensor_rereads_total",
                    "Sensors re-read because an event message named them (instead of a full pass).",
                    self.event_rereads,
                ),
            ] {
                out.push(Reading::counter(name, help, l(), v as f64));
            }
        }
        let Some(shared) = &self.sel else {
            return;
        };
        let g = lock(shared);
        let f = &g.follower;
        if let Some(info) = f.info() {
            out.push(Reading::gauge(
                "sparewatch_ipmi_sel_entries",
                "Entries in the BMC's System Event Log at its last poll.",
                l(),
                info.entries as f64,
            ));
            out.push(Reading::gauge(
                "sparewatch_ipmi_sel_full",
                "1 when the SEL has no room for another entry or dropped events: new events are then seen by full passes only.",
                l(),
                info.full() as u8 as f64,
            ));
        }
        out.push(Reading::gauge(
            "sparewatch_ipmi_sel_up",
            "Whether the last poll of the SEL succeeded.",
            l(),
            g.error.is_none() as u8 as f64,
        ));
        if let Some(t) = g.last_event {
            out.push(Reading::gauge(
                "sparewatch_ipmi_sel_last_event_timestamp_seconds",
                "When the agent last read a new SEL entry (agent clock: many BMC clocks are unset).",
                l(),
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            ));
        }
        let st = g.stats;
        for (name, help, v) in [
            (
                "sparewatch_ipmi_sel_polls_total",
                "Get SEL Info polls of the SEL follower.",
                f.polls,
            ),
            (
                "sparewatch_ipmi_sel_events_total",
                "New SEL entries read by the SEL follower.",
                f.events,
            ),
            (
                "sparewatch_ipmi_sel_clears_total",
                "Times the SEL was found cleared (or entries deleted) since the previous poll.",
                f.clears,
            ),
            (
                "sparewatch_ipmi_sel_errors_total",
                "SEL polls that failed (no answer, a refused command, an answer that does not parse).",
                f.errors,
            ),
            (
                "sparewatch_ipmi_sel_requests_total",
                "IPMI requests of the SEL follower's own session, retries included.",
                st.requests,
            ),
            (
                "sparewatch_ipmi_sel_sensor_rereads_total",
                "Sensors re-read because a new SEL entry named them (instead of a full pass).",
                self.sel_rereads,
            ),
            (
                "sparewatch_ipmi_full_passes_total",
                "Passes that read every sensor of this BMC.",
                self.full_passes,
            ),
        ] {
            out.push(Reading::counter(name, help, l(), v as f64));
        }
    }
}

/// Until the in-band device exists (modules loaded late, a BMC that came up slowly), one
/// `stat` every `every` and a wake when it appears, so the collector attaches it then rather
/// than at its next interval (which may be an hour once the SEL follower tells of events).
/// The thread ends once the device was seen or the collector is gone.
fn watch_device(device: PathBuf, every: Duration, alive: Weak<()>, wake: Wake) {
    if every.is_zero() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ipmi-device".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(every);
            if alive.upgrade().is_none() {
                return;
            }
            if std::fs::metadata(&device).is_ok() {
                tracing::debug!(device = %device.display(), "in-band IPMI device appeared");
                wake.wake();
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot watch for the in-band IPMI device; the interval finds it");
    }
}

/// The collector: the host's own BMC (in-band or `--ipmi.host`) and the config file's BMCs.
pub struct IpmiCollector {
    bmcs: Vec<Bmc>,
    in_band: Option<InBand>,
    sel_poll: Duration,
    /// Set by `watch`: SEL followers run only in the agent, not in `status`/`check`.
    wake: Option<Wake>,
    /// Held while the collector lives; the in-band device watcher stops when it is gone.
    alive: Arc<()>,
    /// `psu_rated_watts` / `psu_capacity_margin_percent` of the capacity check.
    pub psu_rating: groups::PsuRating,
}

impl IpmiCollector {
    pub fn new(bmcs: Vec<Bmc>) -> Self {
        IpmiCollector {
            bmcs,
            in_band: None,
            sel_poll: DEFAULT_SEL_POLL,
            wake: None,
            alive: Arc::new(()),
            psu_rating: groups::PsuRating::default(),
        }
    }

    /// SEL polls this often once `watch` was called (zero: never).
    pub fn with_sel_poll(mut self, every: Duration) -> Self {
        self.sel_poll = every;
        self
    }

    pub fn bmcs(&self) -> &[Bmc] {
        &self.bmcs
    }
}

fn run_bmc(b: &mut Bmc, rating: groups::PsuRating) -> (Result<BmcCycle, RequestError>, Collection) {
    let res = b.pass();
    let mut c = Collection::present();
    match &res {
        Ok(cycle) => {
            c.groups = groups::build_groups(&b.naming, &cycle.samples);
            groups::psu_capacity(&mut c.groups, &cycle.samples, rating);
            let lost = groups::psu_input_lost(&cycle.samples);
            let now = std::time::Instant::now();
            for g in c.groups.iter_mut().filter(|g| g.kind == "psu") {
                b.feed_watch.observe(now, g, &lost);
            }
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
    fn watch(&mut self, wake: Wake) -> Result<(), CollectError> {
        for b in &mut self.bmcs {
            b.start_sel(self.sel_poll, wake.clone());
            b.start_events(wake.clone());
        }
        if let Some(ib) = self.in_band.as_ref().filter(|ib| !ib.attached) {
            watch_device(
                ib.device.clone(),
                self.sel_poll,
                Arc::downgrade(&self.alive),
                wake.clone(),
            );
        }
        self.wake = Some(wake);
        Ok(())
    }

    fn collect(&mut self) -> Result<Collection, CollectError> {
        let has_news = |b: &Bmc| b.replay || b.has_pending();
        if self.bmcs.iter().any(has_news) {
            for b in &mut self.bmcs {
                b.keep = !has_news(b);
            }
        }
        let result = self.collect_bmcs();
        if self.bmcs.iter().any(|b| b.replay) {
            if let Some(w) = &self.wake {
                w.wake();
            }
        }
        result
    }
}

impl IpmiCollector {
    fn collect_bmcs(&mut self) -> Result<Collection, CollectError> {
        let probe_error = match self.in_band.as_mut().map(InBand::probe) {
            Some(Ok(Some(mut local))) => {
                if let Some(w) = &self.wake {
                    local.start_sel(self.sel_poll, w.clone());
                    local.start_events(w.clone());
                }
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
                let (res, c) = run_bmc(b, self.psu_rating);
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
                let rating = self.psu_rating;
                let results: Vec<(Result<BmcCycle, RequestError>, Collection)> =
                    std::thread::scope(|s| {
                        let handles: Vec<_> = self
                            .bmcs
                            .iter_mut()
                            .map(|b| s.spawn(move || run_bmc(b, rating)))
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
        let ok: serde_norway::Value = serde_norway::from_str(
            "request_timeout: 1s\nretries: 2\nsel_poll_interval: 500ms\nbmcs: [{name: a, host: h, password_env: P}]",
        )
        .expect("yaml");
        let c: IpmiConfig = crate::parse_config("ipmi", Some(&ok)).expect("parses");
        assert_eq!(c.bmcs[0].password_env.as_deref(), Some("P"));
        assert_eq!(c.sel_poll_interval.as_deref(), Some("500ms"));
        let bad: serde_norway::Value =
            serde_norway::from_str("bmcs: [{name: a, host: h, password: x}]").expect("yaml");
        assert!(crate::parse_config::<IpmiConfig>("ipmi", Some(&bad)).is_err());
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    fn entry(record_id: u16, sensor: u8, assertion: bool) -> sel::SelEntry {
        sel::SelEntry {
            record_id,
            record_type: 0x02,
            timestamp: 0x1b5,
            generator: 0x20,
            sensor_type: 0x08,
            sensor_number: sensor,
            assertion,
            event_type: 0x6f,
            offset: 1,
        }
    }

    fn bmc() -> Bmc {
        let mut b = Bmc::new(
            Naming {
                bmc: "local".into(),
                group_prefix: String::new(),
            },
            Session::new(
                Target::Device(PathBuf::from("/nonexistent/ipmi0")),
                Duration::from_secs(1),
                0,
            ),
            DEFAULT_CHUNK,
        );
        b.sel = Some(Arc::new(Mutex::new(SelShared::default())));
        b.events = Some(Arc::new(Mutex::new(EventShared::default())));
        b
    }

    #[test]
    fn an_event_read_from_both_sources_is_taken_once() {
        let mut b = bmc();
        let (sel, ev) = (
            b.sel.clone().expect("sel"),
            b.events.clone().expect("events"),
        );
        // The event message first (record ID as the BMC gave it in the buffer, maybe none).
        lock_events(&ev).pending.push(entry(0xffff, 0x12, true));
        assert!(b.has_pending());
        let got = b.take_pending();
        assert_eq!(got, vec![(Source::EventMessage, entry(0xffff, 0x12, true))]);
        assert!(!b.has_pending());
        // A second later the SEL follower reads the same event as record 5, and a new one.
        lock(&sel)
            .pending
            .extend([entry(5, 0x12, true), entry(6, 0x12, false)]);
        let got = b.take_pending();
        assert_eq!(got, vec![(Source::Sel, entry(6, 0x12, false))]);
        // The event message of record 6 arrives late: already shown.
        lock_events(&ev).pending.push(entry(6, 0x12, false));
        assert!(b.take_pending().is_empty());
        // The same failure asserted again later is news.
        let mut again = entry(7, 0x12, true);
        again.timestamp += 60;
        lock_events(&ev).pending.push(again);
        assert_eq!(b.take_pending(), vec![(Source::EventMessage, again)]);
    }

    #[test]
    fn ipmi_sims_event_without_time_pairs_with_its_sel_entry_once() {
        let mut b = bmc();
        let (sel, ev) = (
            b.sel.clone().expect("sel"),
            b.events.clone().expect("events"),
        );
        // As the guest received it from ipmi_sim: record 6, timestamp 0.
        let mut from_buffer = entry(6, 0x12, true);
        from_buffer.timestamp = 0;
        let t0 = Instant::now();
        lock_events(&ev).pending.push(from_buffer);
        assert_eq!(b.take_pending_at(t0).len(), 1);
        // Its SEL entry (with the time) a second later, then the same assertion a second
        // time: the first pairs, the second is news.
        lock(&sel)
            .pending
            .extend([entry(6, 0x12, true), entry(9, 0x12, true)]);
        let got = b.take_pending_at(t0 + Duration::from_secs(1));
        assert_eq!(got, vec![(Source::Sel, entry(9, 0x12, true))]);
        // An event message of the same kind long after: nothing left to pair with.
        lock_events(&ev).pending.push(from_buffer);
        assert_eq!(b.take_pending_at(t0 + RECENT_WINDOW * 2).len(), 1);
    }

    #[test]
    fn the_memory_of_consumed_events_is_bounded() {
        let mut b = bmc();
        let ev = b.events.clone().expect("events");
        for i in 0..1000u32 {
            let mut e = entry(0, 0x12, true);
            e.timestamp = i;
            lock_events(&ev).pending.push(e);
        }
        assert_eq!(b.take_pending().len(), 1000);
        assert_eq!(b.recent.len(), RECENT_EVENTS);
    }
}
