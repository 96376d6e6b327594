# Soak: the release binary scraped 200 times a second from loopback for SOAK_SECONDS
# (default 30) while its net collector flaps over a simulated tree of 8 bonds. Fails on any
# scrape error, a missed rate, or RSS / open fds growing (benches/soak.rs). The numbers in
# docs/benchmarks.md come from a longer run of the same bench (command there).
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -euo pipefail
cargo bench --locked --bench soak -- --seconds "${SOAK_SECONDS:-30}" --rate 200
