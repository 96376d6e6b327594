# Alert and recording rules, their unit tests, and the Alertmanager example:
# promtool check rules, promtool test rules, amtool check-config, amtool route tests.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -e
need_apt prometheus prometheus-alertmanager
command -v promtool >/dev/null || die "promtool not found: apt-get install prometheus"
command -v amtool >/dev/null || die "amtool not found: apt-get install prometheus-alertmanager"

P=dashboards/prometheus
promtool check rules "$P"/sparewatch-*.yml "$P"/tests/settings-*.yml
promtool test rules "$P"/tests/*.test.yml

# The rules fit any install: no rule names a scrape job, and every test passes unchanged
# when the agents are scraped under another job name.
if grep -nE 'job *(=|!=|=~|!~) *"' "$P"/sparewatch-*.yml; then
  die "a shipped rule names a scrape job (above): the rules must work under any job name"
fi
renamed=$(mktemp -d); trap 'rm -rf "$renamed"' EXIT
cp -r "$P" "$renamed/prometheus"
sed -i -e 's/job="sparewatch"/job="node-hw"/g' -e 's/^\( *job:\) sparewatch$/\1 node-hw/' \
  "$renamed"/prometheus/tests/*.test.yml
if grep -qE 'job="sparewatch"|job: sparewatch$' "$renamed"/prometheus/tests/*.test.yml; then
  die "the job rename left job sparewatch in the test copies"
fi
[ "$(cat "$renamed"/prometheus/tests/*.test.yml | grep -c 'node-hw')" -gt 20 ] \
  || die "the job rename changed too little in the test copies"
promtool test rules "$renamed"/prometheus/tests/*.test.yml >/dev/null \
  || die "rule tests fail when the job is not called sparewatch"

AM=dashboards/alertmanager/alertmanager.yml
amtool check-config "$AM"
# route: labels -> receiver that must get them
while read -r want labels; do
  [ -z "$want" ] && continue
  # shellcheck disable=SC2086
  amtool config routes test --config.file="$AM" --verify.receivers="$want" $labels >/dev/null 2>&1 \
    || die "alertmanager route: {$labels} should reach $want, got: $(amtool config routes test --config.file="$AM" $labels 2>/dev/null)"
done <<'ROUTES'
pager   alertname=SparewatchGroupFailed severity=page hostname=web1 group=bond:bond0 kind=bond
pager   alertname=SparewatchRedundancyRot severity=page hostname=web1 group=bond:bond0 kind=bond
tickets alertname=SparewatchRedundancyLost severity=ticket hostname=web1 group=bond:bond0 kind=bond
tickets alertname=SparewatchGroupDegraded severity=ticket hostname=web1 group=md:md0 kind=md
tickets alertname=SparewatchHiddenSinglePointOfFailure severity=ticket hostname=web1 group=bond:bond0 kind=bond domain_kind=card domain=0000:3b:00
tickets alertname=SparewatchFailoverNotProven severity=ticket hostname=web1 group=bond:bond0 kind=bond
tickets alertname=SparewatchAgentDown severity=ticket hostname=web1
tickets alertname=SparewatchIpmiBmcDown severity=ticket hostname=mgmt1 bmc=rack-b
tickets alertname=SparewatchUpsOnBattery severity=ticket hostname=db7 ups=ups-a
tickets alertname=SparewatchAlertmanagerPushFailing severity=ticket hostname=web1 alertmanager=http://am1:9093/api/v2/alerts
tickets alertname=SomethingElse
ROUTES
echo "rules, rule tests (also under another job name) and alertmanager routes: ok"
