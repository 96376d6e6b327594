//! IPMI answers from a BMC: SDR records, SDR repository info, Get SDR and Get Sensor
//! Reading responses, and what the group logic makes of any record with any reading.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch_collectors::ipmi::decode::SensorReading;
use sparewatch_collectors::ipmi::groups::{self, Naming, Sample};
use sparewatch_collectors::ipmi::sdr;

fuzz_target!(|data: &[u8]| {
    let _ = sdr::RepositoryInfo::parse(data);
    let _ = sdr::parse_reservation(data);
    let _ = sdr::parse_get_sdr(data);
    let reading = SensorReading::parse(data);
    // The record, then up to 4 bytes of reading after it.
    if let Ok(sdr::Record::Sensors(records)) = sdr::parse_record(data) {
        let end = 5 + data.get(4).copied().unwrap_or(0) as usize;
        let reading = SensorReading::parse(data.get(end..).unwrap_or(&[])).map_err(|e| e.0);
        let samples: Vec<Sample> = records
            .into_iter()
            .map(|record| Sample {
                record,
                reading: reading.clone(),
            })
            .collect();
        let naming = Naming {
            bmc: "fuzz".into(),
            group_prefix: String::new(),
        };
        for g in groups::build_groups(&naming, &samples) {
            assert!(!g.members.is_empty());
            assert!(g.required >= 1);
        }
        let mut out = Vec::new();
        groups::sensor_readings(&naming, &samples, &mut out);
        assert!(out.iter().all(|r| r.value.is_finite()));
    }
    drop(reading);
});
