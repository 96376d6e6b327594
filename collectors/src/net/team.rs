//! Team devices (libteam/teamd): parses `teamdctl <dev> state dump` JSON.

use serde_json::Value;

use crate::{CollectError, GroupReading, MemberHealth, MemberReading, Role};

/// Builds the group `team:<dev>` from a teamd state dump.
pub fn parse_state_dump(dev: &str, json: &[u8]) -> Result<GroupReading, CollectError> {
    let what = || format!("teamdctl {dev} state dump");
    let v: Value =
        serde_json::from_slice(json).map_err(|e| CollectError::parse(what(), e.to_string()))?;
    let runner = v
        .pointer("/setup/runner_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let active_port = v.pointer("/runner/active_port").and_then(Value::as_str);
    let ports = v
        .get("ports")
        .and_then(Value::as_object)
        .ok_or_else(|| CollectError::parse(what(), "no \"ports\" object"))?;
    let mut g = GroupReading::new(format!("team:{dev}"), "team", 1);
    for (name, port) in ports {
        let link_up = port
            .pointer("/link_watches/up")
            .or_else(|| port.pointer("/link/up"))
            .and_then(Value::as_bool);
        let selected = port.pointer("/runner/selected").and_then(Value::as_bool);
        let health = match link_up {
            None => MemberHealth::Unknown("no link state in teamd dump".into()),
            Some(false) => MemberHealth::Unhealthy("link watch down".into()),
            Some(true) if runner == "lacp" && selected != Some(true) => {
                MemberHealth::Unhealthy("not selected by the LACP runner".into())
            }
            Some(true) => MemberHealth::Healthy,
        };
        let role = match runner {
            "activebackup" if active_port != Some(name.as_str()) => Role::Standby,
            "lacp" if selected != Some(true) => Role::Standby,
            _ => Role::Active,
        };
        g.members.push(MemberReading::new(name, role, health));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activebackup_dump() {
        let dump = br#"{"ports":{"eth1":{"link":{"up":true},"link_watches":{"up":true}},
            "eth2":{"link":{"up":false},"link_watches":{"up":false}}},
            "runner":{"active_port":"eth1"},"setup":{"runner_name":"activebackup"}}"#;
        let g = parse_state_dump("team0", dump).expect("parses");
        assert_eq!(g.name, "team:team0");
        assert_eq!(g.members[0].role, Role::Active);
        assert_eq!(g.members[1].role, Role::Standby);
        assert!(!g.members[1].health.counts_healthy());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_state_dump("t", b"{\"ports\": 3}").is_err());
        assert!(parse_state_dump("t", b"\xff\x00").is_err());
    }
}
