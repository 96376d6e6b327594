# Formatting and lints: cargo fmt, clippy with warnings as errors.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
