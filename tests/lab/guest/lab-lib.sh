# Sourced by the lab-* helpers in the guest.
AGENT_URL=${AGENT_URL:-http://127.0.0.1:9856/metrics}
# uptime_ms: the guest clock (/proc/uptime, 10 ms resolution), in milliseconds.
uptime_ms() {
  read -r up _ </proc/uptime
  cs=$(echo "$up" | tr -d .)
  cs=${cs#"${cs%%[!0]*}"}
  echo $(( ${cs:-0} * 10 ))
}
# Note: busybox-static 1.35's `wget -T` segfaults; bound wget with `timeout` instead.
