# routewarden %postun: reload units; on removal also delete the state directory (rpm has no purge).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/routewarden
fi
