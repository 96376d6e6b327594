//! Renders a snapshot as Prometheus text with the `prometheus` crate's model and encoder.
//! Done once per evaluation, off the scrape path: `/metrics` serves the finished text.

use std::collections::BTreeMap;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};
use sparewatch_collectors::{Collection, GroupState, MetricKind};

use crate::host::HostInfo;
use crate::snapshot::Snapshot;

/// Families in insertion order, samples grouped under their family.
#[derive(Default)]
pub struct Families {
    order: Vec<String>,
    map: BTreeMap<String, MetricFamily>,
}

impl Families {
    pub fn add(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricKind,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let fam = self.map.entry(name.to_string()).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(match kind {
                MetricKind::Gauge => MetricType::GAUGE,
                MetricKind::Counter => MetricType::COUNTER,
            });
            f
        });
        if !self.order.iter().any(|n| n == name) {
            self.order.push(name.to_string());
        }
        let pairs = labels
            .iter()
            .map(|(k, v)| {
                let mut p = LabelPair::default();
                p.set_name(k.to_string());
                p.set_value(v.to_string());
                p
            })
            .collect();
        let mut m = Metric::from_label(pairs);
        match fam.get_field_type() {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        fam.mut_metric().push(m);
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, MetricKind::Gauge, labels, value);
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, MetricKind::Counter, labels, value);
    }

    pub fn extend(&mut self, families: Vec<MetricFamily>) {
        for f in families {
            self.order.push(f.name().to_string());
            self.map.insert(f.name().to_string(), f);
        }
    }

    pub fn encode(self) -> String {
        let Families { order, mut map } = self;
        let fams: Vec<MetricFamily> = order.iter().filter_map(|n| map.remove(n)).collect();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&fams, &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// What goes into the text besides the snapshot itself.
pub struct RenderInput<'a> {
    pub collections: &'a [(&'static str, &'a Collection)],
    pub host: Option<&'a HostInfo>,
    /// The agent's own process metrics (left out of golden files: they vary).
    pub process: bool,
}

pub fn render(snap: &Snapshot, input: &RenderInput<'_>) -> String {
    let mut f = Families::default();
    for g in &snap.groups {
        let gk = [("group", g.name.as_str()), ("kind", g.kind.as_str())];
        for s in GroupState::ALL {
            f.gauge(
                "sparewatch_group_state",
                "Redundancy state of the group: one series per state, the current one is 1.",
                &[
                    gk[0],
                    gk[1],
                    ("state", s.as_str()),
                    ("by_design", if g.by_design { "true" } else { "false" }),
                ],
                b(g.state == s),
            );
        }
    }
    for g in &snap.groups {
        let gk = [("group", g.name.as_str()), ("kind", g.kind.as_str())];
        f.gauge(
            "sparewatch_group_members",
            "Members of the group.",
            &gk,
            g.members_total.into(),
        );
        f.gauge(
            "sparewatch_group_members_healthy",
            "Members counted healthy (active and standby, after hysteresis; hot spares not counted).",
            &gk,
            g.members_healthy.into(),
        );
        f.gauge(
            "sparewatch_group_members_required",
            "Healthy members the group's function needs.",
            &gk,
            g.members_required.into(),
        );
        f.gauge(
            "sparewatch_group_spare",
            "Healthy minus required members: 0 means running on the last one, negative means failed.",
            &gk,
            g.spare as f64,
        );
        f.gauge(
            "sparewatch_group_state_since_timestamp_seconds",
            "When the group entered its current state (Unix time; persisted across agent restarts).",
            &gk,
            g.since,
        );
        f.counter(
            "sparewatch_group_state_transitions_total",
            "State changes of the group.",
            &gk,
            g.transitions as f64,
        );
        if let Some(st) = &g.stated_state {
            for s in GroupState::ALL
                .iter()
                .filter(|s| **s != GroupState::Unknown)
            {
                f.gauge(
                    "sparewatch_group_stated_state",
                    "Redundancy as the hardware states it itself (e.g. IPMI redundancy sensor), one-hot.",
                    &[gk[0], gk[1], ("state", s.as_str())],
                    b(st == s),
                );
            }
            f.gauge(
                "sparewatch_group_evidence_disagreement",
                "1 when the hardware-stated redundancy and the member count disagree (the worse one is reported).",
                &gk,
                b(g.evidence_disagreement),
            );
        }
    }
    for g in &snap.groups {
        for m in &g.members {
            let labels = [
                ("group", g.name.as_str()),
                ("kind", g.kind.as_str()),
                ("member", m.name.as_str()),
                ("role", m.role.as_str()),
            ];
            if !m.unknown {
                f.gauge(
                    "sparewatch_member_healthy",
                    "Whether the member is healthy (after hysteresis). Absent while its health is unknown.",
                    &labels,
                    b(m.healthy),
                );
                f.gauge(
                    "sparewatch_member_at_risk",
                    "Whether a working member is predicted to fail (SMART, PSU predictive failure).",
                    &labels,
                    b(m.at_risk),
                );
            }
            f.counter(
                "sparewatch_member_transitions_total",
                "Health changes of the member (a flapping member counts up fast).",
                &labels[..3],
                m.transitions as f64,
            );
        }
    }
    crate::domains::render(snap, &mut f);
    for c in &snap.collectors {
        let l = [("collector", c.name.as_str())];
        f.gauge(
            "sparewatch_collector_up",
            "Whether the collector's last pass succeeded in time and its data is fresh.",
            &l,
            b(c.up),
        );
        f.gauge(
            "sparewatch_collector_present",
            "Whether the collector's subsystem exists on this host (0: not present, which is not an error).",
            &l,
            b(c.present),
        );
        f.gauge(
            "sparewatch_collector_duration_seconds",
            "Duration of the collector's last pass.",
            &l,
            c.duration_seconds,
        );
        if let Some(t) = c.last_success {
            f.gauge(
                "sparewatch_collector_last_success_timestamp_seconds",
                "When the collector last succeeded (Unix time).",
                &l,
                t,
            );
        }
        f.counter(
            "sparewatch_collector_errors_total",
            "Failed, panicked or timed-out passes of the collector.",
            &l,
            c.errors_total as f64,
        );
    }
    for (_, coll) in input.collections {
        for r in &coll.readings {
            let labels: Vec<(&str, &str)> =
                r.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.add(r.name, r.help, r.kind, &labels, r.value);
        }
    }
    if let Some(h) = input.host {
        f.gauge(
            "sparewatch_host_info",
            "The host and agent: hostname, OS, kernel, agent version.",
            &[
                ("hostname", h.hostname.as_str()),
                ("os", h.os.as_str()),
                ("kernel", h.kernel.as_str()),
                ("version", h.version.as_str()),
            ],
            1.0,
        );
    }
    push_stats(&mut f);
    crate::drill::metrics::render(&mut f);
    f.gauge(
        "sparewatch_snapshot_timestamp_seconds",
        "When the served snapshot was evaluated (Unix time): scrapes serve the last snapshot, never wait on hardware.",
        &[],
        snap.generated_at,
    );
    if input.process {
        use prometheus::core::Collector as _;
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        f.extend(pc.collect());
    }
    f.encode()
}
/// The Alertmanager push's own series (nothing when the push is off).
fn push_stats(f: &mut Families) {
    let Some(stats) = crate::alertmanager::stats() else {
        return;
    };
    f.gauge(
        "sparewatch_alertmanager_alerts_active",
        "Group alerts the agent currently posts to Alertmanager as firing (--alertmanager.url).",
        &[],
        stats.active as f64,
    );
    for (am, e) in &stats.endpoints {
        for (result, n) in [("success", e.success), ("error", e.error)] {
            f.counter(
                "sparewatch_alertmanager_posts_total",
                "Posts of alerts to an Alertmanager by result (error: refused, timed out, or not 2xx).",
                &[("alertmanager", am.as_str()), ("result", result)],
                n as f64,
            );
        }
        if let Some(t) = e.last_success {
            f.gauge(
                "sparewatch_alertmanager_last_success_timestamp_seconds",
                "When a post to this Alertmanager last succeeded (Unix time).",
                &[("alertmanager", am.as_str())],
                crate::snapshot::unix(t),
            );
        }
    }
}
