# Shared helpers for scripts/test and its stages. Sourced, not run.
# Every stage installs what it needs when missing, so a fresh machine passes.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:/usr/sbin:/sbin:$PATH"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

_apt_updated=""
# need_apt PKG...: installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$_apt_updated" ]; then $sudo apt-get update -qq || die "apt-get update failed"; _apt_updated=1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# need_cargo_tool BIN CRATE [VERSION]: cargo install --locked when BIN is not on PATH.
need_cargo_tool() {
  local bin=$1 crate=$2 version=${3:-}
  command -v "$bin" >/dev/null && return 0
  log "installing $crate (cargo install)"
  if [ -n "$version" ]; then cargo install --locked "$crate" --version "$version" -q
  else cargo install --locked "$crate" -q; fi || die "cargo install $crate failed"
}

# need_rust_target TRIPLE
need_rust_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  log "adding rust target $1"
  rustup target add "$1" || die "rustup target add $1 failed"
}

# install_listed_deps: every scripts/deps/apt-*.txt (one package a line, # comments).
install_listed_deps() {
  local pkgs
  pkgs=$(cat "$ROOT"/scripts/deps/apt-*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \n' ' ')
  # shellcheck disable=SC2086
  [ -n "${pkgs// }" ] && need_apt $pkgs
  return 0
}

# need_sushy_tools: sushy-tools (PyPI: sushy-static, sushy-emulator) in a venv under
# target/ for the redfish tests (tests/it/redfish.rs), created once and reused. The tests
# find it there, or at $SPAREWATCH_SUSHY_VENV. A venv whose scripts do not run (copied from
# another checkout: their #! names the old path) is rebuilt.
need_sushy_tools() {
  local venv=${SPAREWATCH_SUSHY_VENV:-$ROOT/target/sushy-venv}
  "$venv/bin/sushy-static" --help >/dev/null 2>&1 \
    && "$venv/bin/sushy-emulator" --help >/dev/null 2>&1 && return 0
  need_apt python3 python3-venv
  log "installing sushy-tools into $venv (pip)"
  python3 -m venv --clear "$venv" || die "python3 -m venv $venv failed (Debian package python3-venv)"
  "$venv/bin/pip" install -q sushy-tools || die "pip install sushy-tools failed"
}
