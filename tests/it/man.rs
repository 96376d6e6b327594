//! The man page the packages ship (`packaging/sparewatch.1`, committed so that `cargo deb`
//! works on a fresh clone) is what `examples/man.rs` generates from the command line now.

#[path = "../../examples/man.rs"]
#[allow(dead_code)] // its main() is the example's entry point, unused here
mod generator;

use crate::support::repo;

#[test]
fn shipped_man_page_is_generated_from_the_current_flags() {
    let fresh = generator::page().expect("man page renders");
    let path = repo().join("packaging/sparewatch.1");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &fresh).expect("write man page");
        return;
    }
    let shipped = std::fs::read(&path).unwrap_or_default();
    assert!(
        shipped == fresh,
        "packaging/sparewatch.1 is not the page the command line gives now: run \
         `cargo run --example man -- packaging/sparewatch.1` (or UPDATE_MAN=1 cargo test --test it man) and commit it"
    );
    let text = String::from_utf8_lossy(&fresh);
    for sub in ["run", "status", "check", "explain", "demo"] {
        assert!(
            text.contains(&format!("\\fB{sub}\\fR")),
            "subcommand {sub} missing"
        );
    }
}
