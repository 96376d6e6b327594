//! Parsers for smartmontools 7 JSON output (`smartctl --json`): the device scan, one
//! device's report, the exit-status bits, and the device keys shared with the RAID
//! collectors. Pure functions of bytes; the I/O is in `mod.rs`.

use serde_json::Value;

use crate::CollectError;

/// One device from `smartctl --scan-open --json` (or `--scan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanDevice {
    /// `/dev/sda`, `/dev/nvme0`, `/dev/bus/0`.
    pub name: String,
    /// The `-d` type to query it with: `sat`, `nvme`, `megaraid,12`, `sat+megaraid,12`.
    pub dtype: String,
}

/// Parses the device list of a scan. Devices smartctl could not open are left out.
pub fn parse_scan(bytes: &[u8]) -> Result<Vec<ScanDevice>, CollectError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| CollectError::parse("smartctl --scan-open --json", e.to_string()))?;
    if !v.is_object() {
        return Err(CollectError::parse(
            "smartctl --scan-open --json",
            "not a JSON object",
        ));
    }
    let mut out = Vec::new();
    let Some(devices) = v.get("devices") else {
        // No devices: smartctl leaves the key out.
        return Ok(out);
    };
    let devices = devices.as_array().ok_or_else(|| {
        CollectError::parse("smartctl --scan-open --json", "\"devices\" is not a list")
    })?;
    for d in devices {
        if d.get("open_error").is_some() {
            continue;
        }
        let (Some(name), Some(dtype)) = (
            d.get("name").and_then(Value::as_str),
            d.get("type").and_then(Value::as_str),
        ) else {
            continue;
        };
        out.push(ScanDevice {
            name: name.to_string(),
            dtype: dtype.to_string(),
        });
    }
    Ok(out)
}

/// smartctl's exit status bits (man smartctl, "EXIT STATUS").
pub mod exit_bits {
    /// Command line did not parse.
    pub const CMDLINE: i32 = 1 << 0;
    /// Device open failed, or the device is in a low-power mode (`-n standby`).
    pub const OPEN_FAILED: i32 = 1 << 1;
    /// Some SMART or other command to the disk failed, or a checksum error.
    pub const COMMAND_FAILED: i32 = 1 << 2;
    /// SMART status check returned "DISK FAILING".
    pub const DISK_FAILING: i32 = 1 << 3;
    /// Prefail attributes at or below threshold now.
    pub const PREFAIL_NOW: i32 = 1 << 4;
    /// Usage or prefail attributes were at or below threshold in the past.
    pub const PAST_THRESHOLD: i32 = 1 << 5;
    /// The device error log contains errors.
    pub const ERROR_LOG: i32 = 1 << 6;
    /// The self-test log contains errors.
    pub const SELFTEST_LOG: i32 = 1 << 7;
}

/// What one `smartctl --json -a -n standby` run said about a device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskReport {
    pub exit_status: i32,
    /// The check was skipped: the disk sleeps and `-n standby` kept it asleep.
    pub standby: bool,
    /// smartctl could not open the device (and it is not sleeping): the message.
    pub open_failed: Option<String>,
    pub protocol: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// `smart_status.passed`.
    pub passed: Option<bool>,
    pub temperature_celsius: Option<f64>,
    pub power_on_hours: Option<f64>,
    /// ATA attribute 5 (raw).
    pub reallocated_sectors: Option<u64>,
    /// ATA attribute 197 (raw).
    pub pending_sectors: Option<u64>,
    /// ATA attribute 198 (raw).
    pub offline_uncorrectable: Option<u64>,
    /// ATA attributes whose `when_failed` is `now` (normalized value at or below threshold).
    pub failing_now: Vec<String>,
    pub nvme_critical_warning: Option<u64>,
    pub nvme_media_errors: Option<u64>,
    pub nvme_available_spare: Option<f64>,
    pub nvme_available_spare_threshold: Option<f64>,
    pub nvme_percentage_used: Option<f64>,
    pub scsi_grown_defects: Option<u64>,
    /// The newest entry of the drive's self-test log (ATA or NVMe), when it has one.
    pub last_selftest: Option<SelfTest>,
}

/// How a self-test ended, from its status code (ATA: the high nibble of the log entry's
/// status byte, ACS-3 "SMART self-test log"; NVMe: the result nibble of the Device
/// Self-test log entry, NVMe base spec 5.14.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTestResult {
    Passed,
    /// The drive found a fault (read, servo, electrical, handling damage, fatal error).
    Failed,
    /// Aborted or interrupted by the host, a reset or a format: says nothing of the disk.
    Aborted,
    InProgress,
    /// A code neither spec names.
    Unknown,
}

impl SelfTestResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SelfTestResult::Passed => "passed",
            SelfTestResult::Failed => "failed",
            SelfTestResult::Aborted => "aborted",
            SelfTestResult::InProgress => "in_progress",
            SelfTestResult::Unknown => "unknown",
        }
    }

    fn ata(status: u64) -> Self {
        match status >> 4 {
            0 => SelfTestResult::Passed,
            1 | 2 => SelfTestResult::Aborted,
            3..=8 => SelfTestResult::Failed,
            15 => SelfTestResult::InProgress,
            _ => SelfTestResult::Unknown,
        }
    }

    fn nvme(result: u64) -> Self {
        match result & 0xf {
            0 => SelfTestResult::Passed,
            1..=4 | 8 | 9 => SelfTestResult::Aborted,
            5..=7 => SelfTestResult::Failed,
            _ => SelfTestResult::Unknown,
        }
    }
}

/// The newest self-test the drive logged.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfTest {
    /// smartctl's name of the test: `Short offline`, `Extended offline`, `Short`.
    pub test: String,
    pub result: SelfTestResult,
    /// smartctl's text of the status: `Completed: read failure`.
    pub status: String,
    /// Power-on hours since the test ran, when the drive's power-on time is known.
    pub power_on_hours_ago: Option<u64>,
    /// First failing LBA, when the drive logged one.
    pub lba: Option<u64>,
}

/// ATA logs the power-on hours of a self-test in 16 bits: a drive past 65535 hours logs
/// them modulo 65536 (seen in a scrutiny capture: 65592 power-on hours, newest test at 42).
fn hours_ago(now: Option<f64>, at: u64, wraps_at_16_bits: bool) -> Option<u64> {
    let now = now.filter(|h| *h >= 0.0)? as u64;
    // Below 65536 power-on hours nothing has wrapped: a logged time after now is no answer
    // (QEMU's emulated disk logs every test at 4660 hours, whatever its power-on time).
    if wraps_at_16_bits && now > 0xffff && at <= 0xffff {
        Some(now.wrapping_sub(at) & 0xffff)
    } else {
        now.checked_sub(at)
    }
}

fn last_selftest(v: &Value, power_on_hours: Option<f64>) -> Option<SelfTest> {
    if let Some(e) = v
        .pointer("/ata_smart_self_test_log/standard/table")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
    {
        let code = u64_at(e, "/status/value")?;
        return Some(SelfTest {
            test: str_at(e, "/type/string").unwrap_or_default(),
            result: SelfTestResult::ata(code),
            status: str_at(e, "/status/string").unwrap_or_default(),
            power_on_hours_ago: u64_at(e, "/lifetime_hours")
                .and_then(|at| hours_ago(power_on_hours, at, true)),
            lba: u64_at(e, "/lba"),
        });
    }
    let log = v.pointer("/nvme_self_test_log")?;
    // A test running now is in the header, not the table.
    if u64_at(log, "/current_self_test_operation/value").is_some_and(|op| op != 0) {
        return Some(SelfTest {
            test: str_at(log, "/current_self_test_operation/string").unwrap_or_default(),
            result: SelfTestResult::InProgress,
            status: "in progress".to_string(),
            power_on_hours_ago: None,
            lba: None,
        });
    }
    let e = log.pointer("/table").and_then(Value::as_array)?.first()?;
    let code = u64_at(e, "/self_test_result/value")?;
    Some(SelfTest {
        test: str_at(e, "/self_test_code/string").unwrap_or_default(),
        result: SelfTestResult::nvme(code),
        status: str_at(e, "/self_test_result/string").unwrap_or_default(),
        power_on_hours_ago: u64_at(e, "/power_on_hours")
            .and_then(|at| hours_ago(power_on_hours, at, false)),
        lba: u64_at(e, "/lba/value").or_else(|| u64_at(e, "/lba")),
    })
}

fn str_at(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn u64_at(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

fn f64_at(v: &Value, ptr: &str) -> Option<f64> {
    v.pointer(ptr)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
}

/// Parses one device report. `exit_status` is smartctl's exit code (the JSON carries it
/// too, the process's code wins). Output that is not JSON (a smartctl older than 7, which
/// does not know `--json`) is an error.
pub fn parse_report(bytes: &[u8], exit_status: i32) -> Result<DiskReport, CollectError> {
    let what = "smartctl --json -a";
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| CollectError::parse(what, e.to_string()))?;
    if !v.is_object() {
        return Err(CollectError::parse(what, "not a JSON object"));
    }
    let messages: Vec<String> = v
        .pointer("/smartctl/messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| x.get("string").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut r = DiskReport {
        exit_status,
        ..DiskReport::default()
    };
    // Bit 0 is also what smartctl returns when it cannot tell the device's type (a disk
    // that vanished after the scan): a problem of that device, not of the collector.
    if exit_status & (exit_bits::OPEN_FAILED | exit_bits::CMDLINE) != 0 {
        let sleeping = messages.iter().any(|m| {
            let u = m.to_ascii_uppercase();
            u.contains("STANDBY") || u.contains("SLEEP")
        });
        if sleeping {
            r.standby = true;
        } else {
            r.open_failed = Some(if messages.is_empty() {
                "device open failed".to_string()
            } else {
                messages.join("; ")
            });
        }
    }
    r.protocol = str_at(&v, "/device/protocol");
    r.model = str_at(&v, "/model_name").or_else(|| {
        match (str_at(&v, "/scsi_vendor"), str_at(&v, "/scsi_product")) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        }
    });
    r.serial = str_at(&v, "/serial_number");
    r.firmware = str_at(&v, "/firmware_version").or_else(|| str_at(&v, "/scsi_revision"));
    r.passed = v.pointer("/smart_status/passed").and_then(Value::as_bool);
    r.temperature_celsius = f64_at(&v, "/temperature/current");
    r.power_on_hours = f64_at(&v, "/power_on_time/hours");
    if let Some(table) = v
        .pointer("/ata_smart_attributes/table")
        .and_then(Value::as_array)
    {
        for a in table {
            let id = a.get("id").and_then(Value::as_u64);
            let raw = u64_at(a, "/raw/value");
            match id {
                Some(5) => r.reallocated_sectors = raw,
                Some(197) => r.pending_sectors = raw,
                Some(198) => r.offline_uncorrectable = raw,
                _ => {}
            }
            if a.get("when_failed").and_then(Value::as_str) == Some("now") {
                let name = a
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("attribute {}", id.unwrap_or(0)));
                r.failing_now.push(name);
            }
        }
    }
    let nvme = "/nvme_smart_health_information_log";
    r.nvme_critical_warning = u64_at(&v, &format!("{nvme}/critical_warning"));
    r.nvme_media_errors = u64_at(&v, &format!("{nvme}/media_errors"));
    r.nvme_available_spare = f64_at(&v, &format!("{nvme}/available_spare"));
    r.nvme_available_spare_threshold = f64_at(&v, &format!("{nvme}/available_spare_threshold"));
    r.nvme_percentage_used = f64_at(&v, &format!("{nvme}/percentage_used"));
    if r.temperature_celsius.is_none() {
        r.temperature_celsius = f64_at(&v, &format!("{nvme}/temperature"));
    }
    r.scsi_grown_defects = u64_at(&v, "/scsi_grown_defect_list");
    r.last_selftest = last_selftest(&v, r.power_on_hours);
    Ok(r)
}

/// Limits above which a counter makes a disk at risk (`collectors.smart.*` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub reallocated_sectors: u64,
    pub pending_sectors: u64,
    pub media_errors: u64,
}

impl Default for Limits {
    /// Any reallocated, pending or offline-uncorrectable sector, any NVMe media error: the
    /// counters that predict failure best (Backblaze's drive statistics).
    fn default() -> Self {
        Limits {
            reallocated_sectors: 0,
            pending_sectors: 0,
            media_errors: 0,
        }
    }
}

const NVME_WARNINGS: [&str; 6] = [
    "available spare below threshold",
    "temperature out of range",
    "NVM subsystem reliability degraded",
    "media in read-only mode",
    "volatile memory backup failed",
    "persistent memory region read-only",
];

/// Why this disk is at risk; empty when it is not (or when nothing is known: a sleeping
/// disk or one that could not be opened says nothing here).
pub fn risk_reasons(r: &DiskReport, limits: &Limits) -> Vec<String> {
    let mut why = Vec::new();
    if r.standby || r.open_failed.is_some() {
        return why;
    }
    if r.passed == Some(false) || r.exit_status & exit_bits::DISK_FAILING != 0 {
        why.push("SMART overall-health self-assessment FAILED".to_string());
    }
    if !r.failing_now.is_empty() {
        why.push(format!(
            "attribute at or below threshold now: {}",
            r.failing_now.join(", ")
        ));
    } else if r.exit_status & exit_bits::PREFAIL_NOW != 0 {
        why.push("prefail attribute at or below threshold now".to_string());
    }
    if let Some(w) = r.nvme_critical_warning.filter(|w| *w != 0) {
        let bits: Vec<&str> = NVME_WARNINGS
            .iter()
            .enumerate()
            .filter(|(i, _)| w & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect();
        why.push(format!(
            "NVMe critical warning 0x{w:02x}{}",
            if bits.is_empty() {
                String::new()
            } else {
                format!(" ({})", bits.join(", "))
            }
        ));
    }
    let over = |v: Option<u64>, limit: u64, what: &str, why: &mut Vec<String>| {
        if let Some(n) = v.filter(|n| *n > limit) {
            why.push(format!("{n} {what}"));
        }
    };
    over(
        r.reallocated_sectors,
        limits.reallocated_sectors,
        "reallocated sectors",
        &mut why,
    );
    over(
        r.scsi_grown_defects,
        limits.reallocated_sectors,
        "grown defects",
        &mut why,
    );
    over(
        r.pending_sectors,
        limits.pending_sectors,
        "pending sectors",
        &mut why,
    );
    over(
        r.offline_uncorrectable,
        limits.pending_sectors,
        "offline uncorrectable sectors",
        &mut why,
    );
    over(
        r.nvme_media_errors,
        limits.media_errors,
        "media errors",
        &mut why,
    );
    // Only the newest test counts: a failure a later passing test superseded is history.
    if let Some(t) = r
        .last_selftest
        .as_ref()
        .filter(|t| t.result == SelfTestResult::Failed)
    {
        why.push(format!(
            "last self-test failed: {} ({}{}{})",
            t.status,
            t.test,
            t.lba.map(|l| format!(", LBA {l}")).unwrap_or_default(),
            t.power_on_hours_ago
                .map(|h| format!(", {h} power-on hours ago"))
                .unwrap_or_default()
        ));
    }
    why
}

/// Where a smartctl device is, before sysfs is asked about the parts it cannot name alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A whole disk the kernel names (`sdb`, `nvme0n1`).
    Disk(String),
    /// An NVMe controller (`nvme0`): its namespaces are the disks.
    NvmeController(String),
    /// A drive behind a MegaRAID controller: device name (`/dev/bus/0` or `/dev/sdX`) and
    /// the controller's device id (`megaraid,N`).
    Megaraid { name: String, did: u32 },
    /// A drive behind an HP Smart Array (`cciss,N`).
    Cciss { name: String, index: u32 },
}

fn passthrough_index(dtype: &str, driver: &str) -> Option<u32> {
    dtype
        .split('+')
        .find_map(|part| part.strip_prefix(driver)?.strip_prefix(',')?.parse().ok())
}

fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Classifies a device from its name and `-d` type.
pub fn locate(name: &str, dtype: &str) -> Location {
    if let Some(did) = passthrough_index(dtype, "megaraid") {
        return Location::Megaraid {
            name: name.to_string(),
            did,
        };
    }
    if let Some(index) = passthrough_index(dtype, "cciss") {
        return Location::Cciss {
            name: name.to_string(),
            index,
        };
    }
    let base = basename(name);
    let is_controller = base
        .strip_prefix("nvme")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if is_controller {
        Location::NvmeController(base.to_string())
    } else {
        Location::Disk(base.to_string())
    }
}

/// The SCSI host number in `/dev/bus/N` (how smartctl names a MegaRAID controller).
pub fn bus_host(name: &str) -> Option<u32> {
    name.strip_prefix("/dev/bus/")?.parse().ok()
}

/// The host number from a SCSI address `H:C:T:L` (the `device` link of a block device).
pub fn scsi_address_host(addr: &str) -> Option<u32> {
    let mut parts = addr.split(':');
    let host = parts.next()?.parse().ok()?;
    (parts.count() == 3).then_some(host)
}

/// The key of a drive behind a MegaRAID controller, shared with the `hwraid` collector:
/// `megaraid:<SCSI host number>:<device id>`.
pub fn megaraid_key(host: u32, did: u32) -> String {
    format!("megaraid:{host}:{did}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scan_keeps_openable_devices() {
        let j = br#"{"json_format_version":[1,0],"devices":[
            {"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat","protocol":"ATA"},
            {"name":"/dev/sdb","info_name":"/dev/sdb","type":"scsi","protocol":"SCSI","open_error":"No such device"},
            {"name":"/dev/bus/0","info_name":"/dev/bus/0 [megaraid_disk_12]","type":"megaraid,12","protocol":"SCSI"}]}"#;
        let d = parse_scan(j).expect("parses");
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].dtype, "megaraid,12");
        assert_eq!(parse_scan(br#"{"smartctl":{}}"#).expect("empty"), vec![]);
        assert!(parse_scan(b"[1]").is_err());
        assert!(parse_scan(b"{\"devices\":").is_err());
    }

    #[test]
    fn locations_and_keys() {
        assert_eq!(locate("/dev/sdb", "sat"), Location::Disk("sdb".into()));
        assert_eq!(
            locate("/dev/nvme0", "nvme"),
            Location::NvmeController("nvme0".into())
        );
        assert_eq!(
            locate("/dev/nvme1n1", "nvme"),
            Location::Disk("nvme1n1".into())
        );
        assert_eq!(
            locate("/dev/bus/0", "sat+megaraid,12"),
            Location::Megaraid {
                name: "/dev/bus/0".into(),
                did: 12
            }
        );
        assert_eq!(
            locate("/dev/sg1", "cciss,3"),
            Location::Cciss {
                name: "/dev/sg1".into(),
                index: 3
            }
        );
        assert_eq!(bus_host("/dev/bus/2"), Some(2));
        assert_eq!(bus_host("/dev/sda"), None);
        assert_eq!(scsi_address_host("4:2:0:0"), Some(4));
        assert_eq!(scsi_address_host("4:2:0"), None);
        assert_eq!(megaraid_key(0, 12), "megaraid:0:12");
    }

    #[test]
    fn ata_selftest_log_newest_entry_counts() {
        // The shape smartctl 7 prints (seen in scrutiny's smart-fail2.json capture):
        // newest entry first, status value and text, lifetime hours, LBA on a failure.
        let j = br#"{"power_on_time":{"hours":1500},
            "ata_smart_self_test_log":{"standard":{"revision":1,"table":[
              {"type":{"value":2,"string":"Extended offline"},
               "status":{"value":121,"string":"Completed: read failure","remaining_percent":90,"passed":false},
               "lifetime_hours":1490,"lba":104870168},
              {"type":{"value":1,"string":"Short offline"},
               "status":{"value":0,"string":"Completed without error","passed":true},"lifetime_hours":1000}
            ],"count":2,"error_count_total":1,"error_count_outdated":0}}}"#;
        let r = parse_report(j, 0).expect("parses");
        let t = r.last_selftest.clone().expect("a self-test");
        assert_eq!(t.result, SelfTestResult::Failed);
        assert_eq!(t.test, "Extended offline");
        assert_eq!(t.power_on_hours_ago, Some(10));
        assert_eq!(t.lba, Some(104870168));
        assert_eq!(
            risk_reasons(&r, &Limits::default()),
            vec!["last self-test failed: Completed: read failure (Extended offline, LBA 104870168, 10 power-on hours ago)".to_string()]
        );
        // A failure superseded by a later passing test is history.
        let j = br#"{"power_on_time":{"hours":1500},
            "ata_smart_self_test_log":{"standard":{"table":[
              {"type":{"value":1,"string":"Short offline"},"status":{"value":0,"string":"Completed without error","passed":true},"lifetime_hours":1499},
              {"type":{"value":2,"string":"Extended offline"},"status":{"value":121,"string":"Completed: read failure","passed":false},"lifetime_hours":1490}
            ]}}}"#;
        let r = parse_report(j, 0).expect("parses");
        assert_eq!(
            r.last_selftest.as_ref().map(|t| t.result),
            Some(SelfTestResult::Passed)
        );
        assert!(risk_reasons(&r, &Limits::default()).is_empty());
    }

    #[test]
    fn ata_selftest_codes_and_16_bit_hours() {
        for (code, want) in [
            (0, SelfTestResult::Passed),
            (16, SelfTestResult::Aborted),
            (33, SelfTestResult::Aborted),
            (48, SelfTestResult::Failed),
            (121, SelfTestResult::Failed),
            (130, SelfTestResult::Failed),
            (249, SelfTestResult::InProgress),
            (160, SelfTestResult::Unknown),
        ] {
            assert_eq!(SelfTestResult::ata(code), want, "{code}");
        }
        // 65592 power-on hours, the test logged at 42 (65578 modulo 65536): 14 hours ago.
        assert_eq!(hours_ago(Some(65592.0), 42, true), Some(14));
        assert_eq!(hours_ago(Some(100.0), 90, true), Some(10));
        assert_eq!(hours_ago(None, 90, true), None);
        assert_eq!(hours_ago(Some(100.0), 4660, true), None);
        // NVMe logs 64-bit hours: a later value than now is no answer, not a wrap.
        assert_eq!(hours_ago(Some(100.0), 190, false), None);
        // An aborted or running test is no news of the disk.
        let j = br#"{"ata_smart_self_test_log":{"standard":{"table":[
              {"type":{"value":1,"string":"Short offline"},"status":{"value":33,"string":"Interrupted (host reset)","passed":false},"lifetime_hours":7}]}}}"#;
        let r = parse_report(j, 0).expect("parses");
        assert_eq!(
            r.last_selftest.as_ref().map(|t| t.result),
            Some(SelfTestResult::Aborted)
        );
        assert!(risk_reasons(&r, &Limits::default()).is_empty());
        // An empty log (count 0, no table: netdata's device-hdd-sda.json) has no last test.
        let j = br#"{"ata_smart_self_test_log":{"standard":{"revision":1,"count":0}}}"#;
        assert_eq!(parse_report(j, 0).expect("parses").last_selftest, None);
    }

    #[test]
    fn nvme_selftest_log() {
        let j = br#"{"power_on_time":{"hours":300},
            "nvme_self_test_log":{"current_self_test_operation":{"value":0,"string":"No self-test in progress"},
              "table":[{"self_test_code":{"value":1,"string":"Short"},
                        "self_test_result":{"value":7,"string":"Completed: failed segments"},
                        "power_on_hours":295,"segment":2,"lba":{"value":4096}},
                       {"self_test_code":{"value":1,"string":"Short"},
                        "self_test_result":{"value":0,"string":"Completed without error"},"power_on_hours":10}]}}"#;
        let r = parse_report(j, 0).expect("parses");
        let t = r.last_selftest.clone().expect("a self-test");
        assert_eq!(t.result, SelfTestResult::Failed);
        assert_eq!((t.power_on_hours_ago, t.lba), (Some(5), Some(4096)));
        assert_eq!(risk_reasons(&r, &Limits::default()).len(), 1);
        let j = br#"{"nvme_self_test_log":{"current_self_test_operation":{"value":1,"string":"Short self-test in progress"},
              "current_self_test_completion_percent":30,"table":[]}}"#;
        let r = parse_report(j, 0).expect("parses");
        assert_eq!(
            r.last_selftest.map(|t| t.result),
            Some(SelfTestResult::InProgress)
        );
        for (code, want) in [
            (0, SelfTestResult::Passed),
            (2, SelfTestResult::Aborted),
            (5, SelfTestResult::Failed),
            (6, SelfTestResult::Failed),
            (9, SelfTestResult::Aborted),
            (15, SelfTestResult::Unknown),
        ] {
            assert_eq!(SelfTestResult::nvme(code), want, "{code}");
        }
    }

    #[test]
    fn failing_ata_disk() {
        let j = br#"{"smartctl":{"exit_status":24},"device":{"protocol":"ATA"},
            "model_name":"WDC WD40","serial_number":"WX1","smart_status":{"passed":false},
            "ata_smart_attributes":{"table":[
              {"id":5,"name":"Reallocated_Sector_Ct","thresh":140,"when_failed":"now","raw":{"value":1848}},
              {"id":197,"name":"Current_Pending_Sector","when_failed":"","raw":{"value":12}},
              {"id":198,"name":"Offline_Uncorrectable","when_failed":"","raw":{"value":0}}]},
            "temperature":{"current":41}}"#;
        let r = parse_report(j, 24).expect("parses");
        assert_eq!(r.passed, Some(false));
        assert_eq!(r.reallocated_sectors, Some(1848));
        assert_eq!(r.pending_sectors, Some(12));
        assert_eq!(r.failing_now, vec!["Reallocated_Sector_Ct"]);
        let why = risk_reasons(&r, &Limits::default());
        assert_eq!(
            why,
            vec![
                "SMART overall-health self-assessment FAILED",
                "attribute at or below threshold now: Reallocated_Sector_Ct",
                "1848 reallocated sectors",
                "12 pending sectors"
            ]
        );
        let lenient = Limits {
            reallocated_sectors: 5000,
            pending_sectors: 100,
            media_errors: 0,
        };
        assert_eq!(risk_reasons(&r, &lenient).len(), 2);
    }

    #[test]
    fn nvme_critical_warning_bits() {
        let j = br#"{"device":{"protocol":"NVMe"},"smart_status":{"passed":false,"nvme":{"value":4}},
            "nvme_smart_health_information_log":{"critical_warning":4,"temperature":45,
            "available_spare":100,"available_spare_threshold":10,"percentage_used":3,"media_errors":0}}"#;
        let r = parse_report(j, 8).expect("parses");
        assert_eq!(r.temperature_celsius, Some(45.0));
        assert_eq!(
            risk_reasons(&r, &Limits::default()),
            vec![
                "SMART overall-health self-assessment FAILED",
                "NVMe critical warning 0x04 (NVM subsystem reliability degraded)"
            ]
        );
    }

    #[test]
    fn standby_is_no_news_and_unopenable_is_per_device() {
        let j = br#"{"smartctl":{"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}],"exit_status":2}}"#;
        let r = parse_report(j, 2).expect("parses");
        assert!(r.standby);
        assert!(risk_reasons(&r, &Limits::default()).is_empty());
        let j = br#"{"smartctl":{"messages":[{"string":"/dev/sdz: Unable to detect device type","severity":"error"}],"exit_status":2}}"#;
        let r = parse_report(j, 2).expect("parses");
        assert_eq!(
            r.open_failed.as_deref(),
            Some("/dev/sdz: Unable to detect device type")
        );
        assert!(parse_report(b"not json", 0).is_err());
        assert!(parse_report(b"[]", 0).is_err());
    }

    #[test]
    fn parses_real_smartctl_output() {
        // What this machine's own smartctl prints for a device that does not exist.
        let j = br#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"argv":["smartctl","--json","-n","standby","-a","/dev/nonexist"],
            "messages":[{"string":"/dev/nonexist: Unable to detect device type","severity":"error"}],"exit_status":1},
            "local_time":{"time_t":1795520347,"asctime":"Tue Nov 24 11:39:07 2026 UTC"}}"#;
        let r = parse_report(j, 1).expect("parses");
        assert_eq!(
            r.open_failed.as_deref(),
            Some("/dev/nonexist: Unable to detect device type")
        );
        assert!(risk_reasons(&r, &Limits::default()).is_empty());
    }

    proptest! {
        #[test]
        fn scan_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_scan(&bytes);
        }

        #[test]
        fn report_never_panics(bytes in any::<Vec<u8>>(), status in any::<i32>()) {
            if let Ok(r) = parse_report(&bytes, status) {
                let _ = risk_reasons(&r, &Limits::default());
            }
        }

        #[test]
        fn report_never_panics_on_json_shaped_input(
            crit in any::<i64>(), media in any::<i64>(), id in any::<i64>(),
            raw in any::<i64>(), failed in "[a-z]{0,4}", passed in any::<bool>(),
            status in any::<i32>(),
        ) {
            let j = format!(r#"{{"smart_status":{{"passed":{passed}}},
                "nvme_smart_health_information_log":{{"critical_warning":{crit},"media_errors":{media}}},
                "ata_smart_attributes":{{"table":[{{"id":{id},"when_failed":"{failed}","raw":{{"value":{raw}}}}}]}}}}"#);
            if let Ok(r) = parse_report(j.as_bytes(), status) {
                let _ = risk_reasons(&r, &Limits::default());
            }
        }

        #[test]
        fn locate_never_panics(name in any::<String>(), dtype in any::<String>()) {
            let _ = locate(&name, &dtype);
            let _ = bus_host(&name);
            let _ = scsi_address_host(&name);
        }
    }
}
