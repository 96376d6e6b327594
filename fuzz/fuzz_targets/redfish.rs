//! Redfish responses: any bytes as an HTTP response, and as each resource the collector
//! parses (service root, collections, chassis, PowerSubsystem, PowerSupplyMetrics, Power,
//! ThermalSubsystem, Thermal), fed on into the member health and the group decisions. No panic; groups keep
//! one member per PSU/fan and a `required` of at least 1.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::redfish::{http, parse};

fuzz_target!(|data: &[u8]| {
    let _ = http::parse_response(data);
    let _ = http::Endpoint::parse(&String::from_utf8_lossy(data));
    let _ = parse::service_root(data);
    let _ = parse::collection(data, "c");
    let _ = parse::chassis(data, "/redfish/v1/Chassis/x");
    let _ = parse::power_subsystem(data, "/p");
    if let Ok(m) = parse::supply_metrics(data, "/m") {
        // Only finite, non-negative watts get through.
        for w in [m.input_watts, m.output_watts].into_iter().flatten() {
            assert!(w.is_finite() && w >= 0.0);
        }
    }
    let _ = parse::thermal_subsystem(data, "/t");
    if let Ok(p) = parse::power(data, "/p") {
        let g = parse::psu_group("psu:x".into(), &p.supplies, &p.redundancy);
        assert_eq!(g.members.len(), p.supplies.len());
        assert!(g.required >= 1);
    }
    if let Ok(t) = parse::thermal(data, "/t") {
        let g = parse::fan_group("fan:x".into(), &t.fans, &t.redundancy);
        assert_eq!(g.members.len(), t.fans.len());
        assert!(g.required >= 1);
    }
    if let Ok(v) = parse::object(data, "member") {
        let s = parse::supply(&v, 0);
        let _ = parse::supply_health(&s);
        let f = parse::fan(&v, 0);
        let _ = parse::fan_health(&f);
    }
});
