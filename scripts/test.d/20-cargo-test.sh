# Unit tests, property tests, and the integration-test binary (tests/it): fixture trees,
# golden /metrics files, veth link events, the IPMI simulator.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
# The redfish tests start sushy-static / sushy-emulator from this venv.
need_sushy_tools
cargo test --workspace --locked
