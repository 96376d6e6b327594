//! Proof that traffic or I/O goes through: an ARP probe through a bond (the gateway answers
//! ARP even where it drops ICMP), and direct reads through a device-mapper map.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sparewatch_collectors::Roots;

/// The default gateway of `dev` from `/proc/net/route` (IPv4), if it has one.
pub fn default_gateway(roots: &Roots, dev: &str) -> Option<String> {
    let text = std::fs::read_to_string(roots.proc("net/route")).ok()?;
    parse_route_gateway(&text, dev)
}

/// `/proc/net/route`: `Iface Destination Gateway Flags …`, addresses as little-endian hex.
pub fn parse_route_gateway(text: &str, dev: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || f[0] != dev || f[1] != "00000000" {
            return None;
        }
        let g = u32::from_str_radix(f[2], 16).ok()?;
        (g != 0).then(|| std::net::Ipv4Addr::from(g.swap_bytes()).to_string())
    })
}

/// `arping` under the root fs (busybox's or iputils').
pub fn arping(roots: &Roots) -> Option<PathBuf> {
    roots.find_tool(
        None,
        &[
            "usr/sbin/arping",
            "usr/bin/arping",
            "sbin/arping",
            "bin/arping",
        ],
    )
}

/// One ARP request out of `dev`; true when answered within `wait` (`-f`: return at the
/// first reply instead of waiting out the second).
pub fn arp(tool: &Path, dev: &str, target: &str, wait: Duration) -> bool {
    let secs = wait.as_secs().max(1).to_string();
    let args = ["-q", "-f", "-c", "1", "-w", &secs, "-I", dev, target];
    matches!(
        sparewatch_collectors::command::run(tool, &args, wait + Duration::from_secs(2)),
        Ok(Some(out)) if out.status.success()
    )
}

/// Direct read of one 4 KiB block at `block` (modulo the device size) of `dev`, bounded by
/// `wait`: true when it returned the block. O_DIRECT, so the page cache cannot answer it.
pub fn direct_read(dev: &Path, block: u64, wait: Duration) -> bool {
    let dev = dev.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    // A read on a map without a usable path may block; the thread is left to finish alone.
    let spawned = std::thread::Builder::new()
        .name("drill-read".into())
        .spawn(move || {
            let _ = tx.send(read_block(&dev, block));
        });
    if spawned.is_err() {
        return false;
    }
    matches!(rx.recv_timeout(wait), Ok(Ok(())))
}

fn read_block(dev: &Path, block: u64) -> std::io::Result<()> {
    const BS: usize = 4096;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)?;
    let size = {
        use std::io::Seek;
        let mut g = &f;
        g.seek(std::io::SeekFrom::End(0))?
    };
    let blocks = (size / BS as u64).max(1);
    // O_DIRECT needs an aligned buffer: take the aligned 4 KiB inside an 8 KiB one.
    let mut buf = vec![0u8; 2 * BS];
    let skew = buf.as_ptr() as usize % BS;
    let start = if skew == 0 { 0 } else { BS - skew };
    f.read_exact_at(&mut buf[start..start + BS], (block % blocks) * BS as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_from_route_table() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 bond0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 bond0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_route_gateway(t, "bond0").as_deref(), Some("10.0.2.2"));
        assert_eq!(parse_route_gateway(t, "eth0"), None);
        assert_eq!(parse_route_gateway("garbage\n\u{0}x y", "x"), None);
    }

    #[test]
    fn direct_read_of_a_file_and_of_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("disk");
        std::fs::write(&p, vec![7u8; 64 * 1024]).expect("write");
        // tmpfs refuses O_DIRECT; a disk-backed temp dir allows it. Either way no panic, and
        // a missing device is never a successful read.
        let _ = direct_read(&p, 3, Duration::from_secs(5));
        assert!(!direct_read(
            &d.path().join("absent"),
            0,
            Duration::from_secs(5)
        ));
    }
}
