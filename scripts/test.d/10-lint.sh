# Formatting and lints: cargo fmt, clippy with warnings as errors.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
