//! Keeps docs/ true: every flag the binary accepts and every metric the golden files show
//! is documented.

use crate::support::{repo, sparewatch};

fn docs_text() -> String {
    let mut all = String::new();
    let mut dirs = vec![repo().join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("docs dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                all.push_str(&std::fs::read_to_string(&p).expect("read doc"));
            }
        }
    }
    all
}

#[test]
fn every_flag_is_documented() {
    let docs = docs_text();
    let mut missing = Vec::new();
    for sub in [&[][..], &["status"][..], &["demo"][..], &["drill"][..]] {
        let mut args: Vec<&str> = sub.to_vec();
        args.push("--help");
        let out = sparewatch(&args);
        let help = String::from_utf8_lossy(&out.stdout);
        for word in help.split_whitespace() {
            let flag = word
                .trim_end_matches([',', '.', ']', ')', ':'])
                .split('=')
                .next()
                .unwrap_or("");
            let flag = flag.split('<').next().unwrap_or("");
            if flag.starts_with("--") && flag.len() > 2 && !["--help", "--version"].contains(&flag)
            {
                let generic = flag.starts_with("--collector.") && !flag[12..].contains('.')
                    || flag.starts_with("--no-collector.");
                if !generic && !docs.contains(flag) && !missing.contains(&flag.to_string()) {
                    missing.push(flag.to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags not documented in docs/: {missing:?}"
    );
}

#[test]
fn every_metric_in_the_golden_files_is_documented() {
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("metrics.md");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(repo().join("tests/golden"))
        .expect("golden dir")
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).expect("golden");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split_whitespace().next().unwrap_or("");
                if !docs.contains(&format!("`{name}`")) && !missing.contains(&name.to_string()) {
                    missing.push(name.to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics not documented in docs/metrics.md: {missing:?}"
    );
}
