# routewarden %post: like %systemd_post: enable per preset on first install; restart on upgrade (the journal
# cursor in /var/lib/routewarden survives).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset routewarden.service >/dev/null 2>&1 || :
elif [ -d /run/systemd/system ]; then
    systemctl try-restart routewarden.service >/dev/null 2>&1 || :
fi
