# sparewatch %preun: $1 is 0 when the package is erased (not upgraded): stop and disable.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now sparewatch.service || :
fi
