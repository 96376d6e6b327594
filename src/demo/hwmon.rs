//! The demo server's fans and power supplies as the hwmon drivers show them: a Super-I/O
//! chip `nct6775` with three fans and two PMBus power supplies on I2C bus 7.

use std::io;

use crate::fixture::SysTree;

const FANS: &str = "sys/class/hwmon/hwmon0";
const PSUS: [(&str, &str); 2] = [("hwmon1", "7-0058"), ("hwmon2", "7-0059")];

/// Writes the chips, everything healthy.
pub fn build(t: &SysTree) -> io::Result<()> {
    t.set(&format!("{FANS}/name"), "nct6775")?;
    for (n, label) in [(1, "CPU_FAN"), (2, "SYS_FAN1"), (3, "SYS_FAN2")] {
        t.set(&format!("{FANS}/fan{n}_label"), label)?;
        t.set(&format!("{FANS}/fan{n}_min"), "300")?;
    }
    fan(t, true)?;
    for (hwmon, addr) in PSUS {
        let dir = t.root().join("sys/class/hwmon").join(hwmon);
        let dev = t.root().join("sys/devices/i2c-7").join(addr);
        std::fs::create_dir_all(&dev)?;
        std::fs::create_dir_all(&dir)?;
        let link = dir.join("device");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dev, &link)?;
        t.set(&format!("sys/class/hwmon/{hwmon}/name"), "pmbus")?;
        t.set(&format!("sys/class/hwmon/{hwmon}/in1_label"), "vin")?;
        t.set(&format!("sys/class/hwmon/{hwmon}/in2_label"), "vout1")?;
        t.set(&format!("sys/class/hwmon/{hwmon}/power1_label"), "pin")?;
    }
    psu(t, true)
}

/// SYS_FAN1 spinning, or stopped with its alarm raised.
pub fn fan(t: &SysTree, spinning: bool) -> io::Result<()> {
    for (n, rpm) in [(1, 1450), (2, if spinning { 1100 } else { 0 }), (3, 1080)] {
        t.set(&format!("{FANS}/fan{n}_input"), &rpm.to_string())?;
        t.set(
            &format!("{FANS}/fan{n}_alarm"),
            if rpm == 0 { "1" } else { "0" },
        )?;
    }
    Ok(())
}

/// The second PSU (7-0059) with or without AC input.
pub fn psu(t: &SysTree, second_has_ac: bool) -> io::Result<()> {
    for (i, (hwmon, _)) in PSUS.iter().enumerate() {
        let ac = i == 0 || second_has_ac;
        let d = format!("sys/class/hwmon/{hwmon}");
        t.set(&format!("{d}/in1_input"), if ac { "230250" } else { "0" })?;
        t.set(&format!("{d}/in1_lcrit_alarm"), if ac { "0" } else { "1" })?;
        t.set(&format!("{d}/in2_input"), if ac { "12050" } else { "0" })?;
        let watts = if !ac {
            0
        } else if second_has_ac {
            142
        } else {
            285
        };
        t.set(
            &format!("{d}/power1_input"),
            &(watts * 1_000_000).to_string(),
        )?;
    }
    Ok(())
}
