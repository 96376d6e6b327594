//! Kernel event sources that wake a collector at once instead of waiting for its interval.
//!
//! Watchers only say "something changed": the collector then re-reads its files, so the
//! event payload never has to be trusted or fully parsed.

use std::sync::Arc;
use std::thread;

use netlink_sys::{protocols, Socket, SocketAddr};

/// Wakes one collector for an immediate re-collection. Cheap, non-blocking, coalescing.
#[derive(Clone)]
pub struct Wake(Arc<dyn Fn() + Send + Sync>);

impl Wake {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Wake(Arc::new(f))
    }
    /// A wake that does nothing (`status`/`check` run once and need no events).
    pub fn noop() -> Self {
        Wake::new(|| {})
    }
    pub fn wake(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// rtnetlink multicast group for link changes (RTMGRP_LINK).
const RTMGRP_LINK: u32 = 1;
/// The kernel's uevent multicast group.
const UEVENT_KERNEL_GROUP: u32 = 1;

/// Subscribes to rtnetlink link notifications (RTM_NEWLINK/RTM_DELLINK) and wakes on each.
/// Runs in the network namespace of the calling thread.
pub fn spawn_link_watcher(name: &str, wake: Wake) -> std::io::Result<()> {
    let mut socket = Socket::new(protocols::NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    spawn_recv_loop(name, socket, move |_msg| wake.wake())
}

/// One kernel uevent, as sent on NETLINK_KOBJECT_UEVENT: `ACTION@DEVPATH\0KEY=VALUE\0...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub vars: Vec<(String, String)>,
}

impl Uevent {
    /// Parses a kernel uevent datagram; `None` for anything else (udev's own "libudev"
    /// messages also travel on other groups).
    pub fn parse(bytes: &[u8]) -> Option<Uevent> {
        let mut parts = bytes.split(|b| *b == 0).filter(|p| !p.is_empty());
        let head = String::from_utf8_lossy(parts.next()?).into_owned();
        let (action, devpath) = head.split_once('@')?;
        let vars = parts
            .filter_map(|p| {
                let s = String::from_utf8_lossy(p);
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Some(Uevent {
            action: action.to_string(),
            devpath: devpath.to_string(),
            vars,
        })
    }
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Subscribes to kernel uevents and wakes when `filter` accepts one
/// (e.g. `SUBSYSTEM=block` with `DM_ACTION=PATH_FAILED`).
pub fn spawn_uevent_watcher(
    name: &str,
    wake: Wake,
    filter: impl Fn(&Uevent) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let mut socket = Socket::new(protocols::NETLINK_KOBJECT_UEVENT)?;
    socket.bind(&SocketAddr::new(0, UEVENT_KERNEL_GROUP))?;
    spawn_recv_loop(name, socket, move |msg| {
        // An empty message means events were lost (ENOBUFS): re-read everything.
        if msg.is_empty() {
            wake.wake();
            return;
        }
        if let Some(ev) = Uevent::parse(msg) {
            if filter(&ev) {
                wake.wake();
            }
        }
    })
}

fn spawn_recv_loop(
    name: &str,
    socket: Socket,
    mut on_message: impl FnMut(&[u8]) + Send + 'static,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.recv(&mut &mut buf[..], 0) {
                    Ok(n) => on_message(&buf[..n.min(buf.len())]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // ENOBUFS: we missed events; a wake makes the collector re-read all.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => on_message(&[]),
                    Err(e) => {
                        tracing::warn!(error = %e, "event watcher stopped; polling only");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_uevent() {
        let msg = b"change@/devices/virtual/block/dm-0\0ACTION=change\0DEVPATH=/devices/virtual/block/dm-0\0SUBSYSTEM=block\0DM_ACTION=PATH_FAILED\0DM_PATH=8:16\0";
        let ev = Uevent::parse(msg).expect("parses");
        assert_eq!(ev.action, "change");
        assert_eq!(ev.devpath, "/devices/virtual/block/dm-0");
        assert_eq!(ev.var("SUBSYSTEM"), Some("block"));
        assert_eq!(ev.var("DM_ACTION"), Some("PATH_FAILED"));
        assert_eq!(ev.var("NOPE"), None);
    }

    #[test]
    fn rejects_non_uevents() {
        assert_eq!(Uevent::parse(b""), None);
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed"), None);
    }
}
