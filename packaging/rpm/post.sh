# routewarden %post: on first install enable and start the daemon and its listeners (routewarden.socket), as the
# .deb does; on upgrade restart the daemon (the socket unit keeps the listeners open; the journal cursor in
# /var/lib/routewarden survives), enabling the socket unit when the service is (an upgrade from a version without
# it). Without a running systemd (image builds, chroots) only enable.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl --no-reload enable routewarden.socket routewarden.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl start routewarden.socket routewarden.service >/dev/null 2>&1 || :
    fi
else
    if systemctl --quiet is-enabled routewarden.service >/dev/null 2>&1; then
        systemctl --no-reload enable routewarden.socket >/dev/null 2>&1 || :
    fi
    if [ -d /run/systemd/system ]; then
        systemctl try-restart routewarden.service >/dev/null 2>&1 || :
    fi
fi
