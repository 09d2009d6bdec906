# routewarden %post: on first install enable and start the daemon (as the .deb does); on upgrade restart it (the
# journal cursor in /var/lib/routewarden survives). Without a running systemd (image builds, chroots) only enable.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl --no-reload enable routewarden.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl start routewarden.service >/dev/null 2>&1 || :
    fi
elif [ -d /run/systemd/system ]; then
    systemctl try-restart routewarden.service >/dev/null 2>&1 || :
fi
