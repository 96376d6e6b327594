//! The sysfs fallback for dm-multipath path health: the SCSI device state of each path
//! (`/sys/block/dm-N/slaves/<path>/device/state`), used when `dmsetup` is absent or fails.
//! It says whether the path's SCSI device can take I/O, not whether the device-mapper has
//! failed the path, so it is a weaker source than the dm status and is reported as such.

use crate::MemberHealth;

/// The states `scsi_device_state_name()` prints (drivers/scsi/scsi_sysfs.c).
pub const SCSI_STATES: [&str; 9] = [
    "created",
    "running",
    "cancel",
    "deleted",
    "quiesce",
    "offline",
    "transport-offline",
    "blocked",
    "created-blocked",
];

/// A path's health from its SCSI device state; `None`: no state file (not a SCSI path).
pub fn health(state: Option<&str>) -> MemberHealth {
    match state.map(str::trim) {
        Some("running") => MemberHealth::Healthy,
        Some(s @ ("offline" | "transport-offline" | "cancel" | "deleted" | "blocked")) => {
            MemberHealth::Unhealthy(format!("SCSI device {s}"))
        }
        // Transient (suspend, scan) or not yet running: no verdict.
        Some(s @ ("quiesce" | "created" | "created-blocked")) => {
            MemberHealth::Unknown(format!("SCSI device {s}"))
        }
        Some("") | None => MemberHealth::Unknown("no SCSI device state".into()),
        Some(other) => MemberHealth::Unknown(format!("SCSI device state unrecognised: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(health(Some("running\n")), MemberHealth::Healthy);
        assert_eq!(
            health(Some("offline")),
            MemberHealth::Unhealthy("SCSI device offline".into())
        );
        assert_eq!(
            health(Some("transport-offline")),
            MemberHealth::Unhealthy("SCSI device transport-offline".into())
        );
        assert!(matches!(health(Some("quiesce")), MemberHealth::Unknown(_)));
        assert!(matches!(health(None), MemberHealth::Unknown(_)));
        assert!(matches!(health(Some("")), MemberHealth::Unknown(_)));
        assert!(matches!(health(Some("banana")), MemberHealth::Unknown(w) if w.contains("banana")));
        for s in SCSI_STATES {
            let _ = health(Some(s));
        }
    }
}
