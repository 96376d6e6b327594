//! The status page: one HTML file, its stylesheet and its script, embedded in the binary
//! (no external assets: it works on an air-gapped box). The page draws everything from
//! `/api/v1/status`, polled every few seconds, and puts every string from the hardware into
//! the page as text (`textContent`), never as markup.

pub const HTML: &str = include_str!("index.html");
pub const CSS: &str = include_str!("page.css");
pub const JS: &str = include_str!("page.js");

/// Only our own script, style and API: an injected tag could not load or run anything else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";
