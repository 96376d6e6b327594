//! Storage benchmark (not a timed test): the md and multipath collectors on a generated host
//! with 64 md arrays of 6 members and 256 dm-multipath maps of 4 paths (two path groups),
//! plus the parsers alone. Results go to docs/benchmarks.md (section "storage"), with the
//! command that made them:
//!
//!     cargo bench -p sparewatch-collectors --bench storage
//!
//! The multipath collection includes one `dmsetup` run per cycle; here a stand-in shell
//! script that prints the generated status (fork + exec + sh + cat), like a real dmsetup's
//! process cost but without its ioctls.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use sparewatch_collectors::md::{mdstat, MdCollector};
use sparewatch_collectors::multipath::{dmstatus, MultipathCollector};
use sparewatch_collectors::{Collector, Roots};

const ARRAYS: usize = 64;
const MEMBERS: usize = 6;
const MAPS: usize = 256;
const PATHS: usize = 4;

fn write(root: &Path, rel: &str, value: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, format!("{value}\n")).expect("write");
}

fn disk_name(i: usize) -> String {
    // sda..sdz, sdaa..: enough names for ARRAYS × MEMBERS disks.
    let a = (b'a' + (i % 26) as u8) as char;
    if i < 26 {
        format!("sd{a}")
    } else {
        format!("sd{}{a}", (b'a' + (i / 26 - 1) as u8) as char)
    }
}

/// md arrays (raid6, one in eight with a failed member) and their /proc/mdstat.
fn build_md(root: &Path) -> String {
    let mut text = String::from("Personalities : [raid6] [raid5] [raid4] \n");
    for a in 0..ARRAYS {
        let md = format!("sys/block/md{a}/md");
        let failed = a % 8 == 0;
        for (k, v) in [
            ("level", "raid6"),
            ("raid_disks", &MEMBERS.to_string()),
            ("layout", "2"),
            ("degraded", if failed { "1" } else { "0" }),
            ("array_state", "clean"),
            ("sync_action", "idle"),
            ("sync_completed", "none"),
            ("sync_speed", "none"),
            ("mismatch_cnt", "0"),
            ("metadata_version", "1.2"),
        ] {
            write(root, &format!("{md}/{k}"), v);
        }
        let mut devs = Vec::new();
        for m in 0..MEMBERS {
            let dev = format!("{}1", disk_name(a * MEMBERS + m));
            let bad = failed && m == 1;
            let d = format!("{md}/dev-{dev}");
            write(
                root,
                &format!("{d}/state"),
                if bad { "faulty" } else { "in_sync" },
            );
            write(
                root,
                &format!("{d}/slot"),
                &if bad { "none".into() } else { m.to_string() },
            );
            write(root, &format!("{d}/errors"), "0");
            devs.push(format!("{dev}[{m}]{}", if bad { "(F)" } else { "" }));
        }
        let slots: String = (0..MEMBERS)
            .map(|m| if failed && m == 1 { '_' } else { 'U' })
            .collect();
        let _ = write!(
            text,
            "md{a} : active raid6 {}\n      4186112 blocks super 1.2 level 6, 512k chunk, algorithm 2 [{MEMBERS}/{}] [{slots}]\n\n",
            devs.join(" "),
            MEMBERS - usize::from(failed)
        );
    }
    text.push_str("unused devices: <none>\n");
    write(root, "proc/mdstat", text.trim_end());
    text
}

/// dm-multipath maps (ALUA, two groups of two paths; one in eight with a failed path), the
/// sysfs that names them, and a stand-in dmsetup printing their status.
fn build_mpath(root: &Path) -> String {
    let mut status = String::new();
    for m in 0..MAPS {
        let dm = format!("sys/block/dm-{m}/dm");
        write(root, &format!("{dm}/name"), &format!("mpath{m}"));
        write(
            root,
            &format!("{dm}/uuid"),
            &format!("mpath-3600a0980383030{m:09}"),
        );
        let mut line = format!("mpath{m}: 0 2097152 multipath 2 0 0 0 2 1 ");
        for g in 0..2 {
            line.push_str(if g == 0 { "A 0 2 2 " } else { "E 0 2 2 " });
            for p in 0..PATHS / 2 {
                let idx = m * PATHS + g * 2 + p;
                let (major, minor) = (8 + idx / 16, (idx % 16) * 16);
                let name = format!("p{m}x{g}{p}");
                write(
                    root,
                    &format!("sys/devices/bench/{name}/dev"),
                    &format!("{major}:{minor}"),
                );
                let link = root.join(format!("sys/dev/block/{major}:{minor}"));
                std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
                let _ = std::os::unix::fs::symlink(format!("../../devices/bench/{name}"), link);
                let st = if m % 8 == 0 && g == 1 && p == 0 {
                    "F 1"
                } else {
                    "A 0"
                };
                let _ = write!(line, "{major}:{minor} {st} 0 1 ");
            }
        }
        status.push_str(&line);
        status.push('\n');
    }
    write(root, "bench-dmsetup-status", status.trim_end());
    write(
        root,
        "sbin/dmsetup",
        "#!/bin/sh\nexec cat \"$(dirname \"$0\")/../bench-dmsetup-status\"",
    );
    std::fs::set_permissions(
        root.join("sbin/dmsetup"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    status
}

fn measure(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm the page cache and allocator
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

fn row(what: &str, v: &[Duration]) -> String {
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "| {what}, {} runs | {} | {} | {} |\n",
        v.len(),
        ms(p(0.5)),
        ms(p(0.99)),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mdstat_text = build_md(root);
    let status_text = build_mpath(root);
    let roots = Roots::under(root);

    let mut md = MdCollector::new(roots.clone());
    let c = md.collect().expect("md collects");
    assert_eq!(c.groups.len(), ARRAYS);
    let md_cycle = measure(200, || {
        md.collect().expect("md collects");
    });
    let mut mp = MultipathCollector::new(roots, None, Duration::from_secs(10));
    let c = mp.collect().expect("multipath collects");
    assert_eq!(c.groups.len(), MAPS);
    let mp_cycle = measure(100, || {
        mp.collect().expect("multipath collects");
    });
    let md_parse = measure(1000, || {
        mdstat::parse(&mdstat_text).expect("parses");
    });
    let dm_parse = measure(1000, || {
        dmstatus::parse(&status_text).expect("parses");
    });

    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let when = humantime::format_rfc3339_seconds(SystemTime::now());
    let mut report = format!(
        "Host: {ARRAYS} md raid6 arrays of {MEMBERS} ({} KiB of /proc/mdstat), {MAPS} dm-multipath maps of {PATHS} paths in 2 groups ({} KiB of dmsetup status).\n\
         Machine: `cargo bench -p sparewatch-collectors --bench storage` (release profile), {when}, load average {load}.\n\n\
         | measure | p50 | p99 | max |\n|---|---|---|---|\n",
        mdstat_text.len() / 1024,
        status_text.len() / 1024
    );
    report.push_str(&row(
        "md collection (mdstat + sysfs of 64 arrays, 384 members)",
        &md_cycle,
    ));
    report.push_str(&row(
        "multipath collection (dmsetup run + parse + sysfs names of 1024 paths)",
        &mp_cycle,
    ));
    report.push_str(&row("`/proc/mdstat` parse alone", &md_parse));
    report.push_str(&row("dmsetup status parse alone", &dm_parse));
    println!("{report}");
    write_section("storage", &report);
}

/// Replaces the `<!-- bench:NAME -->` … `<!-- /bench:NAME -->` section of docs/benchmarks.md
/// (the same markers the scale benchmark uses).
fn write_section(name: &str, body: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let section = format!("{open}\n{body}{close}");
    let new = match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + close.len()..]),
        _ => format!("{}\n{section}\n", doc.trim_end()),
    };
    if let Err(e) = std::fs::write(&path, new) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
