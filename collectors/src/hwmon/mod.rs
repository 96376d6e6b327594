//! The `hwmon` collector: fans and PMBus power supplies the kernel's hwmon drivers see, and
//! mains supplies from `/sys/class/power_supply`.
//!
//! Reads `/sys/class/hwmon/hwmon*/` (under `--path.sysfs`). Groups: `fan:<chip>` per chip
//! with fans, `psu:pmbus` for all PMBus power-supply chips, `psu:power_supply` for
//! `power_supply` devices of type `Mains`. Uevents of the `hwmon` and `power_supply`
//! subsystems wake it; sensor values themselves raise no events, so it also polls.

pub mod chip;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::FlagSpec;
use regex_lite::Regex;
use serde::{Deserialize, Serialize};

use crate::roots::{list_dir, read_attr, Attr};
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, CollectorMemory, MemberReading,
    Reading, Role, Roots, Wake,
};
use chip::{Chip, MainsSupply};

/// Drivers of PMBus power supplies (the `name` of their hwmon chip). Voltage regulators and
/// hot-swap controllers also speak PMBus but are not PSUs, so they are not listed.
pub const DEFAULT_PSU_CHIPS: &str =
    "pmbus|ibm[-_]cffps.*|inspur[-_]ipsps.*|bel[-_]pfe|pfe[0-9]+|fsp[-_]?3y|yh5151e|ym2151e|dps[0-9]+.*|acbel[-_]fsg[0-9]*|crps.*|psu.*";

/// `collectors.hwmon` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwmonConfig {
    /// Regex (whole name) of hwmon chip names that are PMBus power supplies.
    #[serde(default)]
    pub psu_chips: Option<String>,
    /// Fans that are never members, as `<chip>/<sensor>` (`nct6775/fan3`).
    #[serde(default)]
    pub ignore_fans: Vec<String>,
    /// Power feed of each PMBus PSU, by member name (`{pmbus-7-0058: A}`): failure domains.
    #[serde(default)]
    pub psu_feeds: BTreeMap<String, String>,
    /// Headroom the surviving PSUs must keep when the largest fails, in percent (default 0).
    #[serde(default)]
    pub psu_capacity_margin_percent: f64,
}

pub const FLAGS: &[FlagSpec] = &[FlagSpec::text(
    "collector.hwmon.psu-chips",
    "REGEX",
    "hwmon chip names (whole-name regex) that are PMBus power supplies, grouped as psu:pmbus [default: built-in list of PSU drivers]",
)];

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: HwmonConfig = crate::parse_config("hwmon", ctx.config)?;
    let flag = ctx
        .flags
        .text("hwmon", "collector.hwmon.psu-chips")?
        .map(str::to_string);
    let pattern = flag
        .or_else(|| config.psu_chips.clone())
        .unwrap_or_else(|| DEFAULT_PSU_CHIPS.to_string());
    let psu = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| BuildError::Config {
        collector: "hwmon",
        detail: format!("psu_chips: {e}"),
    })?;
    Ok(Box::new(
        HwmonCollector::new(ctx.roots.clone(), config, psu).with_memory(ctx.memory.clone()),
    ))
}

/// Format version written into the memory file.
const MEMORY_VERSION: u32 = 1;

/// File name of the collector's own memory file before the agent's store kept it: the
/// store migrates it into its `hwmon` section once and leaves the file in place.
pub const STATE_FILE: &str = "hwmon.json";

/// What the collector remembers across agent restarts (the store's `hwmon` section; the
/// same shape as the old `<state.dir>/hwmon.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub version: u32,
    /// Fans (`<chip>/<sensor>`) ever seen spinning: one of those at 0 rpm has stopped.
    pub seen_spinning: BTreeSet<String>,
    /// The largest member count each group has had: `required` and `by_design` come from it,
    /// never from a live count that shrank (a PSU chip unbinds when its PSU is pulled).
    pub max_members: BTreeMap<String, u32>,
}

/// Parses a state file's bytes.
pub fn parse_memory(bytes: &[u8]) -> Result<Memory, serde_json::Error> {
    serde_json::from_slice(bytes)
}

pub struct HwmonCollector {
    roots: Roots,
    config: HwmonConfig,
    psu_chips: Regex,
    /// Fans ever seen spinning and the largest member count per group; persisted through
    /// `store` when the agent has a state directory.
    memory: Memory,
    /// The agent's store; read-only in one-shot runs (`status`, `check`).
    store: CollectorMemory,
}

/// Reads a sensor attribute; any read error makes just that value unreadable (`None`): a
/// flaky I2C sensor must not take the whole collector down.
fn read_sensor(path: &Path) -> Option<Option<String>> {
    match read_attr(path) {
        Ok(Attr::Value(v)) => Some(Some(v)),
        Ok(Attr::Missing) => None,
        Ok(Attr::Unavailable) => Some(None),
        Err(e) => {
            tracing::debug!(error = %e, "hwmon attribute unreadable");
            Some(None)
        }
    }
}

impl HwmonCollector {
    pub fn new(roots: Roots, config: HwmonConfig, psu_chips: Regex) -> Self {
        HwmonCollector {
            roots,
            config,
            psu_chips,
            memory: Memory {
                version: MEMORY_VERSION,
                ..Memory::default()
            },
            store: CollectorMemory::none(),
        }
    }

    /// Remembers fans seen spinning and group sizes in the agent's store across restarts
    /// (loaded now; a corrupt section is ignored with a warning).
    pub fn with_memory(mut self, store: CollectorMemory) -> Self {
        if let Some(m) = store.load::<Memory>("hwmon") {
            self.memory = m;
            self.memory.version = MEMORY_VERSION;
        }
        self.store = store;
        self
    }

    /// The largest member count of `group`, counting `live` now.
    fn designed(&mut self, group: &str, live: usize) -> u32 {
        let e = self
            .memory
            .max_members
            .entry(group.to_string())
            .or_insert(0);
        *e = (*e).max(live as u32);
        *e
    }

    fn read_chip(&self, hwmon: &str) -> Result<Chip, CollectError> {
        let dir = self.roots.sys("class/hwmon").join(hwmon);
        let mut chip = Chip {
            hwmon: hwmon.to_string(),
            device: std::fs::read_link(dir.join("device"))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
            ..Chip::default()
        };
        // Old drivers keep their attributes in device/ instead of the hwmon directory.
        for base in [dir.clone(), dir.join("device")] {
            if chip.name.is_empty() {
                if let Some(Some(n)) = read_sensor(&base.join("name")) {
                    chip.name = n.trim().to_string();
                }
            }
            for file in list_dir(&base)? {
                if chip::wanted_attr(&file) && !chip.attrs.contains_key(&file) {
                    if let Some(v) = read_sensor(&base.join(&file)) {
                        chip.attrs.insert(file, v);
                    }
                }
            }
        }
        Ok(chip)
    }

    fn read_mains(&self) -> Result<Vec<MainsSupply>, CollectError> {
        let class = self.roots.sys("class/power_supply");
        let mut out = Vec::new();
        for name in list_dir(&class)? {
            let dir = class.join(&name);
            let kind = read_sensor(&dir.join("type")).flatten();
            if kind.as_deref().map(str::trim) != Some("Mains") {
                continue;
            }
            out.push(MainsSupply {
                name,
                online: read_sensor(&dir.join("online")).flatten(),
                present: read_sensor(&dir.join("present")).flatten(),
            });
        }
        Ok(out)
    }
}

impl Collector for HwmonCollector {
    fn collect(&mut self) -> Result<Collection, CollectError> {
        let hwmons: Vec<String> = list_dir(&self.roots.sys("class/hwmon"))?
            .into_iter()
            .filter(|n| n.starts_with("hwmon"))
            .collect();
        let mains = self.read_mains()?;
        if hwmons.is_empty() && mains.is_empty() {
            return Ok(Collection::not_present());
        }
        let mut chips = Vec::new();
        for h in &hwmons {
            chips.push(self.read_chip(h)?);
        }
        // Sorted by stable id, not by hwmonN (which is probe order).
        let ids = chip::chip_ids(&chips);
        let mut order: Vec<usize> = (0..chips.len()).collect();
        order.sort_by(|a, b| ids[*a].cmp(&ids[*b]));

        let before = self.memory.clone();
        let mut c = Collection::present();
        let mut psus = Vec::new();
        let mut supplies = Vec::new();
        for i in order {
            let (chip, id) = (&chips[i], &ids[i]);
            let fans = chip.fans();
            for f in &fans {
                if f.input.is_some_and(|v| v > 0.0) {
                    self.memory
                        .seen_spinning
                        .insert(format!("{id}/{}", f.sensor));
                }
            }
            chip::fan_readings(id, &fans, &mut c.readings);
            if self.psu_chips.is_match(&chip.name) {
                chip::psu_readings(id, chip, &mut c.readings);
                let (role, health) = chip::psu_health(chip);
                supplies.push(crate::topology::power::pmbus_supply(
                    id,
                    &health,
                    &chip.attrs,
                ));
                psus.push(MemberReading::new(id.clone(), role, health));
                continue;
            }
            let members = chip::fan_members(
                id,
                &fans,
                &self.memory.seen_spinning,
                &self.config.ignore_fans,
            );
            if !members.is_empty() {
                let designed = self.designed(&format!("fan:{id}"), members.len());
                c.groups.push(chip::fan_group(id, members, designed));
            }
        }
        if !psus.is_empty() {
            let designed = self.designed("psu:pmbus", psus.len());
            let mut g = chip::psu_group("pmbus", psus, designed);
            crate::topology::annotate_psu_group(
                &self.config.psu_feeds,
                &supplies,
                self.config.psu_capacity_margin_percent,
                &mut g,
            );
            c.groups.push(g);
        }
        if !mains.is_empty() {
            let mut members = Vec::new();
            for m in &mains {
                if let Some(v) = m
                    .online
                    .as_deref()
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    c.readings.push(Reading::gauge(
                        "sparewatch_power_supply_online",
                        "Whether a mains power supply (/sys/class/power_supply, type Mains) is online.",
                        vec![("supply", m.name.clone())],
                        v,
                    ));
                }
                members.push(MemberReading::new(&m.name, Role::Active, m.health()));
            }
            let designed = self.designed("psu:power_supply", members.len());
            c.groups
                .push(chip::psu_group("power_supply", members, designed));
        }
        if self.memory != before {
            self.store.save("hwmon", &self.memory);
        }
        Ok(c)
    }

    fn watch(&mut self, wake: Wake) -> Result<(), CollectError> {
        crate::events::spawn_uevent_watcher("hwmon", wake, |ev| {
            matches!(ev.var("SUBSYSTEM"), Some("hwmon") | Some("power_supply"))
        })
        .map_err(|e| CollectError::Other(format!("uevents: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemberHealth;
    use proptest::prelude::*;

    fn write(dir: &Path, rel: &str, v: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, v).expect("write");
    }

    /// A Super-I/O chip with three fans (no fanN_min, no alarm) and two PMBus PSUs.
    fn tree(dir: &Path, rpm: [&str; 3]) {
        write(dir, "sys/class/hwmon/hwmon0/name", "nct6775\n");
        for (i, v) in rpm.iter().enumerate() {
            write(
                dir,
                &format!("sys/class/hwmon/hwmon0/fan{}_input", i + 1),
                v,
            );
        }
        for (h, addr) in [("hwmon1", "58"), ("hwmon2", "59")] {
            write(dir, &format!("sys/class/hwmon/{h}/name"), "pmbus\n");
            write(dir, &format!("sys/class/hwmon/{h}/in1_label"), "vin\n");
            write(dir, &format!("sys/class/hwmon/{h}/in1_input"), "230000\n");
            let dev = dir.join(format!("sys/devices/i2c-7/7-00{addr}"));
            std::fs::create_dir_all(&dev).expect("mkdir");
            std::os::unix::fs::symlink(&dev, dir.join(format!("sys/class/hwmon/{h}/device")))
                .expect("symlink");
        }
    }

    /// Stands in for the agent's store: a new collector loads what the last one saved.
    #[derive(Clone, Default)]
    struct Disk(std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>);

    impl Disk {
        fn get(&self) -> Option<serde_json::Value> {
            self.0.lock().expect("lock").clone()
        }
        fn set(&self, v: serde_json::Value) {
            *self.0.lock().expect("lock") = Some(v);
        }
    }

    fn collector(dir: &Path, state: Option<&Disk>) -> HwmonCollector {
        let psu = Regex::new(&format!("^(?:{DEFAULT_PSU_CHIPS})$")).expect("regex");
        let memory = match state {
            Some(d) => {
                let sink = d.clone();
                CollectorMemory::new(d.get(), Some(move |v| sink.set(v)))
            }
            None => CollectorMemory::none(),
        };
        HwmonCollector::new(Roots::under(dir), HwmonConfig::default(), psu).with_memory(memory)
    }

    fn group<'a>(c: &'a Collection, name: &str) -> &'a crate::GroupReading {
        c.groups
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name}: {:?}", c.groups))
    }

    #[test]
    fn a_fan_stopped_before_a_restart_is_still_a_member() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = Disk::default();
        tree(root.path(), ["1200", "1300", "1250"]);
        let c = collector(root.path(), Some(&state))
            .collect()
            .expect("collect");
        assert_eq!(group(&c, "fan:nct6775").members.len(), 3);
        // fan2 stops while the agent is down; a new agent starts with the same state dir.
        write(root.path(), "sys/class/hwmon/hwmon0/fan2_input", "0");
        let c = collector(root.path(), Some(&state))
            .collect()
            .expect("collect");
        let g = group(&c, "fan:nct6775");
        assert_eq!((g.members.len(), g.required, g.by_design), (3, 2, false));
        assert!(matches!(
            g.members
                .iter()
                .find(|m| m.name == "fan2")
                .map(|m| &m.health),
            Some(MemberHealth::Unhealthy(_))
        ));
        // Without a state dir the stopped fan is invisible after a restart (documented).
        let c = collector(root.path(), None).collect().expect("collect");
        assert_eq!(group(&c, "fan:nct6775").members.len(), 2);
    }

    #[test]
    fn a_two_fan_chip_restarted_with_one_stopped_is_not_single_by_design() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = Disk::default();
        tree(root.path(), ["1200", "1300", "0"]);
        collector(root.path(), Some(&state))
            .collect()
            .expect("collect");
        write(root.path(), "sys/class/hwmon/hwmon0/fan1_input", "0");
        let c = collector(root.path(), Some(&state))
            .collect()
            .expect("collect");
        let g = group(&c, "fan:nct6775");
        assert_eq!((g.members.len(), g.required, g.by_design), (2, 1, false));
    }

    #[test]
    fn an_unbound_psu_chip_keeps_the_group_redundant_by_design() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = Disk::default();
        tree(root.path(), ["1200", "1300", "1250"]);
        let mut live = collector(root.path(), Some(&state));
        let c = live.collect().expect("collect");
        assert_eq!(group(&c, "psu:pmbus").members.len(), 2);
        // The pulled PSU's chip unbinds: its hwmon directory is gone.
        std::fs::remove_dir_all(root.path().join("sys/class/hwmon/hwmon2")).expect("rm");
        for mut col in [live, collector(root.path(), Some(&state))] {
            let c = col.collect().expect("collect");
            let g = group(&c, "psu:pmbus");
            assert_eq!((g.members.len(), g.required, g.by_design), (1, 1, false));
        }
    }

    #[test]
    fn a_corrupt_memory_section_is_ignored_and_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = Disk::default();
        tree(root.path(), ["1200", "1300", "1250"]);
        state.set(serde_json::json!({"version": "not a memory"}));
        let c = collector(root.path(), Some(&state))
            .collect()
            .expect("corrupt state never takes the collector down");
        assert_eq!(group(&c, "fan:nct6775").members.len(), 3);
        let m: Memory =
            serde_json::from_value(state.get().expect("saved")).expect("saved memory parses");
        assert_eq!(m.max_members.get("fan:nct6775"), Some(&3));
        assert!(m.seen_spinning.contains("nct6775/fan2"));
    }

    proptest! {
        #[test]
        fn memory_parser_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_memory(&bytes);
        }
    }
}
