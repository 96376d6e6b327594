//! The connection to one BMC through ipmi-rs: in-band (`/dev/ipmi0`, the kernel's
//! `ipmi_devintf`) or RMCP+ (lanplus). Every request has a timeout; a transport failure
//! drops the session and the request is retried on a fresh one (this is also how a BMC
//! restart is survived), up to `retries` times. ipmi-rs 0.6 panics on a few malformed
//! answers and on socket errors (`unwrap`/`todo!` in its RMCP+ code): each call into it is
//! guarded by `catch_unwind`, so a panic there is a failed request of this BMC only.
//!
//! The IPMI commands (Get SDR Repository Info, Reserve SDR Repository, Get SDR, Get Sensor
//! Reading) are our own `IpmiCommand` implementations: the crate's SDR iterator reads
//! records whole without a reservation, which real BMCs and ipmi_sim reject or pad, and its
//! sensor reading type keeps the discrete state bits private.
//!
//! Size: about 580 lines of code (plus tests): one `Session` type with the request/retry/
//! re-open logic for both transports and the SDR repository reads that need its
//! reservations; the wire parsing is in [`super::sdr`] and [`super::sel`].

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

use ipmi_rs::connection::{
    Address, Channel, IpmiCommand, IpmiConnection, LogicalUnit, Message, NetFn, Request,
    RequestTargetAddress,
};
use ipmi_rs::rmcp::Rmcp;

use super::decode::SensorReading;
use super::sdr::{self, RepositoryInfo, SdrError};
use super::sel::{self, SelEntry, SelInfo};

/// Where a BMC is and how to log in.
#[derive(Clone)]
pub enum Target {
    /// In-band through the kernel driver's character device.
    Device(PathBuf),
    /// RMCP+ over UDP.
    Lan {
        host: String,
        port: u16,
        user: String,
        password: Secret,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Device(p) => write!(f, "device {}", p.display()),
            Target::Lan {
                host, port, user, ..
            } => write!(f, "lanplus {user}@{host}:{port}"),
        }
    }
}

/// Where the password comes from. Read at every login (a rotated password file is picked
/// up), never logged: `Debug` shows only the source.
#[derive(Clone)]
pub enum Secret {
    None,
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("no password"),
            Secret::File(p) => write!(f, "password from file {}", p.display()),
            Secret::Env(v) => write!(f, "password from ${v}"),
        }
    }
}

impl Secret {
    fn read(&self) -> Result<Vec<u8>, String> {
        let mut v = match self {
            Secret::None => return Ok(Vec::new()),
            Secret::File(p) => std::fs::read(p)
                .map_err(|e| format!("reading password file {}: {e}", p.display()))?,
            Secret::Env(name) => std::env::var_os(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?
                .into_encoded_bytes(),
        };
        while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            v.pop();
        }
        if v.len() > 20 {
            return Err("password longer than the 20 bytes RMCP+ allows".into());
        }
        Ok(v)
    }
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The BMC answered with a non-zero completion code.
    Completion(u8),
    /// No usable answer: timeout, socket error, login failure, garbage.
    Transport(String),
    /// An answer that does not parse.
    Parse(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Completion(cc) => write!(f, "completion code {cc:#04x}"),
            RequestError::Transport(e) => f.write_str(e),
            RequestError::Parse(e) => write!(f, "malformed answer: {e}"),
        }
    }
}

impl From<SdrError> for RequestError {
    fn from(e: SdrError) -> Self {
        RequestError::Parse(e.0)
    }
}

/// Counters of the session layer, exported as raw readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub requests: u64,
    pub retries: u64,
    pub transport_errors: u64,
    pub logins: u64,
    /// Sessions left behind by a timeout and closed from the next one.
    pub stale_closed: u64,
}

enum Conn {
    File(ipmi_rs::File),
    Rmcp(Box<Rmcp>),
}

pub struct Session {
    target: Target,
    timeout: Duration,
    retries: u32,
    conn: Option<Conn>,
    /// The BMC's ID of our current RMCP+ session.
    session_id: Option<u32>,
    /// IDs of sessions we gave up on after a timeout: they may still be open on the BMC (a
    /// lost packet, not a dead BMC) and hold one of its few session slots until its
    /// inactivity timeout. Closed from the next session that logs in.
    stale: Vec<u32>,
    pub stats: SessionStats,
}

impl Session {
    pub fn new(target: Target, timeout: Duration, retries: u32) -> Self {
        Session {
            target,
            timeout,
            retries,
            conn: None,
            session_id: None,
            stale: Vec::new(),
            stats: SessionStats::default(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub fn is_lan(&self) -> bool {
        matches!(self.target, Target::Lan { .. })
    }

    /// Drops the session; the next request logs in again. Its ID is remembered so the
    /// next session can close it on the BMC.
    pub fn reset(&mut self) {
        self.conn = None;
        if let Some(id) = self.session_id.take() {
            if self.stale.len() < 16 {
                self.stale.push(id);
            }
        }
    }

    /// After a login: close the sessions given up before (Close Session by ID). Closing
    /// another session needs the administrator privilege, which an RMCP+ session starts
    /// without (it starts at user level): raise it first; a user that is not an
    /// administrator leaves the stale sessions to the BMC's timeout. Only a transport
    /// failure is the caller's: "no such session" means the BMC already ended it.
    fn close_stale(&mut self) -> Result<(), RequestError> {
        if self.stale.is_empty() {
            return Ok(());
        }
        match self.once(
            None,
            0,
            SetSessionPrivilege {
                level: PRIVILEGE_ADMINISTRATOR,
            },
        ) {
            Ok(_) => {}
            Err(e @ RequestError::Transport(_)) => return Err(e),
            Err(_) => {
                self.stale.clear();
                return Ok(());
            }
        }
        for id in std::mem::take(&mut self.stale) {
            if Some(id) == self.session_id {
                continue;
            }
            match self.once(None, 0, CloseSession { id }) {
                Ok(()) => self.stats.stale_closed += 1,
                Err(e @ RequestError::Transport(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn connect(&mut self) -> Result<(), RequestError> {
        self.stats.logins += 1;
        let conn = match &self.target {
            Target::Device(path) => Conn::File(
                ipmi_rs::File::new(path, self.timeout)
                    .map_err(|e| RequestError::Transport(format!("{}: {e}", path.display())))?,
            ),
            Target::Lan {
                host,
                port,
                user,
                password,
            } => {
                let password = password.read().map_err(RequestError::Transport)?;
                let addr = format!("{host}:{port}");
                let timeout = self.timeout;
                let user = user.clone();
                let rmcp = guarded(move || {
                    let mut r =
                        Rmcp::new(addr.as_str(), timeout).map_err(|e| format!("{addr}: {e}"))?;
                    r.activate(true, Some(&user), Some(&password))
                        .map_err(|e| format!("RMCP+ login to {addr} failed: {}", activation(&e)))?;
                    Ok::<_, String>(r)
                })
                .and_then(|r| r)
                .map_err(RequestError::Transport)?;
                self.session_id = rmcp_session_id(&rmcp);
                Conn::Rmcp(Box::new(rmcp))
            }
        };
        self.conn = Some(conn);
        if let Err(e) = self.close_stale() {
            self.reset();
            return Err(e);
        }
        Ok(())
    }

    /// Sends one command to the BMC (LUN `lun`) or, in-band, to a satellite controller on
    /// IPMB, and parses the answer. Transport failures are retried on a new session.
    pub fn request<C>(
        &mut self,
        owner: Option<(u8, u8)>,
        lun: u8,
        cmd: C,
    ) -> Result<C::Output, RequestError>
    where
        C: IpmiCommand<Error = SdrError> + Clone,
    {
        let mut attempt = 0;
        loop {
            match self.once(owner, lun, cmd.clone()) {
                Err(RequestError::Transport(e)) => {
                    self.stats.transport_errors += 1;
                    self.reset();
                    if attempt >= self.retries {
                        return Err(RequestError::Transport(e));
                    }
                    attempt += 1;
                    self.stats.retries += 1;
                    tracing::debug!(target = ?self.target, error = %e, attempt, "IPMI request failed, retrying on a new session");
                }
                other => return other,
            }
        }
    }

    fn once<C>(
        &mut self,
        owner: Option<(u8, u8)>,
        lun: u8,
        cmd: C,
    ) -> Result<C::Output, RequestError>
    where
        C: IpmiCommand<Error = SdrError>,
    {
        if self.conn.is_none() {
            self.connect()?;
        }
        self.stats.requests += 1;
        let lun = LogicalUnit::from_low_bits(lun);
        let target = match owner {
            Some((addr, channel)) => RequestTargetAddress::BmcOrIpmb(
                Address(addr),
                Channel::new(channel).unwrap_or(Channel::Primary),
                lun,
            ),
            None => RequestTargetAddress::Bmc(lun),
        };
        let message: Message = cmd.into();
        let (netfn, command) = (message.netfn(), message.cmd());
        let mut request = Request::new(message, target);
        let Some(conn) = self.conn.as_mut() else {
            return Err(RequestError::Transport("not connected".into()));
        };
        let response = guarded(|| match conn {
            Conn::File(f) => f.send_recv(&mut request).map_err(|e| e.to_string()),
            Conn::Rmcp(r) => r.send_recv(&mut request).map_err(|e| format!("{e:?}")),
        })
        .and_then(|r| r)
        .map_err(RequestError::Transport)?;
        if response.netfn() != netfn || response.cmd() != command {
            return Err(RequestError::Transport(format!(
                "answer to another request (netfn {:?} cmd {:#04x}, sent {:?} {:#04x})",
                response.netfn(),
                response.cmd(),
                netfn,
                command
            )));
        }
        if response.cc() != 0 {
            return Err(RequestError::Completion(response.cc()));
        }
        C::parse_success_response(response.data()).map_err(RequestError::from)
    }
}

/// Runs a call into ipmi-rs, turning a panic inside it into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        format!(
            "ipmi-rs panicked: {}",
            crate::policy::panic_message(p.as_ref())
        )
    })
}

fn activation(e: &ipmi_rs::rmcp::ActivationError) -> String {
    use ipmi_rs::rmcp::ActivationError as A;
    match e {
        A::PongReceive(io) | A::PingSend(io) | A::BindSocket(io) => {
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                "no answer to the RMCP ping (timeout)".into()
            } else {
                io.to_string()
            }
        }
        other => format!("{other:?}"),
    }
}

/// Defines one IPMI command: its request message and the parser of its answer, as an
/// ipmi-rs `IpmiCommand` whose errors are [`SdrError`]s.
macro_rules! command {
    ($(#[$doc:meta])* $name:ident $fields:tt, $netfn:expr, $cmd:expr,
     |$c:ident| $data:expr, $out:ty, |$d:ident| $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name $fields

        impl From<$name> for Message {
            fn from($c: $name) -> Self {
                Message::new_request($netfn, $cmd, $data)
            }
        }

        impl IpmiCommand for $name {
            type Output = $out;
            type Error = SdrError;
            fn parse_success_response($d: &[u8]) -> Result<$out, SdrError> {
                $parse
            }
        }
    };
}

command!(
    /// Get SDR Repository Info (Storage 0x20).
    GetSdrRepositoryInfo {}, NetFn::Storage, 0x20,
    |_c| Vec::new(), RepositoryInfo, |d| RepositoryInfo::parse(d)
);

command!(
    /// Reserve SDR Repository (Storage 0x22): the reservation ID.
    ReserveSdrRepository {}, NetFn::Storage, 0x22,
    |_c| Vec::new(), u16, |d| sdr::parse_reservation(d)
);

command!(
    /// Get SDR (Storage 0x23): `count` bytes of record `record_id` from `offset`; answers
    /// the next record ID and the bytes read.
    GetSdr { pub reservation: u16, pub record_id: u16, pub offset: u8, pub count: u8 },
    NetFn::Storage, 0x23,
    |c| sdr::get_sdr_request(c.reservation, c.record_id, c.offset, c.count),
    (u16, Vec<u8>), |d| sdr::parse_get_sdr(d).map(|(n, b)| (n, b.to_vec()))
);

command!(
    /// Get Sensor Reading (Sensor/Event 0x2D) of one sensor number.
    GetSensorReading { pub number: u8 }, NetFn::SensorEvent, 0x2D,
    |c| vec![c.number], SensorReading, |d| SensorReading::parse(d)
);

command!(
    /// Set Session Privilege Level (App 0x3B); answers the new level.
    SetSessionPrivilege { pub level: u8 }, NetFn::App, 0x3B,
    |c| vec![c.level], u8,
    |d| d.first().map(|p| p & 0x0f).ok_or_else(|| SdrError("session privilege: empty answer".into()))
);

command!(
    /// Close Session (App 0x3C) of a session by its ID.
    CloseSession { pub id: u32 }, NetFn::App, 0x3C,
    |c| c.id.to_le_bytes().to_vec(), (), |_d| Ok(())
);

command!(
    /// Get SEL Info (Storage 0x40).
    GetSelInfo {}, NetFn::Storage, 0x40,
    |_c| Vec::new(), SelInfo, |d| SelInfo::parse(d)
);

command!(
    /// Reserve SEL (Storage 0x42): the reservation ID.
    ReserveSel {}, NetFn::Storage, 0x42,
    |_c| Vec::new(), u16, |d| sdr::parse_reservation(d)
);

command!(
    /// Get SEL Entry (Storage 0x43) of one whole record (offset 0, 0xFF bytes): answers the
    /// next record ID and the record.
    GetSelEntry { pub reservation: u16, pub record_id: u16 }, NetFn::Storage, 0x43,
    |c| {
        let [r0, r1] = c.reservation.to_le_bytes();
        let [i0, i1] = c.record_id.to_le_bytes();
        vec![r0, r1, i0, i1, 0, 0xFF]
    },
    (u16, SelEntry), |d| sel::parse_get_entry(d)
);

command!(
    /// Get BMC Global Enables (App 0x2F): the enables byte (IPMI 2.0 §22.2).
    GetBmcGlobalEnables {}, NetFn::App, 0x2F,
    |_c| Vec::new(), u8,
    |d| d.first().copied().ok_or_else(|| SdrError("global enables: empty answer".into()))
);

command!(
    /// Set BMC Global Enables (App 0x2E) to `enables` (IPMI 2.0 §22.1).
    SetBmcGlobalEnables { pub enables: u8 }, NetFn::App, 0x2E,
    |c| vec![c.enables], (), |_d| Ok(())
);

pub const PRIVILEGE_ADMINISTRATOR: u8 = 0x04;

/// The managed system's session ID of an active RMCP+ session. ipmi-rs 0.6 keeps it
/// private; its `Debug` output shows it (`… session_id: 1234, …`; the keys are redacted
/// there). `None` when the shape differs (another ipmi-rs version): then stale sessions are
/// left to the BMC's inactivity timeout, as before.
fn rmcp_session_id(r: &Rmcp) -> Option<u32> {
    session_id_from_debug(&format!("{r:?}"))
}

pub fn session_id_from_debug(s: &str) -> Option<u32> {
    let mut rest = s;
    while let Some(i) = rest.find("session_id: ") {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + "session_id: ".len()..];
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

/// Completion codes of Get SDR that mean "reservation lost, start the record again".
pub const CC_RESERVATION_CANCELLED: u8 = 0xC5;
/// Completion codes that mean "ask for fewer bytes".
pub const CC_TOO_MANY_BYTES: [u8; 3] = [0xCA, 0xC7, 0xC8];
/// Get Sensor Reading's answers for a sensor number the BMC does not have: "requested
/// sensor, data, or record not present" (0xCB) or "invalid data field in request" (0xCC,
/// the only data field being the sensor number; ipmi_sim answers so).
pub const CC_NO_SUCH_SENSOR: [u8; 2] = [0xCB, 0xCC];

/// Reads the whole SDR repository: reservation, then every record in chunks (header
/// first, then at most `chunk` bytes a request). Returns the raw records.
pub fn read_repository(s: &mut Session, chunk: u8) -> Result<Vec<Vec<u8>>, RequestError> {
    const MAX_RECORDS: usize = 4096;
    let mut chunk = chunk.clamp(4, 32);
    let mut reservation = s.request(None, 0, ReserveSdrRepository {})?;
    let mut records = Vec::new();
    let mut id: u16 = 0x0000;
    let mut seen = std::collections::HashSet::new();
    let mut restarts = 0;
    while id != 0xFFFF {
        if !seen.insert(id) || records.len() >= MAX_RECORDS {
            return Err(RequestError::Parse(format!(
                "SDR repository loops at record {id:#06x}"
            )));
        }
        let res = read_record(s, reservation, id, &mut chunk);
        match res {
            Ok((next, bytes)) => {
                records.push(bytes);
                id = next;
            }
            Err(RequestError::Completion(CC_RESERVATION_CANCELLED)) if restarts < 8 => {
                // The repository changed under us (or the reservation timed out): reserve
                // again and reread this record.
                restarts += 1;
                seen.remove(&id);
                reservation = s.request(None, 0, ReserveSdrRepository {})?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

fn read_record(
    s: &mut Session,
    reservation: u16,
    id: u16,
    chunk: &mut u8,
) -> Result<(u16, Vec<u8>), RequestError> {
    let header_req = GetSdr {
        reservation,
        record_id: id,
        offset: 0,
        count: sdr::SdrHeader::LEN as u8,
    };
    let (next, head) = s.request(None, 0, header_req)?;
    let header = sdr::SdrHeader::parse(&head)?;
    let total = sdr::SdrHeader::LEN + header.length as usize;
    let mut bytes = head[..sdr::SdrHeader::LEN].to_vec();
    while bytes.len() < total {
        let want = (*chunk as usize).min(total - bytes.len()) as u8;
        let req = GetSdr {
            reservation,
            record_id: id,
            offset: bytes.len() as u8,
            count: want,
        };
        match s.request(None, 0, req) {
            Ok((_, part)) if part.is_empty() => {
                return Err(RequestError::Parse(format!(
                    "SDR record {id:#06x}: empty chunk at offset {}",
                    bytes.len()
                )))
            }
            Ok((_, part)) => {
                let take = part.len().min(total - bytes.len());
                bytes.extend_from_slice(&part[..take]);
            }
            Err(RequestError::Completion(cc)) if CC_TOO_MANY_BYTES.contains(&cc) && *chunk > 4 => {
                *chunk /= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok((next, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_id_and_messages() {
        let shown = "Rmcp { active_state: Some(RmcpWithState(V2_0(State { socket: RmcpIpmiSocket { buffer: [0] }, remote_console_session_id: 9, session_id: 305419896, session_sequence_number: 4 })))";
        assert_eq!(session_id_from_debug(shown), Some(0x12345678));
        assert_eq!(session_id_from_debug("no_session_id: 5"), None);
        assert_eq!(session_id_from_debug("inactive"), None);
        let m: Message = SetSessionPrivilege {
            level: PRIVILEGE_ADMINISTRATOR,
        }
        .into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x06, 0x3b, &[4][..]));
        assert_eq!(SetSessionPrivilege::parse_success_response(&[0x04]), Ok(4));
        assert!(SetSessionPrivilege::parse_success_response(&[]).is_err());
        let m: Message = CloseSession { id: 0x12345678 }.into();
        assert_eq!(
            (m.netfn_raw(), m.cmd(), m.data()),
            (0x06, 0x3c, &[0x78, 0x56, 0x34, 0x12][..])
        );
        let m: Message = GetSdr {
            reservation: 0x0102,
            record_id: 3,
            offset: 5,
            count: 16,
        }
        .into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x0a, 0x23));
        assert_eq!(m.data(), &[0x02, 0x01, 3, 0, 5, 16][..]);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let t = Target::Lan {
            host: "bmc".into(),
            port: 623,
            user: "admin".into(),
            password: Secret::Env("SOME_VAR".into()),
        };
        let shown = format!("{t:?}");
        assert!(shown.contains("admin@bmc:623"), "{shown}");
        assert!(!format!("{:?}", Secret::File("/x".into())).is_empty());
    }

    #[test]
    fn password_file_is_trimmed_and_bounded() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\r\n").expect("write");
        assert_eq!(Secret::File(p.clone()).read(), Ok(b"secret".to_vec()));
        std::fs::write(&p, "x".repeat(21)).expect("write");
        assert!(Secret::File(p).read().is_err());
        assert!(Secret::File(dir.path().join("missing")).read().is_err());
    }

    proptest! {
        #[test]
        fn session_id_parse_never_panics(s in ".{0,64}") {
            let _ = session_id_from_debug(&s);
            let _ = session_id_from_debug(&format!("x session_id: {s}"));
        }
    }
}
