//! The NUT network protocol (upsd, `docs/net-protocol.txt` of Network UPS Tools) and the
//! meaning of `ups.status`: pure functions on the text upsd sends, so they can be fuzzed.
//!
//! A reply line is words separated by spaces; a word may be a double-quoted string in
//! which `\"` and `\\` are escapes. Lists come as `BEGIN LIST …`, one line per item, then
//! `END LIST …`; a failed command answers one line `ERR <CODE> [detail]`.

use std::collections::BTreeMap;

/// Why a reply could not be used. `Err` is upsd saying no (a UPS whose driver is gone,
/// wrong password): the connection is fine. `Malformed` is a reply outside the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    Err(String),
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Err(code) => write!(f, "upsd answered ERR {code}"),
            ReplyError::Malformed(d) => write!(f, "malformed reply from upsd: {d}"),
        }
    }
}

/// Splits one reply line into words, undoing the quoting.
pub fn split_words(line: &str) -> Result<Vec<String>, ReplyError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') || chars.peek() == Some(&'\t') {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => w.push(e),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => w.push(c),
                }
            }
            if !closed {
                return Err(ReplyError::Malformed(format!(
                    "unterminated quote in {line:?}"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' || c == '\t' {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        words.push(w);
    }
    Ok(words)
}

/// An `ERR` line, if this is one.
fn err_line(line: &str) -> Option<ReplyError> {
    let rest = line.strip_prefix("ERR")?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let code = rest.split_whitespace().next().unwrap_or("UNKNOWN");
    Some(ReplyError::Err(code.to_string()))
}

/// The item lines of a list reply (`BEGIN LIST <what>` … `END LIST <what>`), `what` being
/// e.g. `UPS` or `VAR myups`. `text` holds the whole reply, ending at `END LIST`.
pub fn list_items<'a>(text: &'a str, what: &str) -> Result<Vec<&'a str>, ReplyError> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let first = lines
        .next()
        .ok_or_else(|| ReplyError::Malformed("empty reply".into()))?;
    if let Some(e) = err_line(first) {
        return Err(e);
    }
    let begin = format!("BEGIN LIST {what}");
    if first != begin {
        return Err(ReplyError::Malformed(format!(
            "expected {begin:?}, got {:?}",
            truncate(first)
        )));
    }
    let end = format!("END LIST {what}");
    let mut items = Vec::new();
    for l in lines {
        if l == end {
            return Ok(items);
        }
        items.push(l);
    }
    Err(ReplyError::Malformed(format!("no {end:?} line")))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// One UPS of `LIST UPS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsEntry {
    pub name: String,
    pub description: String,
}

/// Parses the reply to `LIST UPS`.
pub fn parse_list_ups(text: &str) -> Result<Vec<UpsEntry>, ReplyError> {
    let mut out = Vec::new();
    for item in list_items(text, "UPS")? {
        let w = split_words(item)?;
        match w.as_slice() {
            [kw, name, rest @ ..] if kw == "UPS" && valid_ups_name(name) => out.push(UpsEntry {
                name: name.clone(),
                description: rest.first().cloned().unwrap_or_default(),
            }),
            _ => {
                return Err(ReplyError::Malformed(format!(
                    "not a UPS line: {:?}",
                    truncate(item)
                )))
            }
        }
    }
    Ok(out)
}

/// UPS names as upsd allows them in ups.conf (no spaces, no quotes, printable ASCII).
pub fn valid_ups_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '@'))
}

/// Parses the reply to `LIST VAR <ups>` into variable → value.
pub fn parse_list_var(text: &str, ups: &str) -> Result<BTreeMap<String, String>, ReplyError> {
    let mut out = BTreeMap::new();
    for item in list_items(text, &format!("VAR {ups}"))? {
        let w = split_words(item)?;
        match w.as_slice() {
            [kw, u, var, value] if kw == "VAR" && u == ups => {
                out.insert(var.clone(), value.clone());
            }
            _ => {
                return Err(ReplyError::Malformed(format!(
                    "not a VAR line of {ups}: {:?}",
                    truncate(item)
                )))
            }
        }
    }
    Ok(out)
}

/// Parses a one-line reply that must be `OK` (to `USERNAME`, `PASSWORD`).
pub fn parse_ok(line: &str) -> Result<(), ReplyError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(e) = err_line(line) {
        return Err(e);
    }
    if line == "OK" || line.starts_with("OK ") {
        Ok(())
    } else {
        Err(ReplyError::Malformed(format!(
            "expected OK, got {:?}",
            truncate(line)
        )))
    }
}

/// The flags of `ups.status` that decide the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
    pub on_battery: bool,
    pub low_battery: bool,
    pub replace_battery: bool,
    pub bypass: bool,
    pub overload: bool,
    pub off: bool,
    pub forced_shutdown: bool,
    /// Every flag as upsd sent it, in order (exported one-hot-free, as `_status_flag`).
    pub flags: Vec<String>,
}

/// Parses `ups.status` ("OL", "OB LB", "OL CHRG RB", "ALARM OL"…). Unknown flags are kept
/// in `flags` and otherwise ignored; an empty status is an error.
pub fn parse_status(s: &str) -> Result<Status, String> {
    let mut st = Status::default();
    for f in s.split_whitespace() {
        match f {
            "OL" => st.online = true,
            "OB" => st.on_battery = true,
            "LB" => st.low_battery = true,
            "RB" => st.replace_battery = true,
            "BYPASS" => st.bypass = true,
            "OVER" => st.overload = true,
            "OFF" => st.off = true,
            "FSD" => st.forced_shutdown = true,
            _ => {}
        }
        if f.len() <= 32 && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            st.flags.push(f.to_string());
        }
    }
    if st.flags.is_empty() {
        return Err(format!("ups.status {:?} has no flag", truncate(s)));
    }
    if !st.online && !st.on_battery && !st.off && !st.bypass {
        return Err(format!(
            "ups.status {:?} says neither OL, OB, BYPASS nor OFF",
            truncate(s)
        ));
    }
    Ok(st)
}

/// Battery limits below which the battery member is unhealthy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// `battery.charge` in percent.
    pub min_charge_percent: Option<f64>,
    /// `battery.runtime` in seconds.
    pub min_runtime_seconds: Option<f64>,
}

/// Health of the two members, `utility` and `battery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub utility: crate::MemberHealth,
    pub battery: crate::MemberHealth,
}

/// A number of a NUT variable ("100", "93.0"); `None` when absent or not a finite number.
pub fn number(vars: &BTreeMap<String, String>, name: &str) -> Option<f64> {
    vars.get(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Decides the members from `ups.status` and the battery readings (docs/collectors/ups.md):
/// on line with a good battery both are healthy; `OB` → utility lost; `OB LB` → both lost
/// (shutdown imminent); `RB`, charge/runtime below a limit, `BYPASS` → battery unhealthy;
/// `OVER` → battery at risk (it could not carry the load); `OFF`/`FSD` → both lost.
pub fn verdict(status: &Status, vars: &BTreeMap<String, String>, limits: &Limits) -> Verdict {
    use crate::MemberHealth::{AtRisk, Healthy, Unhealthy};
    let utility = if status.off {
        Unhealthy("UPS output off (OFF)".into())
    } else if status.forced_shutdown {
        Unhealthy("forced shutdown in progress (FSD)".into())
    } else if status.on_battery {
        Unhealthy("on battery: utility power lost (OB)".into())
    } else {
        Healthy
    };
    let charge = number(vars, "battery.charge");
    let runtime = number(vars, "battery.runtime");
    let battery = if status.off {
        Unhealthy("UPS output off (OFF)".into())
    } else if status.forced_shutdown {
        Unhealthy("forced shutdown in progress (FSD)".into())
    } else if status.low_battery {
        Unhealthy("low battery (LB): shutdown imminent".into())
    } else if status.replace_battery {
        Unhealthy("replace battery (RB)".into())
    } else if status.bypass {
        Unhealthy("on bypass (BYPASS): the battery cannot take over".into())
    } else if let Some((c, min)) = charge.zip(limits.min_charge_percent).filter(|(c, m)| c < m) {
        Unhealthy(format!("battery charge {c}% below the minimum {min}%"))
    } else if let Some((r, min)) = runtime
        .zip(limits.min_runtime_seconds)
        .filter(|(r, m)| r < m)
    {
        Unhealthy(format!("battery runtime {r} s below the minimum {min} s"))
    } else if status.overload {
        AtRisk("overload (OVER): the battery may not carry the load".into())
    } else {
        Healthy
    };
    Verdict { utility, battery }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemberHealth;

    // Reply shapes as upsd 2.8 sends them (nut-server, Debian 12), seen with `telnet` and in
    // the protocol document.
    const LIST_UPS: &str =
        "BEGIN LIST UPS\nUPS ups-a \"Rack A \\\"left\\\"\"\nUPS ups-b \"\"\nEND LIST UPS\n";
    const LIST_VAR: &str = "BEGIN LIST VAR ups-a\nVAR ups-a battery.charge \"100\"\nVAR ups-a battery.runtime \"1800\"\nVAR ups-a ups.status \"OL CHRG\"\nEND LIST VAR ups-a\n";

    #[test]
    fn list_ups_with_quoted_descriptions() {
        let l = parse_list_ups(LIST_UPS).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "ups-a");
        assert_eq!(l[0].description, "Rack A \"left\"");
        assert_eq!(l[1].description, "");
    }

    #[test]
    fn list_var_and_status() {
        let v = parse_list_var(LIST_VAR, "ups-a").unwrap();
        assert_eq!(v["ups.status"], "OL CHRG");
        assert_eq!(number(&v, "battery.runtime"), Some(1800.0));
        let s = parse_status(&v["ups.status"]).unwrap();
        assert!(s.online && !s.on_battery);
        assert_eq!(s.flags, ["OL", "CHRG"]);
    }

    #[test]
    fn err_replies_are_errors_not_malformed() {
        assert_eq!(
            parse_list_var("ERR DRIVER-NOT-CONNECTED\n", "ups-a"),
            Err(ReplyError::Err("DRIVER-NOT-CONNECTED".into()))
        );
        assert_eq!(
            parse_ok("ERR ACCESS-DENIED\n"),
            Err(ReplyError::Err("ACCESS-DENIED".into()))
        );
        assert!(parse_ok("OK\n").is_ok());
    }

    #[test]
    fn malformed_replies_are_clear_errors() {
        for bad in [
            "",
            "HELLO\n",
            "BEGIN LIST UPS\nUPS\n",
            "BEGIN LIST UPS\nUPS x \"unterminated\nEND LIST UPS\n",
            "BEGIN LIST UPS\nVAR x y z\nEND LIST UPS\n",
        ] {
            assert!(
                matches!(parse_list_ups(bad), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(parse_list_var("BEGIN LIST VAR ups-b\nEND LIST VAR ups-b\n", "ups-a").is_err());
    }

    fn v(status: &str, charge: &str, runtime: &str) -> Verdict {
        let mut vars = BTreeMap::new();
        vars.insert("battery.charge".to_string(), charge.to_string());
        vars.insert("battery.runtime".to_string(), runtime.to_string());
        verdict(
            &parse_status(status).unwrap(),
            &vars,
            &Limits {
                min_charge_percent: Some(50.0),
                min_runtime_seconds: Some(300.0),
            },
        )
    }

    #[test]
    fn status_table() {
        let ok = v("OL CHRG", "100", "1800");
        assert_eq!(
            (ok.utility, ok.battery),
            (MemberHealth::Healthy, MemberHealth::Healthy)
        );
        let ob = v("OB DISCHRG", "90", "1500");
        assert!(!ob.utility.counts_healthy() && ob.battery.counts_healthy());
        let lb = v("OB LB", "9", "100");
        assert!(!lb.utility.counts_healthy() && !lb.battery.counts_healthy());
        let rb = v("OL RB", "100", "1800");
        assert!(rb.utility.counts_healthy() && !rb.battery.counts_healthy());
        let by = v("BYPASS", "100", "1800");
        assert!(!by.battery.counts_healthy());
        let over = v("OL OVER", "100", "1800");
        assert!(matches!(over.battery, MemberHealth::AtRisk(_)));
        let low_charge = v("OL CHRG", "40", "1800");
        assert!(!low_charge.battery.counts_healthy());
        let short = v("OL", "100", "120");
        assert!(!short.battery.counts_healthy());
        assert!(v("OFF", "100", "1800").utility != MemberHealth::Healthy);
    }

    #[test]
    fn status_without_power_source_is_an_error() {
        assert!(parse_status("").is_err());
        assert!(parse_status("CHRG").is_err());
        assert!(parse_status("WAIT").is_err());
    }
}
