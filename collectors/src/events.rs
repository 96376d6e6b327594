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

/// What a batch of rtnetlink link messages asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// These interfaces changed (RTM_NEWLINK) or went away (RTM_DELLINK).
    Named(Vec<String>),
    /// Events were lost (ENOBUFS) or a message did not name its interface: re-read all.
    All,
}

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one rtnetlink datagram (several messages may share one) into the names of the
/// interfaces it is about. Messages of other types are skipped; a link message without a
/// readable IFLA_IFNAME, or a datagram that does not parse, means "re-read all" (never a
/// panic: every length is checked).
pub fn parse_link_messages(mut d: &[u8]) -> LinkChange {
    let mut names = Vec::new();
    while d.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let kind = u16::from_ne_bytes([d[4], d[5]]);
        if len < NLMSG_HDRLEN || len > d.len() {
            return LinkChange::All;
        }
        if kind == RTM_NEWLINK || kind == RTM_DELLINK {
            match ifname(&d[NLMSG_HDRLEN..len]) {
                Some(n) => names.push(n),
                None => return LinkChange::All,
            }
        }
        d = &d[align4(len).min(d.len())..];
    }
    if names.is_empty() && !d.is_empty() {
        return LinkChange::All;
    }
    names.sort();
    names.dedup();
    LinkChange::Named(names)
}

/// IFLA_IFNAME of one ifinfomsg and its attributes.
fn ifname(body: &[u8]) -> Option<String> {
    let mut a = body.get(IFINFOMSG_LEN..)?;
    while a.len() >= 4 {
        let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let kind = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        if len < 4 || len > a.len() {
            return None;
        }
        if kind == IFLA_IFNAME {
            let v = &a[4..len];
            let v = v.split(|b| *b == 0).next().unwrap_or(v);
            let name = std::str::from_utf8(v).ok()?;
            // A name sysfs could have: never a path.
            let ok = !name.is_empty()
                && name.len() < 16
                && !name.contains('/')
                && name != "."
                && name != "..";
            return ok.then(|| name.to_string());
        }
        a = &a[align4(len).min(a.len())..];
    }
    None
}

/// Subscribes to rtnetlink link notifications and hands each batch's interface names to
/// `on_change` (then the caller wakes its collector). Runs in the network namespace of the
/// calling thread.
pub fn spawn_link_change_watcher(
    name: &str,
    mut on_change: impl FnMut(LinkChange) + Send + 'static,
) -> std::io::Result<()> {
    let mut socket = Socket::new(protocols::NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    spawn_recv_loop(name, socket, move |msg| {
        if msg.is_empty() {
            on_change(LinkChange::All);
        } else {
            on_change(parse_link_messages(msg));
        }
    })
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

    fn link_message(kind: u16, name: Option<&str>) -> Vec<u8> {
        let mut attrs = Vec::new();
        // IFLA_MTU first, as the kernel sends attributes before the name too.
        attrs.extend_from_slice(&8u16.to_ne_bytes());
        attrs.extend_from_slice(&4u16.to_ne_bytes());
        attrs.extend_from_slice(&1500u32.to_ne_bytes());
        if let Some(n) = name {
            let len = 4 + n.len() + 1;
            attrs.extend_from_slice(&(len as u16).to_ne_bytes());
            attrs.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
            attrs.extend_from_slice(n.as_bytes());
            attrs.push(0);
            attrs.resize(align4(attrs.len()), 0);
        }
        let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0; IFINFOMSG_LEN]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn link_messages_name_their_interfaces() {
        let mut d = link_message(RTM_NEWLINK, Some("veth12"));
        d.extend(link_message(RTM_DELLINK, Some("eth0")));
        d.extend(link_message(RTM_NEWLINK, Some("veth12")));
        assert_eq!(
            parse_link_messages(&d),
            LinkChange::Named(vec!["eth0".into(), "veth12".into()])
        );
        // Other message types are skipped.
        assert_eq!(
            parse_link_messages(&link_message(20, None)),
            LinkChange::Named(vec![])
        );
        assert_eq!(
            parse_link_messages(&link_message(RTM_NEWLINK, None)),
            LinkChange::All
        );
        assert_eq!(
            parse_link_messages(&link_message(RTM_NEWLINK, Some(".."))),
            LinkChange::All
        );
        let mut cut = link_message(RTM_NEWLINK, Some("eth0"));
        cut.truncate(30);
        assert_eq!(parse_link_messages(&cut), LinkChange::All);
    }

    proptest::proptest! {
        #[test]
        fn link_message_parse_never_panics(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_link_messages(&d);
        }
    }

    #[test]
    fn rejects_non_uevents() {
        assert_eq!(Uevent::parse(b""), None);
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed"), None);
    }
}
