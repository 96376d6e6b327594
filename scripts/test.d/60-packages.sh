# Packages: builds the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) on a fresh clone of
# the committed tree with exactly the commands of docs/install.md, checks what they carry,
# installs the .deb on this machine with dpkg -i, checks the unit, config, user and binary,
# runs the installed agent as the service user, then removes and purges it and checks
# nothing is left. The .rpm is installed into a scratch root (rpm --root) and erased.
# It packages HEAD: commit before running it.
source "$(dirname "$0")/../lib.sh"; cd "$ROOT" || exit 1
set -euo pipefail
need_cargo_tool cargo-deb cargo-deb
need_cargo_tool cargo-generate-rpm cargo-generate-rpm
need_apt rpm systemd man-db curl util-linux musl-tools file
# The packages carry the static musl build (docs/install.md).
need_rust_target x86_64-unknown-linux-musl
musl=x86_64-unknown-linux-musl
[ "$(id -u)" -eq 0 ] || die "60-packages installs a .deb: run as root"

fail() { echo "packages: FAIL: $*" >&2; exit 1; }
expect_in() { # expect_in FILE PATTERN...: every fixed string appears in FILE
  local f=$1; shift
  for p in "$@"; do grep -qF -- "$p" "$f" || fail "'$p' missing in $(basename "$f")"; done
}
work=$(mktemp -d)
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  dpkg -P sparewatch >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log "every packaged file but the binary is tracked by git (so a fresh clone has it)"
assets=$(sed -n '/^\[package.metadata.deb\]/,$p' Cargo.toml \
  | grep -oE '(\["|source = ")[^"]+"' | sed -E 's/^(\["|source = ")//; s/"$//' | sort -u)
[ "$(echo "$assets" | wc -l)" -ge 10 ] || fail "too few assets found in Cargo.toml: $assets"
for a in $assets; do
  [ "$a" = target/release/sparewatch ] && continue
  git ls-files --error-unmatch -- "$a" >/dev/null 2>&1 || fail "asset $a is not tracked by git"
done

log "a fresh clone of HEAD, packaged with the commands of docs/install.md"
git clone -q "$ROOT" "$work/clone"
# Only the build cache is shared (no untracked source file can reach the package: checked
# above), so the release build is incremental.
mkdir -p "$ROOT/target"; ln -s "$ROOT/target" "$work/clone/target"
(
  cd "$work/clone"
  cargo deb --target "$musl" >"$work/deb.log" 2>&1 || { cat "$work/deb.log" >&2; exit 1; }
  { cargo build --release --target "$musl" && cargo generate-rpm --target "$musl"; } \
    >"$work/rpm.log" 2>&1 || { cat "$work/rpm.log" >&2; exit 1; }
) || fail "packaging the fresh clone as docs/install.md says"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
cp "target/$musl/debian/sparewatch_${version}-1_amd64.deb" "$work/sparewatch.deb" || fail "no .deb where install.md says"
cp target/"$musl"/generate-rpm/sparewatch-"${version}"-1.*.rpm "$work/sparewatch.rpm" || fail "no .rpm where install.md says"
bin=target/$musl/release/sparewatch

log "both packages carry the static build"
# static_build FILE WHAT: FILE is the static-pie build (the .rpm's is checked once unpacked).
static_build() {
  local kind; kind=$(file -b "$1")
  [[ $kind == *"static-pie linked"* ]] || fail "$2: not the static build: $kind"
}
dpkg-deb --fsys-tarfile "$work/sparewatch.deb" >"$work/deb.tar" || fail "dpkg-deb --fsys-tarfile"
tar -xOf "$work/deb.tar" ./usr/bin/sparewatch >"$work/deb.bin" || fail "no /usr/bin/sparewatch in the .deb"
static_build "$work/deb.bin" ".deb's /usr/bin/sparewatch"
static_build "$bin" "the binary cargo built"

log "man page covers every flag of --help"
dpkg-deb --fsys-tarfile "$work/sparewatch.deb" | tar -xO ./usr/share/man/man1/sparewatch.1.gz \
  | gunzip >"$work/sparewatch.1" || fail "no man page in the .deb"
MANWIDTH=400 man -l "$work/sparewatch.1" >"$work/man.txt" 2>"$work/man.warn"
[ ! -s "$work/man.warn" ] || { cat "$work/man.warn" >&2; fail "man page has warnings"; }
flags=$({ "$bin" --help; for s in run status check explain demo; do "$bin" "$s" --help; done; } \
  | grep -oE -- '--[a-z][a-z0-9.-]+' | sort -u)
[ "$(echo "$flags" | wc -l)" -ge 10 ] || fail "too few flags in --help: $flags"
for f in $flags; do expect_in "$work/man.txt" "$f"; done

log "contents of the .deb"
dpkg-deb -c "$work/sparewatch.deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/deb.files"
expect_in "$work/deb.files" /usr/bin/sparewatch /etc/sparewatch/sparewatch.yml \
  /etc/sparewatch/sparewatch.env /usr/lib/systemd/system/sparewatch.service \
  /usr/lib/sysusers.d/sparewatch.conf /usr/lib/udev/rules.d/60-sparewatch-ipmi.rules \
  /usr/share/man/man1/sparewatch.1.gz /usr/share/doc/sparewatch/copyright \
  /usr/share/doc/sparewatch/examples/web.yml /usr/share/doc/sparewatch/security.md
dpkg-deb -f "$work/sparewatch.deb" Depends >"$work/deb.depends"
expect_in "$work/deb.depends" systemd
! grep -q libc "$work/deb.depends" || fail "the static .deb depends on a libc: $(cat "$work/deb.depends")"
mkdir "$work/control"; dpkg-deb -e "$work/sparewatch.deb" "$work/control"
expect_in "$work/control/conffiles" /etc/sparewatch/sparewatch.yml /etc/sparewatch/sparewatch.env
expect_in "$work/control/postinst" "systemd-sysusers" "deb-systemd-helper" "udevadm trigger"
expect_in "$work/control/postrm" "rm -rf /var/lib/sparewatch"
for s in postinst postrm prerm; do [ ! -f "$work/control/$s" ] || sh -n "$work/control/$s"; done

log "contents of the .rpm"
rpm -qlp "$work/sparewatch.rpm" >"$work/rpm.files" 2>/dev/null
expect_in "$work/rpm.files" /usr/bin/sparewatch /etc/sparewatch/sparewatch.yml \
  /etc/sparewatch/sparewatch.env /usr/lib/systemd/system/sparewatch.service \
  /usr/lib/sysusers.d/sparewatch.conf /usr/lib/udev/rules.d/60-sparewatch-ipmi.rules \
  /usr/share/man/man1/sparewatch.1
rpm -qp --configfiles "$work/sparewatch.rpm" >"$work/rpm.conf" 2>/dev/null
expect_in "$work/rpm.conf" /etc/sparewatch/sparewatch.yml /etc/sparewatch/sparewatch.env
rpm -qp --scripts "$work/sparewatch.rpm" >"$work/rpm.scripts" 2>/dev/null
expect_in "$work/rpm.scripts" "postinstall scriptlet" "preuninstall scriptlet" systemd-sysusers
rpm -qp --requires "$work/sparewatch.rpm" >"$work/rpm.requires" 2>/dev/null
expect_in "$work/rpm.requires" systemd
for s in packaging/rpm/*.sh; do sh -n "$s"; done

log "rpm: unpack into a scratch root and erase again (scriptlets off: not an RPM system)"
r="$work/rpmroot"; mkdir -p "$r"
rpm --root "$r" --initdb
rpm --root "$r" --force-debian -i --nodeps --noscripts --nosignature "$work/sparewatch.rpm"
[ -x "$r/usr/bin/sparewatch" ] && [ -f "$r/etc/sparewatch/sparewatch.yml" ] || fail "rpm did not unpack"
static_build "$r/usr/bin/sparewatch" ".rpm's /usr/bin/sparewatch"
[ "$(stat -c %a "$r/etc/sparewatch/sparewatch.env")" = 600 ] || fail "rpm: sparewatch.env not 0600"
rpm --root "$r" --force-debian -e --noscripts sparewatch
[ ! -e "$r/usr/bin/sparewatch" ] || fail "rpm -e left the binary"

log "dpkg -i"
dpkg -P sparewatch >/dev/null 2>&1 || true
dpkg -i "$work/sparewatch.deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
dpkg -L sparewatch | while read -r f; do [ -d "$f" ] || echo "$f"; done >"$work/installed.files"
for f in /usr/bin/sparewatch /usr/lib/systemd/system/sparewatch.service \
         /etc/sparewatch/sparewatch.yml /etc/sparewatch/sparewatch.env \
         /usr/lib/udev/rules.d/60-sparewatch-ipmi.rules /usr/share/man/man1/sparewatch.1.gz; do
  [ -f "$f" ] || fail "$f not installed"
done
[ "$(stat -c '%a %U' /etc/sparewatch/sparewatch.env)" = "600 root" ] || fail "sparewatch.env must be 0600 root"
getent passwd sparewatch >/dev/null || fail "postinst did not create user sparewatch"
getent group sparewatch >/dev/null || fail "postinst did not create group sparewatch"
[ "$(getent passwd sparewatch | cut -d: -f7)" = /usr/sbin/nologin ] || fail "sparewatch has a login shell"
[ -L /etc/systemd/system/multi-user.target.wants/sparewatch.service ] || fail "unit not enabled"
/usr/bin/sparewatch --version | grep -q "^sparewatch " || fail "sparewatch --version"

log "systemd-analyze verify and security"
systemd-analyze verify /usr/lib/systemd/system/sparewatch.service >"$work/verify.log" 2>&1 \
  || { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
[ ! -s "$work/verify.log" ] || { cat "$work/verify.log" >&2; fail "systemd-analyze verify warns"; }
exposure=$(systemd-analyze security --offline=yes /usr/lib/systemd/system/sparewatch.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for sparewatch.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure: $exposure" >&2
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }' || fail "exposure $exposure above 3.0"

log "the installed agent runs as user sparewatch with the shipped config"
# mktemp -d is 0700: the service user must be able to reach its state directory.
chmod 755 "$work"
state="$work/state"; mkdir "$state"; chown sparewatch:sparewatch "$state"
port=$((20000 + RANDOM % 20000))
setpriv --reuid sparewatch --regid sparewatch --init-groups \
  /usr/bin/sparewatch run --config.file=/etc/sparewatch/sparewatch.yml --state.dir="$state" \
  --web.listen-address="127.0.0.1:$port" >"$work/agent.log" 2>&1 &
agent_pid=$!
ok=""
for _ in $(seq 1 50); do
  if curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" 2>/dev/null \
     && grep -q '^sparewatch_collector_up{collector="net"} 1' "$work/metrics.txt"; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { cat "$work/agent.log" >&2; fail "installed agent did not serve /metrics as user sparewatch"; }
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
/usr/bin/sparewatch status --config.file=/etc/sparewatch/sparewatch.yml >/dev/null \
  || fail "the shipped config does not load"

log "dpkg -r keeps the conffiles, dpkg -P removes everything"
mkdir -p /var/lib/sparewatch && echo '{}' >/var/lib/sparewatch/groups.json
dpkg -r sparewatch >/dev/null
[ ! -e /usr/bin/sparewatch ] || fail "dpkg -r left the binary"
[ -f /etc/sparewatch/sparewatch.yml ] || fail "dpkg -r removed a conffile"
dpkg -P sparewatch >/dev/null
while read -r f; do [ ! -e "$f" ] || fail "left after purge: $f"; done <"$work/installed.files"
for d in /etc/sparewatch /var/lib/sparewatch; do [ ! -e "$d" ] || fail "left after purge: $d"; done
[ ! -e /etc/systemd/system/multi-user.target.wants/sparewatch.service ] || fail "unit still enabled"
dpkg-query -W -f='${Status}' sparewatch 2>/dev/null | grep -q "not-installed" \
  || [ -z "$(dpkg-query -W -f='${Status}' sparewatch 2>/dev/null)" ] || fail "package still known to dpkg"
# The user stays on purge by design (docs/install.md): a reused uid would own old files.
getent passwd sparewatch >/dev/null || fail "purge removed the user (documented to stay)"
echo "packages: .deb and .rpm built, checked, installed and removed cleanly"
