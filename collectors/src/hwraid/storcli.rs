//! Parsers for storcli/perccli JSON (`/call show all J`, `/call/eall/sall show rebuild J`).
//! Pure functions of bytes; every field is optional, a missing one is never a panic.

use serde_json::Value;

use crate::CollectError;

/// One controller from `/call show all J`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Controller {
    /// storcli's controller index (`/c0` → 0).
    pub index: u32,
    pub model: Option<String>,
    /// `Status` → `Controller Status` (`Optimal`, `Needs Attention`).
    pub status: Option<String>,
    /// PCI address `dddd:bb:dd.f`, to find the controller's SCSI host in sysfs.
    pub pci_address: Option<String>,
    pub vds: Vec<VirtualDrive>,
    pub topology: Vec<TopologyRow>,
    pub pds: Vec<PhysicalDrive>,
}

/// A row of `VD LIST`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualDrive {
    pub dg: u32,
    pub vd: u32,
    /// `RAID1`, `RAID5`, `RAID10`…
    pub raid: String,
    /// `Optl`, `Dgrd`, `Pdgd`, `OfLn`…
    pub state: String,
    pub name: String,
}

/// A row of `TOPOLOGY`: a drive group, a span (`Arr`), or a drive (`Type` = `DRIVE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyRow {
    pub dg: u32,
    /// Span index; `None` for the drive-group row.
    pub arr: Option<u32>,
    /// Position in the span; `None` for group and span rows.
    pub row: Option<u32>,
    /// `252:0`; `None` for a missing drive.
    pub eid_slot: Option<String>,
    pub did: Option<u32>,
    /// `DRIVE`, `DHS`, or the RAID level for group/span rows.
    pub kind: String,
    /// `Onln`, `Rbld`, `Offln`, `Msng`, `DHS`…
    pub state: String,
}

/// A row of `PD LIST`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysicalDrive {
    pub eid_slot: String,
    pub did: Option<u32>,
    /// `Onln`, `Rbld`, `UGood`, `UBad`, `GHS`, `DHS`, `Offln`, `JBOD`…
    pub state: String,
    /// Drive group; `None` for `-` (unconfigured, global spares).
    pub dg: Option<u32>,
    pub model: String,
    pub medium: String,
}

fn num(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn opt_text(v: Option<&Value>) -> Option<String> {
    Some(text(v)).filter(|s| !s.is_empty() && s != "-")
}

fn rows(data: &Value, key: &str) -> Vec<Value> {
    data.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `dddd:bb:dd.f` from the `Bus` section (decimal numbers), or from `Basics` →
/// `PCI Address` (`00:02:00:00`, hex: domain, bus, device, function).
fn pci_address(data: &Value) -> Option<String> {
    if let Some(bus) = data.get("Bus") {
        let b = num(bus.get("Bus Number"));
        let d = num(bus.get("Device Number"));
        let f = num(bus.get("Function Number"));
        if let (Some(b), Some(d), Some(f)) = (b, d, f) {
            let dom = num(bus.get("Domain ID")).unwrap_or(0);
            return Some(format!("{dom:04x}:{b:02x}:{d:02x}.{f:x}"));
        }
    }
    let s = data.pointer("/Basics/PCI Address")?.as_str()?;
    let p: Vec<u32> = s
        .split(':')
        .map(|x| u32::from_str_radix(x.trim(), 16).ok())
        .collect::<Option<_>>()?;
    match p.as_slice() {
        [dom, b, d, f] => Some(format!("{dom:04x}:{b:02x}:{d:02x}.{f:x}")),
        _ => None,
    }
}

/// The `Controllers` list every storcli JSON answer has.
fn controllers(bytes: &[u8], what: &str) -> Result<Vec<Value>, CollectError> {
    let mut v: Value =
        serde_json::from_slice(bytes).map_err(|e| CollectError::parse(what, e.to_string()))?;
    match v.get_mut("Controllers").map(Value::take) {
        Some(Value::Array(list)) => Ok(list),
        _ => Err(CollectError::parse(what, "no \"Controllers\" list")),
    }
}

/// What `/call show all J` said.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShowAll {
    pub controllers: Vec<Controller>,
}

fn command_status(c: &Value) -> (bool, String) {
    let st = c.get("Command Status");
    let ok = st
        .and_then(|s| s.get("Status"))
        .and_then(Value::as_str)
        .is_none_or(|s| s.eq_ignore_ascii_case("success"));
    let desc = st
        .and_then(|s| s.get("Description").or_else(|| s.get("Detailed Status")))
        .map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    (ok, desc)
}

/// Parses `/call show all J`. A failed command status naming no controller means there is
/// none (`Ok` with no controllers); any other failure is an error.
pub fn parse_show_all(bytes: &[u8]) -> Result<ShowAll, CollectError> {
    let what = "storcli /call show all J";
    let list = controllers(bytes, what)?;
    let mut out = ShowAll::default();
    for c in &list {
        let (ok, desc) = command_status(c);
        if !ok {
            let d = desc.to_ascii_lowercase();
            if d.contains("no controller") || d.contains("not found") {
                continue;
            }
            return Err(CollectError::parse(what, format!("command failed: {desc}")));
        }
        let Some(data) = c.get("Response Data").filter(|d| d.is_object()) else {
            continue;
        };
        let Some(index) = num(data.pointer("/Basics/Controller"))
            .or_else(|| num(c.pointer("/Command Status/Controller")))
        else {
            // "Number of Controllers = 0" style answers carry no controller.
            continue;
        };
        let mut ctrl = Controller {
            index,
            model: opt_text(data.pointer("/Basics/Model"))
                .or_else(|| opt_text(data.pointer("/Basics/Product Name"))),
            status: opt_text(data.pointer("/Status/Controller Status")),
            pci_address: pci_address(data),
            ..Controller::default()
        };
        for r in rows(data, "VD LIST") {
            let dgvd = text(r.get("DG/VD"));
            let Some((dg, vd)) = dgvd.split_once('/') else {
                continue;
            };
            let (Ok(dg), Ok(vd)) = (dg.trim().parse(), vd.trim().parse()) else {
                continue;
            };
            ctrl.vds.push(VirtualDrive {
                dg,
                vd,
                raid: text(r.get("TYPE")),
                state: text(r.get("State")),
                name: text(r.get("Name")),
            });
        }
        for r in rows(data, "TOPOLOGY") {
            let Some(dg) = num(r.get("DG")) else { continue };
            ctrl.topology.push(TopologyRow {
                dg,
                arr: num(r.get("Arr")),
                row: num(r.get("Row")),
                eid_slot: opt_text(r.get("EID:Slot")),
                did: num(r.get("DID")),
                kind: text(r.get("Type")),
                state: text(r.get("State")),
            });
        }
        for r in rows(data, "PD LIST") {
            ctrl.pds.push(PhysicalDrive {
                eid_slot: text(r.get("EID:Slt")),
                did: num(r.get("DID")),
                state: text(r.get("State")),
                dg: num(r.get("DG")),
                model: text(r.get("Model")),
                medium: text(r.get("Med")),
            });
        }
        out.controllers.push(ctrl);
    }
    Ok(out)
}

/// Rebuild progress from `/call/eall/sall show rebuild J`: (controller, `252:1`, percent).
pub fn parse_rebuild(bytes: &[u8]) -> Result<Vec<(u32, String, f64)>, CollectError> {
    let what = "storcli /call/eall/sall show rebuild J";
    let list = controllers(bytes, what)?;
    let mut out = Vec::new();
    for c in &list {
        for r in c
            .get("Response Data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // "Drive-ID": "/c0/e252/s1"
            let id = text(r.get("Drive-ID"));
            let mut parts = id.trim_start_matches('/').split('/');
            let (Some(c), Some(e), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Some(c), Some(e), Some(s)) = (
                c.strip_prefix('c').and_then(|x| x.parse::<u32>().ok()),
                e.strip_prefix('e'),
                s.strip_prefix('s'),
            ) else {
                continue;
            };
            let pct = match r.get("Progress%") {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            if let Some(p) = pct.filter(|p| p.is_finite() && (0.0..=100.0).contains(p)) {
                out.push((c, format!("{e}:{s}"), p));
            }
        }
    }
    Ok(out)
}

/// Health counters of one physical drive from `/call/eall/sall show all J`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriveDetail {
    pub controller: u32,
    /// `252:0`, as in `EID:Slot`.
    pub drive: String,
    pub predictive_failures: Option<u64>,
    /// "S.M.A.R.T alert flagged by drive".
    pub smart_alert: Option<bool>,
    pub media_errors: Option<u64>,
    pub other_errors: Option<u64>,
}

fn count(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `/c0/e252/s3` → (0, `252:3`); `/c0/s3` (no enclosure) → (0, `:3`).
fn drive_path(path: &str) -> Option<(u32, String)> {
    let mut parts = path.trim().trim_start_matches('/').split('/');
    let c = parts.next()?.strip_prefix('c')?.parse().ok()?;
    let (e, s) = match (parts.next()?, parts.next()) {
        (e, Some(s)) => (e.strip_prefix('e')?, s.strip_prefix('s')?),
        (s, None) => ("", s.strip_prefix('s')?),
    };
    Some((c, format!("{e}:{s}")))
}

/// Parses `/call/eall/sall show all J`: the `Drive /cX/eY/sZ State` block of every drive.
pub fn parse_drive_details(bytes: &[u8]) -> Result<Vec<DriveDetail>, CollectError> {
    let what = "storcli /call/eall/sall show all J";
    let list = controllers(bytes, what)?;
    let mut out = Vec::new();
    for c in &list {
        let Some(data) = c.get("Response Data").and_then(Value::as_object) else {
            continue;
        };
        for (key, detail) in data {
            let Some(path) = key
                .strip_prefix("Drive ")
                .and_then(|k| k.strip_suffix(" - Detailed Information"))
            else {
                continue;
            };
            let Some((controller, drive)) = drive_path(path) else {
                continue;
            };
            let Some(state) = detail.get(format!("Drive {path} State")) else {
                continue;
            };
            out.push(DriveDetail {
                controller,
                drive,
                predictive_failures: count(state.get("Predictive Failure Count")),
                smart_alert: state
                    .get("S.M.A.R.T alert flagged by drive")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().eq_ignore_ascii_case("yes")),
                media_errors: count(state.get("Media Error Count")),
                other_errors: count(state.get("Other Error Count")),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHOW_ALL: &[u8] = br#"{"Controllers":[{"Command Status":{"Controller":0,"Status":"Success","Description":"None"},
      "Response Data":{"Basics":{"Controller":0,"Model":"PERC H730P Mini","PCI Address":"00:18:00:00"},
        "Bus":{"Bus Number":24,"Device Number":0,"Function Number":0,"Domain ID":0},
        "Status":{"Controller Status":"Optimal"},
        "TOPOLOGY":[
          {"DG":0,"Arr":"-","Row":"-","EID:Slot":"-","DID":"-","Type":"RAID1","State":"Dgrd"},
          {"DG":0,"Arr":0,"Row":"-","EID:Slot":"-","DID":"-","Type":"RAID1","State":"Dgrd"},
          {"DG":0,"Arr":0,"Row":0,"EID:Slot":"32:0","DID":0,"Type":"DRIVE","State":"Onln"},
          {"DG":0,"Arr":0,"Row":1,"EID:Slot":"-","DID":"-","Type":"DRIVE","State":"Msng"}],
        "VD LIST":[{"DG/VD":"0/0","TYPE":"RAID1","State":"Dgrd","Name":"os"}],
        "PD LIST":[{"EID:Slt":"32:0","DID":0,"State":"Onln","DG":0,"Model":"ST300","Med":"HDD"},
                   {"EID:Slt":"32:4","DID":4,"State":"GHS","DG":"-","Model":"ST300","Med":"HDD"}]}}]}"#;

    #[test]
    fn parses_controllers_vds_topology_pds() {
        let s = parse_show_all(SHOW_ALL).expect("parses");
        let c = &s.controllers[0];
        assert_eq!(c.index, 0);
        assert_eq!(c.model.as_deref(), Some("PERC H730P Mini"));
        assert_eq!(c.pci_address.as_deref(), Some("0000:18:00.0"));
        assert_eq!(c.vds[0].raid, "RAID1");
        assert_eq!(c.vds[0].state, "Dgrd");
        assert_eq!(c.topology.len(), 4);
        assert_eq!(c.topology[3].state, "Msng");
        assert_eq!(c.topology[3].did, None);
        assert_eq!(c.topology[2].eid_slot.as_deref(), Some("32:0"));
        assert_eq!(c.pds[1].dg, None);
        assert_eq!(c.pds[1].state, "GHS");
    }

    #[test]
    fn pci_address_from_basics_when_no_bus_section() {
        let v: Value =
            serde_json::from_str(r#"{"Basics":{"PCI Address":"00:3b:00:00"}}"#).expect("json");
        assert_eq!(pci_address(&v).as_deref(), Some("0000:3b:00.0"));
    }

    #[test]
    fn no_controller_is_empty_and_other_failures_are_errors() {
        let none = br#"{"Controllers":[{"Command Status":{"Status":"Failure","Description":"Controller 0 not found"}}]}"#;
        assert_eq!(parse_show_all(none).expect("ok").controllers.len(), 0);
        let bad = br#"{"Controllers":[{"Command Status":{"Status":"Failure","Description":"Un-supported command"}}]}"#;
        assert!(parse_show_all(bad).is_err());
        assert!(parse_show_all(b"{}").is_err());
        assert!(parse_show_all(b"{\"Controllers\":[").is_err());
    }

    #[test]
    fn rebuild_progress() {
        let j = br#"{"Controllers":[{"Command Status":{"Controller":0,"Status":"Success"},
          "Response Data":[{"Drive-ID":"/c0/e32/s0","Progress%":"-","Status":"Not in progress"},
                           {"Drive-ID":"/c0/e32/s1","Progress%":37,"Status":"In progress","Estimated Time Left":"41 Minutes"}]}]}"#;
        assert_eq!(
            parse_rebuild(j).expect("parses"),
            vec![(0, "32:1".to_string(), 37.0)]
        );
    }

    #[test]
    fn drive_details() {
        let j = br#"{"Controllers":[{"Command Status":{"Controller":0,"Status":"Success"},"Response Data":{
          "Drive /c0/e32/s3":[{"EID:Slt":"32:3","DID":3,"State":"Onln"}],
          "Drive /c0/e32/s3 - Detailed Information":{"Drive /c0/e32/s3 State":{"Shield Counter":0,
            "Media Error Count":12,"Other Error Count":1,"Drive Temperature":" 31C (87.80 F)",
            "Predictive Failure Count":2,"S.M.A.R.T alert flagged by drive":"Yes"}},
          "Drive /c0/s7 - Detailed Information":{"Drive /c0/s7 State":{"Predictive Failure Count":"0"}}}}]}"#;
        let d = parse_drive_details(j).expect("parses");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].drive, "32:3");
        assert_eq!(d[0].predictive_failures, Some(2));
        assert_eq!(d[0].smart_alert, Some(true));
        assert_eq!(d[0].media_errors, Some(12));
        assert_eq!(d[1].drive, ":7");
        assert_eq!(d[1].predictive_failures, Some(0));
        assert!(parse_drive_details(b"[]").is_err());
    }

    proptest! {
        #[test]
        fn drive_details_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_drive_details(&bytes);
        }

        #[test]
        fn drive_path_never_panics(path in any::<String>()) {
            let _ = drive_path(&path);
        }

        #[test]
        fn show_all_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_show_all(&bytes);
        }

        #[test]
        fn rebuild_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_rebuild(&bytes);
        }

        #[test]
        fn show_all_never_panics_on_json_shaped_input(
            dg in any::<i64>(), arr in "[-0-9a-z]{0,3}", did in any::<f64>(),
            state in "[A-Za-z]{0,6}", dgvd in "[0-9/ -]{0,5}", pci in "[0-9a-f:]{0,14}",
        ) {
            let j = format!(r#"{{"Controllers":[{{"Response Data":{{"Basics":{{"Controller":{dg},"PCI Address":"{pci}"}},
              "TOPOLOGY":[{{"DG":{dg},"Arr":"{arr}","Row":{did},"DID":{did},"Type":"DRIVE","State":"{state}"}}],
              "VD LIST":[{{"DG/VD":"{dgvd}","TYPE":"RAID{dg}","State":"{state}"}}],
              "PD LIST":[{{"EID:Slt":"{arr}","DID":{did},"State":"{state}","DG":"{arr}"}}]}}}}]}}"#);
            let _ = parse_show_all(j.as_bytes());
        }
    }
}
