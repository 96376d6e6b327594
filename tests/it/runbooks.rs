//! Runbook links of the shipped rules: one site-set base URL (sparewatch-settings.yml), the
//! same default everywhere, and a runbook page for every alert.

use crate::support::repo;

/// The shipped default base: the repository's docs/runbooks/ (Cargo.toml `repository`).
fn default_base() -> String {
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let url = cargo
        .lines()
        .find_map(|l| l.strip_prefix("repository = \""))
        .and_then(|r| r.strip_suffix('"'))
        .expect("repository in Cargo.toml");
    format!("{url}/blob/main/docs/runbooks/")
}

#[test]
fn every_alert_links_its_runbook_through_the_site_base_url() {
    let base = default_base();
    assert_eq!(
        sparewatch::alertmanager::RUNBOOK_BASE,
        base,
        "the agent's push links the same default"
    );
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("dashboards/prometheus/sparewatch-alerts.yml"))
            .expect("alerts"),
    )
    .expect("yaml");
    let readme =
        std::fs::read_to_string(repo().join("docs/runbooks/README.md")).expect("runbooks README");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let url = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
            assert_eq!(
                url,
                format!("{{{{ with query \"sparewatch:runbook_base_url:info\" }}}}{{{{ . | first | label \"url\" }}}}{{{{ else }}}}{base}{{{{ end }}}}{name}.md"),
                "{name}: runbook_url must be the site base URL (default {base}) + {name}.md"
            );
            assert!(
                repo().join(format!("docs/runbooks/{name}.md")).is_file(),
                "docs/runbooks/{name}.md missing"
            );
            assert!(
                readme.contains(&format!("({name}.md)")),
                "{name} not in docs/runbooks/README.md"
            );
        }
    }
    assert!(alerts >= 10, "only {alerts} alerts found");
    let settings =
        std::fs::read_to_string(repo().join("dashboards/prometheus/sparewatch-settings.yml"))
            .expect("settings");
    assert!(
        settings.contains("record: sparewatch:runbook_base_url:info")
            && settings.contains(&format!("url: {base}")),
        "the settings file ships the base URL setting with the default"
    );
}
