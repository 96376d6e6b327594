# sparewatch %postun: $1 is 0 on erase, 1 or more on upgrade (then restart the new binary).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart sparewatch.service || :
    fi
fi
if [ "$1" -eq 0 ]; then
    # Persisted state goes with the package; the user and group stay (see install.md).
    rm -rf /var/lib/sparewatch
    # rpm saved a changed config as .rpmsave; the directory goes only when empty.
    rmdir /etc/sparewatch 2>/dev/null || :
fi
