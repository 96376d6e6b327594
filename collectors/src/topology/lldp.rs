//! LLDP neighbours as lldpd reports them: `lldpcli -f json0 show neighbors details`.
//!
//! `json0` is lldpd's stable JSON shape: every value is a list, even when it holds one item,
//! so the structure does not change with the number of neighbours (plain `-f json` turns
//! one-element lists into objects keyed by name). Shape seen from lldpd 1.0.16 (Debian 12)
//! in network namespaces: `{"lldp": [{"interface": [{"name": "s0", "chassis": [{"id":
//! [{"type": "mac", "value": "…"}], "name": [{"value": "sw-a"}]}], "port": [{"id": [...],
//! "descr": [...]}]}]}]}`; with no neighbour at all: `{"lldp": [{}]}`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The neighbour seen on one local interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Chassis ID subtype as lldpd names it (`mac`, `local`, `ifname`, `ip`).
    pub chassis_type: String,
    /// Chassis ID: one per switch (MLAG peers keep their own; the shared system MAC is an
    /// LACP thing, not an LLDP one).
    pub chassis_id: String,
    /// System name, when the switch sends it.
    pub system_name: Option<String>,
    pub port_id: Option<String>,
}

impl Neighbour {
    /// The `switch` domain id: the chassis ID, which survives a renamed switch.
    pub fn switch_id(&self) -> String {
        self.chassis_id.clone()
    }
}

#[derive(Deserialize)]
struct Top {
    lldp: Vec<Section>,
}

#[derive(Deserialize, Default)]
struct Section {
    #[serde(default)]
    interface: Vec<Interface>,
}

#[derive(Deserialize)]
struct Interface {
    name: String,
    #[serde(default)]
    chassis: Vec<Chassis>,
    #[serde(default)]
    port: Vec<Port>,
}

#[derive(Deserialize)]
struct Chassis {
    #[serde(default)]
    id: Vec<Typed>,
    #[serde(default)]
    name: Vec<Value>,
}

#[derive(Deserialize)]
struct Port {
    #[serde(default)]
    id: Vec<Typed>,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(default, rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Value {
    value: String,
}

/// Neighbours per local interface name.
pub type Neighbours = BTreeMap<String, Vec<Neighbour>>;

/// Local interface → neighbours seen on it (one per interface normally; a hub or a
/// misbehaving bond can show more, so all are kept). An interface entry without a chassis
/// ID is skipped (it tells nothing about the switch); malformed JSON is an error.
pub fn parse_neighbours(json: &str) -> Result<Neighbours, String> {
    let top: Top = serde_json::from_str(json).map_err(|e| format!("lldpcli json0: {e}"))?;
    let mut out = Neighbours::new();
    for section in top.lldp {
        for iface in section.interface {
            for ch in &iface.chassis {
                let Some(id) = ch.id.first().filter(|i| !i.value.is_empty()) else {
                    continue;
                };
                let n = Neighbour {
                    chassis_type: id.kind.clone(),
                    chassis_id: id.value.clone(),
                    system_name: ch.name.first().map(|v| v.value.clone()),
                    port_id: iface
                        .port
                        .first()
                        .and_then(|p| p.id.first())
                        .map(|i| i.value.clone()),
                };
                let list = out.entry(iface.name.clone()).or_default();
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Captured from lldpd 1.0.16 (Debian 12): two veths of one "server" namespace to two
    /// ports of one lldpd acting as switch `sw-a` (trimmed: descr, mgmt and capabilities).
    const ONE_CHASSIS: &str = r#"{
  "lldp": [
    {
      "interface": [
        {
          "name": "s0", "via": "LLDP", "rid": "1", "age": "0 day, 00:00:03",
          "chassis": [{"id": [{"type": "mac", "value": "be:e8:f8:99:f4:58"}],
                       "name": [{"value": "sw-a"}],
                       "capability": [{"type": "Bridge", "enabled": false}]}],
          "port": [{"id": [{"type": "mac", "value": "be:e8:f8:99:f4:58"}],
                    "descr": [{"value": "p0"}], "ttl": [{"value": "120"}]}]
        },
        {
          "name": "s1", "via": "LLDP", "rid": "1", "age": "0 day, 00:00:03",
          "chassis": [{"id": [{"type": "mac", "value": "be:e8:f8:99:f4:58"}],
                       "name": [{"value": "sw-a"}]}],
          "port": [{"id": [{"type": "mac", "value": "de:dc:28:b7:5b:7a"}],
                    "descr": [{"value": "p1"}]}]
        }
      ]
    }
  ]
}"#;

    #[test]
    fn two_ports_of_one_switch() {
        let n = parse_neighbours(ONE_CHASSIS).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n["s0"][0].chassis_id, "be:e8:f8:99:f4:58");
        assert_eq!(n["s1"][0].chassis_id, "be:e8:f8:99:f4:58");
        assert_eq!(n["s0"][0].system_name.as_deref(), Some("sw-a"));
        assert_eq!(n["s1"][0].port_id.as_deref(), Some("de:dc:28:b7:5b:7a"));
    }

    #[test]
    fn no_neighbour_is_an_empty_map() {
        // lldpd with nothing received prints exactly this.
        let n = parse_neighbours("{\n  \"lldp\": [\n    {\n      \n    }\n  ]\n}\n").unwrap();
        assert!(n.is_empty());
    }

    #[test]
    fn a_neighbour_without_chassis_id_is_skipped_and_bad_json_is_an_error() {
        let n =
            parse_neighbours(r#"{"lldp":[{"interface":[{"name":"e0","chassis":[{"id":[]}]}]}]}"#)
                .unwrap();
        assert!(n.is_empty());
        assert!(parse_neighbours("{\"lldp\": {}}").is_err());
        assert!(parse_neighbours("").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse_neighbours(&s);
        }
    }
}
