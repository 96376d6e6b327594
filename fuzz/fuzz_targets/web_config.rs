//! `--web.config.file` (exporter-toolkit YAML) and the PEM certificate and key it names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sparewatch::web_config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = web_config::parse(&text, std::path::Path::new("/etc/sparewatch"));
    let _ = web_config::parse_certs(data);
    let _ = web_config::parse_key(data);
});
