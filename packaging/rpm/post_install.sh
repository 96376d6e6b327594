# sparewatch %post: service account, IPMI device group, systemd.
# $1: 1 on first install, 2 or more on upgrade.
if ! getent passwd sparewatch >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers sparewatch.conf
    else
        useradd --system --user-group --home-dir /var/lib/sparewatch --no-create-home \
            --shell /sbin/nologin --comment "sparewatch hardware redundancy agent" sparewatch
    fi
fi
if [ -S /run/udev/control ] && command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || :
    udevadm trigger --subsystem-match=ipmi --action=change || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    # Enabled on first install per the distribution's preset policy (like %systemd_post).
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset sparewatch.service || :
    fi
fi
