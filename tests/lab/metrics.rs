//! Reads the agent's own `/metrics` output (Prometheus text format) as the guest scraped it.
//! The harness never computes a group state: it only reads the one the agent exported.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).map_err(|e| anyhow!("line {}: {e}: {line:?}", i + 1))?);
        }
        Ok(Metrics {
            samples,
            text: text.to_string(),
        })
    }

    /// Samples of `name` whose labels include every `(key, value)` of `with`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one value of `name{with..}`; an error when there is none or more than one.
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> Result<f64> {
        let found: Vec<_> = self.find(name, with).collect();
        match found.as_slice() {
            [one] => Ok(one.value),
            [] => bail!("no sample {name}{with:?} in the agent's output"),
            _ => bail!("{} samples {name}{with:?}, expected one", found.len()),
        }
    }

    /// The state the agent exports for `group`: the one `sparewatch_group_state` series at 1.
    /// Fails when the one-hot contract is broken (none or several at 1).
    pub fn group_state(&self, group: &str) -> Result<String> {
        let with = [("group", group)];
        let series: Vec<_> = self.find("sparewatch_group_state", &with).collect();
        if series.is_empty() {
            bail!("the agent exports no sparewatch_group_state for group {group:?}");
        }
        let on: Vec<_> = series.iter().filter(|s| s.value == 1.0).collect();
        match on.as_slice() {
            [one] => one
                .labels
                .get("state")
                .cloned()
                .ok_or_else(|| anyhow!("sparewatch_group_state without a state label")),
            _ => bail!(
                "group {group:?}: {} state series at 1 (expected exactly one)",
                on.len()
            ),
        }
    }

    /// The label `key` of every sample of `name{with..}` whose value is 1.
    pub fn labels_at_one(&self, name: &str, with: &[(&str, &str)], key: &str) -> Vec<String> {
        self.find(name, with)
            .filter(|s| s.value == 1.0)
            .filter_map(|s| s.labels.get(key).cloned())
            .collect()
    }
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return Err("no value".into()),
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // key
            let mut key = String::new();
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((i, '}')) if key.trim().is_empty() => {
                        end = i;
                        return finish(name, labels, &body[end + 1..]);
                    }
                    Some((_, c)) => key.push(c),
                    None => return Err("unterminated label set".into()),
                }
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut val = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => val.push('\n'),
                        Some((_, c)) => val.push(c),
                        None => return Err("dangling escape".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => val.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.insert(key.trim().trim_start_matches(',').trim().to_string(), val);
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    end = i;
                    break;
                }
                _ => return Err("expected , or } after a label".into()),
            }
        }
        &body[end + 1..]
    } else {
        rest
    };
    finish(name, labels, rest)
}

fn finish(name: &str, labels: BTreeMap<String, String>, rest: &str) -> Result<Sample, String> {
    let v = rest.split_whitespace().next().ok_or("no value")?;
    let value = match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Checks of the parser itself, run before any VM boots (this target has no test harness).
pub fn self_check() -> Result<()> {
    let m = Metrics::parse(
        "# HELP x y\nsparewatch_group_state{group=\"bond:bond0\",kind=\"bond\",state=\"redundant\",by_design=\"false\"} 1\n\
         sparewatch_group_state{group=\"bond:bond0\",kind=\"bond\",state=\"failed\",by_design=\"false\"} 0\n\
         a_b{l=\"q\\\"x\\\\\"} 2.5\nplain 3\nempty{} 4\n",
    )?;
    let ok = m.group_state("bond:bond0")? == "redundant"
        && m.value("a_b", &[("l", "q\"x\\")])? == 2.5
        && m.value("plain", &[])? == 3.0
        && m.value("empty", &[])? == 4.0
        && Metrics::parse("x{a=\"1\" 2\n").is_err()
        && Metrics::parse("x{a=\"b\",c=\"d\"} 1\nx{a=\"b\",c=\"e\"} 1\n")?
            .group_state("nope")
            .is_err();
    if !ok {
        bail!("metrics parser self-check failed");
    }
    Ok(())
}
