//! Renders a snapshot as Prometheus text (format 0.0.4), written straight into text:
//! done once per evaluation, off the scrape path (`/metrics` serves the finished text).
//!
//! The output is byte for byte what the `prometheus` crate's `TextEncoder` writes for the
//! same families (a property test below checks it against that encoder), without building
//! its protobuf model first: at 10,000 NICs that model was hundreds of thousands of small
//! allocations per render, most of a render's time and the peak of the agent's heap.
//!
//! The text comes in two parts (see [`crate::snapshot::Snapshot`]): the *body* (groups,
//! members, readings: it changes only when an evaluation does) and the small *tail*
//! (each collector's pass figures, Alertmanager push and drill counters, the snapshot
//! timestamp, the process' own metrics) that the engine re-renders on its liveness tick and
//! after a pass that brought nothing new, without touching the body.

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus::proto::MetricFamily;
use prometheus::TextEncoder;
use sparewatch_collectors::{Collection, GroupState, MetricKind, Reading};

use crate::host::HostInfo;
use crate::snapshot::{CollectorView, Snapshot};

/// One family: its header and its sample lines, already in text form.
struct Family {
    name: String,
    help: String,
    kind: MetricKind,
    /// The sample lines, each ending in `\n`.
    samples: String,
    /// A family from another encoder (the process collector), whole, header included.
    whole: Option<String>,
}

/// Families in insertion order, samples grouped under their family (the first sample of a
/// family decides its help and type, as the encoder this replaces did).
#[derive(Default)]
pub struct Families {
    fams: Vec<Family>,
    index: HashMap<String, usize>,
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
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.fams.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: String::new(),
                    whole: None,
                });
                self.index.insert(name.to_string(), self.fams.len() - 1);
                self.fams.len() - 1
            }
        };
        let out = &mut self.fams[i].samples;
        out.push_str(name);
        if !labels.is_empty() {
            let mut sep = '{';
            for (k, v) in labels {
                out.push(sep);
                out.push_str(k);
                out.push_str("=\"");
                escape_into(out, v, true);
                out.push('"');
                sep = ',';
            }
            out.push('}');
        }
        // `Display` of f64, as the encoder's `to_string`: `NaN`, `inf`, `-inf`, `1e21`.
        let _ = write!(out, " {value}");
        out.push('\n');
    }

    /// A collector's reading, as it comes.
    pub fn reading(&mut self, r: &Reading) {
        let labels: Vec<(&str, &str)> = r.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.add(r.name, r.help, r.kind, &labels, r.value);
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, MetricKind::Gauge, labels, value);
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, MetricKind::Counter, labels, value);
    }

    /// Families from another collector (the process collector), encoded as they come.
    pub fn extend(&mut self, families: Vec<MetricFamily>) {
        for f in families {
            let mut whole = String::new();
            if let Err(e) = TextEncoder::new().encode_utf8(std::slice::from_ref(&f), &mut whole) {
                tracing::error!(error = %e, family = f.name(), "encoding metrics failed");
                continue;
            }
            self.fams.push(Family {
                name: f.name().to_string(),
                help: String::new(),
                kind: MetricKind::Gauge,
                samples: String::new(),
                whole: Some(whole),
            });
        }
    }

    /// The text, in one allocation of the exact size.
    pub fn encode(self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the text to `out` (reserving what it needs once).
    pub fn encode_into(self, out: &mut String) {
        let header = |f: &Family| f.name.len() * 2 + f.help.len() + 32;
        let need: usize = self
            .fams
            .iter()
            .map(|f| match &f.whole {
                Some(w) => w.len(),
                None => header(f) + f.samples.len(),
            })
            .sum();
        out.reserve(need);
        for f in self.fams {
            if let Some(w) = f.whole {
                out.push_str(&w);
                continue;
            }
            if !f.help.is_empty() {
                out.push_str("# HELP ");
                out.push_str(&f.name);
                out.push(' ');
                escape_into(out, &f.help, false);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(&f.name);
            out.push_str(match f.kind {
                MetricKind::Gauge => " gauge\n",
                MetricKind::Counter => " counter\n",
            });
            out.push_str(&f.samples);
        }
    }
}

/// The text format's escaping: `\` and newline always, `"` in label values.
fn escape_into(out: &mut String, v: &str, quote: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !v.contains(special) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
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

/// The body of the text: groups, members, domains, raw readings, host.
pub fn render_body(snap: &Snapshot, input: &RenderInput<'_>) -> String {
    RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    for (_, coll) in input.collections {
        for r in &coll.readings {
            f.reading(r);
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
    f.encode()
}

/// Each collector's health and pass figures (they move with every pass, also one that
/// found nothing new).
fn collector_families(f: &mut Families, collectors: &[CollectorView]) {
    for c in collectors {
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
    for r in collectors.iter().flat_map(|c| &c.pass_stats) {
        f.reading(r);
    }
}

/// Bodies rendered since the process started (the running agent's own cost, in its tail).
static RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The tail of the text: what moves without an evaluation (each collector's pass figures,
/// the Alertmanager push's and the drills' counters, the snapshot timestamp, the process'
/// own metrics). Its families never appear in the body, so body + tail is the text one
/// render of everything writes. A collector pass that brought nothing new (the safety net
/// of a quiet large host) re-renders only this, not the megabytes of the body.
pub fn render_tail(generated_at: f64, collectors: &[CollectorView], process: bool) -> String {
    let mut f = Families::default();
    collector_families(&mut f, collectors);
    push_stats(&mut f);
    crate::drill::metrics::render(&mut f);
    f.gauge(
        "sparewatch_snapshot_timestamp_seconds",
        "When the served snapshot was evaluated (Unix time): scrapes serve the last snapshot, never wait on hardware.",
        &[],
        generated_at,
    );
    if process {
        f.counter(
            "sparewatch_engine_renders_total",
            "Bodies of the /metrics text the engine rendered (on news and deadlines; its liveness tick renders none).",
            &[],
            RENDERS.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        use prometheus::core::Collector as _;
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        f.extend(pc.collect());
    }
    f.encode()
}

/// The whole text: body then tail (one-shot runs and tests).
pub fn render(snap: &Snapshot, input: &RenderInput<'_>) -> String {
    let mut text = render_body(snap, input);
    text.push_str(&render_tail(
        snap.generated_at,
        &snap.collectors,
        input.process,
    ));
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricType};
    use prometheus::Encoder;
    use proptest::prelude::*;

    /// One sample: name, help, counter (else gauge), labels, value.
    type Sample = (String, String, bool, Vec<(String, String)>, f64);

    /// What the renderer wrote before: the `prometheus` crate's model and `TextEncoder`.
    fn reference(samples: &[Sample]) -> String {
        let mut order: Vec<String> = Vec::new();
        let mut map: std::collections::BTreeMap<String, MetricFamily> = Default::default();
        for (name, help, counter, labels, value) in samples {
            let fam = map.entry(name.clone()).or_insert_with(|| {
                let mut f = MetricFamily::default();
                f.set_name(name.clone());
                f.set_help(help.clone());
                f.set_field_type(if *counter {
                    MetricType::COUNTER
                } else {
                    MetricType::GAUGE
                });
                f
            });
            if !order.contains(name) {
                order.push(name.clone());
            }
            let pairs = labels
                .iter()
                .map(|(k, v)| {
                    let mut p = LabelPair::default();
                    p.set_name(k.clone());
                    p.set_value(v.clone());
                    p
                })
                .collect();
            let mut m = Metric::from_label(pairs);
            if fam.get_field_type() == MetricType::COUNTER {
                let mut c = Counter::default();
                c.set_value(*value);
                m.set_counter(c);
            } else {
                let mut g = Gauge::default();
                g.set_value(*value);
                m.set_gauge(g);
            }
            fam.mut_metric().push(m);
        }
        let fams: Vec<MetricFamily> = order.iter().filter_map(|n| map.remove(n)).collect();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&fams, &mut out)
            .expect("reference encodes");
        String::from_utf8(out).expect("utf-8")
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(1e21),
            Just(1e-7),
            (0u32..100_000).prop_map(f64::from),
        ]
    }

    proptest! {
        /// Byte for byte the text the `prometheus` crate's encoder writes, for families
        /// interleaved in any order, help and label values with `\`, `"`, newlines and
        /// non-ASCII, any value (NaN, infinities, huge and tiny numbers), a family whose
        /// later samples come with another help or type, and no help at all.
        #[test]
        fn same_text_as_the_prometheus_encoder(
            samples in proptest::collection::vec(
                (
                    prop_oneof![Just("a_x"), Just("b_total"), Just("c"), Just("d_seconds")],
                    "[a-z \\\\\"\n\u{e9}]{0,12}",
                    any::<bool>(),
                    proptest::collection::vec(
                        (prop_oneof![Just("group"), Just("kind"), Just("l")], "[a-z0-9:\\\\\"\n\u{e9}]{0,8}"),
                        0..4,
                    ),
                    value(),
                ),
                1..40,
            )
        ) {
            let samples: Vec<Sample> = samples
                .into_iter()
                .map(|(n, h, c, l, v)| {
                    (n.to_string(), h, c, l.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), v)
                })
                .collect();
            let mut f = Families::default();
            for (name, help, counter, labels, value) in &samples {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let kind = if *counter { MetricKind::Counter } else { MetricKind::Gauge };
                f.add(name, help, kind, &labels, *value);
            }
            prop_assert_eq!(f.encode(), reference(&samples));
        }
    }

    /// The process collector's families come out as its own encoder writes them, after the
    /// families added before.
    #[test]
    fn extended_families_follow_in_order() {
        use prometheus::core::Collector as _;
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        let fams = pc.collect();
        let mut want = String::from("# HELP a A.\n# TYPE a gauge\na 1\n");
        TextEncoder::new()
            .encode_utf8(&fams, &mut want)
            .expect("encodes");
        let mut f = Families::default();
        f.gauge("a", "A.", &[], 1.0);
        f.extend(fams);
        let got = f.encode();
        // The process' figures (CPU, RSS) move between the two collections: compare shapes.
        let shape = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
                .collect()
        };
        assert_eq!(shape(&got), shape(&want));
        assert!(
            got.starts_with("# HELP a A.\n# TYPE a gauge\na 1\n# HELP process_"),
            "{got}"
        );
    }
}
