//! The `hwmon` collector: fans and PMBus power supplies the kernel's hwmon drivers see, and
//! mains supplies from `/sys/class/power_supply`.
//!
//! Reads `/sys/class/hwmon/hwmon*/` (under `--path.sysfs`). Groups: `fan:<chip>` per chip
//! with fans, `psu:pmbus` for all PMBus power-supply chips, `psu:power_supply` for
//! `power_supply` devices of type `Mains`. Uevents of the `hwmon` and `power_supply`
//! subsystems wake it; sensor values themselves raise no events, so it also polls.

pub mod chip;

use std::collections::BTreeSet;
use std::path::Path;

use clap::Arg;
use regex::Regex;
use serde::Deserialize;

use crate::roots::{list_dir, read_attr, Attr};
use crate::{
    BuildContext, BuildError, CollectError, Collection, Collector, MemberReading, Reading, Role,
    Roots, Wake,
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
}

pub fn args() -> Vec<Arg> {
    vec![Arg::new("collector.hwmon.psu-chips")
        .long("collector.hwmon.psu-chips")
        .value_name("REGEX")
        .help("hwmon chip names (whole-name regex) that are PMBus power supplies, grouped as psu:pmbus [default: built-in list of PSU drivers]")]
}

pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Collector>, BuildError> {
    let config: HwmonConfig = crate::parse_config("hwmon", ctx.config)?;
    let flag = ctx
        .matches
        .try_get_one::<String>("collector.hwmon.psu-chips")
        .ok()
        .flatten()
        .cloned();
    let pattern = flag
        .or_else(|| config.psu_chips.clone())
        .unwrap_or_else(|| DEFAULT_PSU_CHIPS.to_string());
    let psu = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| BuildError::Config {
        collector: "hwmon",
        detail: format!("psu_chips: {e}"),
    })?;
    Ok(Box::new(HwmonCollector::new(
        ctx.roots.clone(),
        config,
        psu,
    )))
}

pub struct HwmonCollector {
    roots: Roots,
    config: HwmonConfig,
    psu_chips: Regex,
    /// Fans (`<chip>/<sensor>`) that have reported a non-zero speed since the agent started:
    /// one of those reading 0 rpm has stopped; a header never seen spinning is empty.
    seen_spinning: BTreeSet<String>,
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
            seen_spinning: BTreeSet::new(),
        }
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

        let mut c = Collection::present();
        let mut psus = Vec::new();
        for i in order {
            let (chip, id) = (&chips[i], &ids[i]);
            let fans = chip.fans();
            for f in &fans {
                if f.input.is_some_and(|v| v > 0.0) {
                    self.seen_spinning.insert(format!("{id}/{}", f.sensor));
                }
            }
            chip::fan_readings(id, &fans, &mut c.readings);
            if self.psu_chips.is_match(&chip.name) {
                chip::psu_readings(id, chip, &mut c.readings);
                psus.push(MemberReading::new(
                    id.clone(),
                    Role::Active,
                    chip::psu_health(chip),
                ));
                continue;
            }
            let members =
                chip::fan_members(id, &fans, &self.seen_spinning, &self.config.ignore_fans);
            if !members.is_empty() {
                c.groups.push(chip::fan_group(id, members));
            }
        }
        if !psus.is_empty() {
            c.groups.push(chip::psu_group("pmbus", psus));
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
            c.groups.push(chip::psu_group("power_supply", members));
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
