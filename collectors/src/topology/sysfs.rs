//! Pure parsers of sysfs device paths: what hardware a netdev or block device hangs off.
//!
//! They take the *resolved* path of a device directory (the target of `/sys/class/net/X` or
//! `/sys/class/block/X`, i.e. `/sys/devices/...`) as a string and read it component by
//! component, so they work the same on a fixture tree and can be fuzzed. Shapes as real
//! kernels lay them out (seen on Debian 12 / 6.1 and in QEMU guests):
//!
//! - NIC: `/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1/net/eth1`; virtio-net adds a
//!   `virtio3` component under the PCI function.
//! - SATA/SAS disk: `/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1`
//! - virtio-scsi: `/sys/devices/pci0000:00/0000:00:04.0/virtio1/host2/target2:0:0/2:0:0:0/block/sdb`
//! - FC: `/sys/devices/pci0000:00/0000:00:02.0/0000:05:00.0/host3/rport-3:0-2/target3:0:0/3:0:0:1/block/sdc`
//! - iSCSI (software): `/sys/devices/platform/host4/session1/target4:0:0/4:0:0:1/block/sdd`
//! - virtio-blk / NVMe: `/sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1`,
//!   `/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/nvme0n1p1`

/// Is this path component a PCI function address (`0000:3b:00.1`)?
pub fn is_pci_function(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, ch)| matches!(i, 4 | 7 | 10) || ch.is_ascii_hexdigit())
        && (b'0'..=b'7').contains(&b[11])
}

/// The card of a PCI function: its address without the function (`0000:3b:00.1` →
/// `0000:3b:00`). Functions `.0` and `.1` of one slot are one card.
pub fn card_of_function(f: &str) -> Option<String> {
    is_pci_function(f).then(|| f[..10].to_string())
}

/// The PCI card nearest to the device at the end of `path` (the last PCI function among
/// its components, without the function). `None`: no PCI device on the way (virtual or
/// platform device).
pub fn card_of_path(path: &str) -> Option<String> {
    path.split('/')
        .rfind(|c| is_pci_function(c))
        .and_then(card_of_function)
}

/// What a block device's resolved path says about where it hangs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockPlace {
    /// The whole disk (`sda` for `sda1`; the device itself when it is not a partition).
    pub disk: Option<String>,
    /// The SCSI host (`host3`), when the disk is a SCSI device.
    pub scsi_host: Option<String>,
    /// The PCI function of the controller: the last PCI component before the SCSI host, or
    /// before `block` for a disk that is its own controller (virtio-blk, NVMe).
    pub controller_function: Option<String>,
    /// The FC remote port (`rport-3:0-2`), for FC paths.
    pub fc_rport: Option<String>,
    /// The iSCSI session (`session1`), for iSCSI paths.
    pub iscsi_session: Option<String>,
    /// The SCSI device (`3:0:0:1`), for matching an enclosure slot.
    pub scsi_device: Option<String>,
}

fn is_hctl(c: &str) -> bool {
    let parts: Vec<&str> = c.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_scsi_host(c: &str) -> bool {
    c.strip_prefix("host")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads a resolved block device path (see the module doc for the shapes). `partition`:
/// the device has a `partition` attribute, so its disk is the directory above it.
pub fn block_place(path: &str, partition: bool) -> BlockPlace {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut p = BlockPlace::default();
    let n = comps.len();
    p.disk = match (partition, n) {
        (true, 2..) => Some(comps[n - 2].to_string()),
        (false, 1..) => Some(comps[n - 1].to_string()),
        _ => None,
    };
    // Everything above the disk's own directory (and a `block` class component) is where
    // it hangs.
    let block_at = comps
        .iter()
        .rposition(|c| *c == "block")
        .unwrap_or(n.saturating_sub(if partition { 2 } else { 1 }));
    let before_block = &comps[..block_at.min(n)];
    let host_at = before_block.iter().rposition(|c| is_scsi_host(c));
    if let Some(h) = host_at {
        p.scsi_host = Some(before_block[h].to_string());
        p.controller_function = before_block[..h]
            .iter()
            .rev()
            .find(|c| is_pci_function(c))
            .map(|s| s.to_string());
        let below = &before_block[h + 1..];
        p.fc_rport = below
            .iter()
            .find(|c| c.starts_with("rport-"))
            .map(|s| s.to_string());
        p.iscsi_session = below
            .iter()
            .find(|c| {
                c.strip_prefix("session")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|s| s.to_string());
        p.scsi_device = below
            .iter()
            .rev()
            .find(|c| is_hctl(c))
            .map(|s| s.to_string());
    } else {
        p.controller_function = before_block
            .iter()
            .rev()
            .find(|c| is_pci_function(c))
            .map(|s| s.to_string());
    }
    p
}

/// A WWN as sysfs prints it (`0x2000e0071bce95f2`); `None` for the zero WWN the kernel
/// shows when there is no fabric (point-to-point, loop) or the value is not known.
pub fn wwn(s: &str) -> Option<String> {
    let s = s.trim();
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if hex.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(format!("0x{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn functions_of_one_slot_are_one_card() {
        assert_eq!(
            card_of_function("0000:3b:00.0").as_deref(),
            Some("0000:3b:00")
        );
        assert_eq!(
            card_of_function("0000:3b:00.1").as_deref(),
            Some("0000:3b:00")
        );
        assert_eq!(card_of_function("0000:3b:00.8"), None);
        assert_eq!(card_of_function("pci0000:3a"), None);
        assert_eq!(
            card_of_path("/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1/net/eth1").as_deref(),
            Some("0000:3b:00")
        );
        assert_eq!(
            card_of_path("/sys/devices/pci0000:00/0000:00:03.0/virtio0/net/eth0").as_deref(),
            Some("0000:00:03")
        );
        assert_eq!(card_of_path("/sys/devices/virtual/net/veth0"), None);
    }

    #[test]
    fn a_partition_names_its_disk_and_hba() {
        let p = block_place(
            "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1",
            true,
        );
        assert_eq!(p.disk.as_deref(), Some("sda"));
        assert_eq!(p.scsi_host.as_deref(), Some("host0"));
        assert_eq!(p.controller_function.as_deref(), Some("0000:00:1f.2"));
        assert_eq!(p.scsi_device.as_deref(), Some("0:0:0:0"));
        assert_eq!(p.fc_rport, None);
    }

    #[test]
    fn an_fc_path_names_its_rport_and_an_iscsi_path_its_session() {
        let p = block_place("/sys/devices/pci0000:00/0000:00:02.0/0000:05:00.0/host3/rport-3:0-2/target3:0:0/3:0:0:1/block/sdc", false);
        assert_eq!(p.controller_function.as_deref(), Some("0000:05:00.0"));
        assert_eq!(p.fc_rport.as_deref(), Some("rport-3:0-2"));
        let p = block_place(
            "/sys/devices/platform/host4/session1/target4:0:0/4:0:0:1/block/sdd",
            false,
        );
        assert_eq!(p.scsi_host.as_deref(), Some("host4"));
        assert_eq!(p.controller_function, None);
        assert_eq!(p.iscsi_session.as_deref(), Some("session1"));
    }

    #[test]
    fn a_disk_that_is_its_own_controller() {
        let p = block_place(
            "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/nvme0n1p1",
            true,
        );
        assert_eq!(p.disk.as_deref(), Some("nvme0n1"));
        assert_eq!(p.controller_function.as_deref(), Some("0000:3d:00.0"));
        let p = block_place(
            "/sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1",
            true,
        );
        assert_eq!(p.disk.as_deref(), Some("vda"));
        assert_eq!(p.controller_function.as_deref(), Some("0000:00:05.0"));
    }

    #[test]
    fn wwns() {
        assert_eq!(
            wwn("0x2000e0071bce95f2\n").as_deref(),
            Some("0x2000e0071bce95f2")
        );
        assert_eq!(wwn("0x0"), None);
        assert_eq!(wwn("garbage"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = block_place(&s, true);
            let _ = block_place(&s, false);
            let _ = card_of_path(&s);
            let _ = wwn(&s);
        }
    }
}
