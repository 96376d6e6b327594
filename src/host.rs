//! Host identity for `sparewatch_host_info`, read once at start-up.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub version: String,
}

impl HostInfo {
    pub fn detect() -> Self {
        HostInfo {
            hostname: sysinfo::System::host_name().unwrap_or_default(),
            os: sysinfo::System::long_os_version().unwrap_or_default(),
            kernel: sysinfo::System::kernel_version().unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
