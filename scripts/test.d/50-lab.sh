# The kernel fault lab (tests/lab, docs/lab.md): the agent, built static for musl, runs
# inside a Debian kernel under QEMU (TCG); faults are injected from the host and the state
# is read from the agent's /metrics in the guest. Packages: scripts/deps/apt-lab.txt.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
need_rust_target x86_64-unknown-linux-musl
# The lab target has `test = false`: `clippy --all-targets` in 10-lint does not see it.
cargo clippy --locked --test lab -- -D warnings
cargo build --release --locked --target x86_64-unknown-linux-musl --bin sparewatch
cargo test --locked --test lab
