# routewarden %preun: like %systemd_preun: stop and disable the daemon and its listeners on removal (not on
# upgrade). The socket first: a connection must not start the daemon again.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now routewarden.socket routewarden.service >/dev/null 2>&1 || :
fi
