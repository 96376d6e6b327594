# The end-to-end alert chain (tests/it/e2e.rs) with its output shown, so the CI log carries
# the measured fault-to-notification latencies of the rule path and the direct push.
# Real Prometheus and Alertmanager from the Debian packages; the power panels' data from a
# real NUT upsd (nut-server, upsc from nut-client) and sushy-static (sushy-tools venv).
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
need_apt prometheus prometheus-alertmanager nut-server nut-client
need_sushy_tools
cargo test --locked --test it -- e2e:: alerting::agent_pages_through_alertmanager_without_prometheus --nocapture
