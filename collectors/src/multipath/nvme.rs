//! NVMe native multipath as redundancy groups: pure functions from what
//! `/sys/class/nvme-subsystem/*` says to groups `nvme:<subsystem>/<namespace>`.
//!
//! A namespace shared by several controllers of one subsystem has a head block device
//! (`nvme0n1`) and one hidden path block device per controller (`nvme0c0n1`, `nvme0c1n1`:
//! subsystem 0, controller instance 0/1, head 1), listed in `/sys/block` (kernels from 6.15
//! also link them from the head's `multipath/` directory). Each path has an ANA state; each
//! controller a transport state.

use crate::{GroupReading, MemberHealth, MemberReading, Role};

/// ANA states as the kernel prints them (`ana_state`).
pub const ANA_STATES: [&str; 5] = [
    "optimized",
    "non-optimized",
    "inaccessible",
    "persistent-loss",
    "change",
];

/// Controller states as the kernel prints them (`state`).
pub const CONTROLLER_STATES: [&str; 7] = [
    "new",
    "live",
    "resetting",
    "connecting",
    "deleting",
    "deleting (no IO)",
    "dead",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subsystem {
    /// `nvme-subsys0`.
    pub name: String,
    pub nqn: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub iopolicy: Option<String>,
    pub controllers: Vec<Controller>,
    pub namespaces: Vec<Namespace>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controller {
    /// `nvme0`.
    pub name: String,
    /// `live`, `connecting`, `resetting`, `dead`...; `None` when unreadable.
    pub state: Option<String>,
    pub transport: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Head block device: `nvme0n1`.
    pub name: String,
    pub paths: Vec<Path>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    /// Hidden path device: `nvme0c1n1`.
    pub name: String,
    /// The controller this path goes through (`nvme1`).
    pub controller: String,
    /// `None`: the controller does not report ANA (no asymmetric access).
    pub ana_state: Option<String>,
}

/// A hidden path device's name, `nvme<S>c<C>n<N>`: subsystem instance S, controller
/// instance C (controller `nvme<C>`), namespace head instance N (head `nvme<S>n<N>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathName {
    pub subsystem: u32,
    pub controller: u32,
    pub head: u32,
}

impl PathName {
    pub fn parse(name: &str) -> Option<PathName> {
        let rest = name.strip_prefix("nvme")?;
        let (s, rest) = rest.split_once('c')?;
        let (c, n) = rest.split_once('n')?;
        let num = |t: &str| -> Option<u32> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        Some(PathName {
            subsystem: num(s)?,
            controller: num(c)?,
            head: num(n)?,
        })
    }
    pub fn subsystem_name(&self) -> String {
        format!("nvme-subsys{}", self.subsystem)
    }
    pub fn controller_name(&self) -> String {
        format!("nvme{}", self.controller)
    }
    pub fn head_name(&self) -> String {
        format!("nvme{}n{}", self.subsystem, self.head)
    }
}

/// Role and health of one path: the controller must be live; ANA optimized and
/// non-optimized carry I/O (non-optimized only when no optimized path is left, so it is
/// the standby); inaccessible, persistent-loss and change do not.
pub fn path_health(p: &Path, controller_state: Option<&str>) -> (Role, MemberHealth) {
    let role = match p.ana_state.as_deref() {
        Some("optimized") | None => Role::Active,
        Some(_) => Role::Standby,
    };
    match controller_state {
        Some("live") => {}
        Some(other) => {
            return (role, MemberHealth::Unhealthy(format!("controller {other}")));
        }
        None => {
            return (
                role,
                MemberHealth::Unknown("controller state unreadable".into()),
            );
        }
    }
    let health = match p.ana_state.as_deref() {
        None | Some("optimized") | Some("non-optimized") => MemberHealth::Healthy,
        Some(other) => MemberHealth::Unhealthy(format!("ANA {other}")),
    };
    (role, health)
}

impl Subsystem {
    fn controller_state(&self, name: &str) -> Option<&str> {
        self.controllers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.state.as_deref())
    }

    /// One group per multipath namespace, required 1.
    pub fn groups(&self) -> Vec<GroupReading> {
        self.namespaces
            .iter()
            .map(|ns| {
                let mut g = GroupReading::new(format!("nvme:{}/{}", self.name, ns.name), "nvme", 1);
                for p in &ns.paths {
                    let (role, health) = path_health(p, self.controller_state(&p.controller));
                    g.members.push(MemberReading::new(&p.name, role, health));
                }
                g
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(name: &str, ana: Option<&str>) -> Path {
        Path {
            name: name.into(),
            controller: PathName::parse(name).unwrap().controller_name(),
            ana_state: ana.map(str::to_string),
        }
    }

    #[test]
    fn controller_names() {
        let p = PathName::parse("nvme1c0n1").unwrap();
        assert_eq!(
            (p.subsystem_name(), p.controller_name(), p.head_name()),
            ("nvme-subsys1".into(), "nvme0".into(), "nvme1n1".into())
        );
        let p = PathName::parse("nvme3c12n4").unwrap();
        assert_eq!(p.controller_name(), "nvme12");
        assert_eq!(PathName::parse("nvme0n1"), None);
        assert_eq!(PathName::parse("nvme0c1n1p1"), None);
        assert_eq!(PathName::parse("nvme0cxn1"), None);
        assert_eq!(PathName::parse("sda"), None);
    }

    #[test]
    fn one_path_inaccessible() {
        let s = Subsystem {
            name: "nvme-subsys0".into(),
            controllers: vec![
                Controller {
                    name: "nvme0".into(),
                    state: Some("live".into()),
                    transport: Some("tcp".into()),
                },
                Controller {
                    name: "nvme1".into(),
                    state: Some("live".into()),
                    transport: Some("tcp".into()),
                },
            ],
            namespaces: vec![Namespace {
                name: "nvme0n1".into(),
                paths: vec![
                    path("nvme0c0n1", Some("optimized")),
                    path("nvme0c1n1", Some("inaccessible")),
                ],
            }],
            ..Subsystem::default()
        };
        let g = &s.groups()[0];
        assert_eq!(g.name, "nvme:nvme-subsys0/nvme0n1");
        assert_eq!(g.kind, "nvme");
        assert_eq!(g.required, 1);
        assert_eq!(g.members[0].health, MemberHealth::Healthy);
        assert_eq!(g.members[0].role, Role::Active);
        assert_eq!(
            g.members[1].health,
            MemberHealth::Unhealthy("ANA inaccessible".into())
        );
        assert_eq!(g.members[1].role, Role::Standby);
    }

    #[test]
    fn controller_state_wins() {
        let p = path("nvme0c1n1", Some("optimized"));
        assert_eq!(
            path_health(&p, Some("connecting")).1,
            MemberHealth::Unhealthy("controller connecting".into())
        );
        assert!(matches!(path_health(&p, None).1, MemberHealth::Unknown(_)));
        let p = path("nvme0c1n1", Some("non-optimized"));
        assert_eq!(
            path_health(&p, Some("live")),
            (Role::Standby, MemberHealth::Healthy)
        );
        let p = path("nvme0c1n1", None);
        assert_eq!(
            path_health(&p, Some("live")),
            (Role::Active, MemberHealth::Healthy)
        );
    }

    proptest! {
        #[test]
        fn path_name_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = PathName::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
