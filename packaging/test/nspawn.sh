#!/bin/bash
# The packages under a real systemd: boots a Debian root with systemd-nspawn (systemd as PID 1, its own network
# namespace) and checks the .deb the way a node operator meets it. Run by `cargo xtask package-test` as root:
#   nspawn.sh ROOT_TAR NEW_DEB OLD_DEB WORKDIR
# ROOT_TAR: a debootstrapped root with systemd, iptables, nftables and curl (xtask caches it under target/).
# Everything runs inside the container's namespaces; the host's network, rules and units are never touched.
set -euo pipefail
# shellcheck source=packaging/test/boot.sh
. "$(dirname "$0")/boot.sh"

ROOT_TAR=$1 NEW_DEB=$2 OLD_DEB=$3 WORK=$4
C=$WORK/root
LOG=$WORK/nspawn.log
NSPAWN=

step() { echo "# $*"; }
fail() {
    echo "FAILED: $*" >&2
    if [ -n "$NSPAWN" ]; then
        echo "--- journalctl -u routewarden (last 40) ---" >&2
        inside journalctl --no-pager -n 40 -u routewarden >&2 || true
    fi
    exit 1
}

cleanup() {
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        # nspawn turns SIGTERM into an orderly poweroff of the container; kill it if that takes too long.
        kill -TERM "$NSPAWN" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN" 2>/dev/null || true
        wait "$NSPAWN" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'echo "FAILED: line $LINENO: $BASH_COMMAND" >&2' ERR

rm -rf "$C" && mkdir -p "$C" && tar -C "$C" -xf "$ROOT_TAR"
cp "$NEW_DEB" "$C/root/new.deb" && cp "$OLD_DEB" "$C/root/old.deb"
# A machine id and no getty: the container boots quickly and quietly.
systemd-machine-id-setup --root="$C" >/dev/null 2>&1 || true
rm -f "$C/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true

step "boot (systemd-nspawn --boot)"
boot_container "rw-nspawn-$$"

step "install: the unit and its socket unit are enabled, the listeners held before the daemon starts, READY, /status answers"
inside dpkg -i /root/new.deb >/dev/null
inside systemctl is-enabled --quiet routewarden || fail "not enabled after install"
inside systemctl is-enabled --quiet routewarden.socket || fail "routewarden.socket not enabled after install"
prop routewarden.socket WantedBy | grep -qw sockets.target || fail "routewarden.socket is not wanted by sockets.target"
active_within routewarden.service 30 || fail "not active after install: $(prop routewarden ActiveState)"
[ "$(prop routewarden.socket ActiveState)" = active ] || fail "routewarden.socket is $(prop routewarden.socket ActiveState)"
sock_at=$(prop routewarden.socket ActiveEnterTimestampMonotonic)
main_at=$(prop routewarden ExecMainStartTimestampMonotonic)
[ "$sock_at" -gt 0 ] && [ "$sock_at" -lt "$main_at" ] ||
    fail "the listeners were not held before the daemon started (socket at $sock_at, daemon at $main_at)"
inside journalctl --no-pager -u routewarden | grep -q "serving the inherited HTTP (daemon.listen) socket on 127.0.0.1:9977" ||
    fail "the daemon did not take the loopback listener from routewarden.socket"
status=$(prop routewarden StatusText)
[ -n "$status" ] || fail "no STATUS= after READY"
echo "  STATUS=$status"
inside curl -sf --max-time 5 http://127.0.0.1:9977/status | grep -q '"schema_version"' || fail "/status did not answer"
inside curl -sf --max-time 5 http://127.0.0.1:9977/metrics | grep -q '^routewarden_build_info' || fail "/metrics did not answer"
max=$(prop routewarden MemoryMax)
[ "$max" = 1073741824 ] || fail "MemoryMax is $max, not the 1G the unit sets (BENCHMARKS.md's largest peak with headroom)"
cur=$(prop routewarden MemoryCurrent)
case $cur in ''|'[not set]'|*[!0-9]*) echo "  MemoryCurrent not accounted here ($cur)" ;;
    *) [ "$cur" -lt "$max" ] || fail "MemoryCurrent $cur is not under MemoryMax $max"; echo "  MemoryCurrent=$cur" ;; esac

step "a broken configuration: systemctl reload fails, the daemon keeps running"
pid=$(prop routewarden MainPID)
inside cp /etc/routewarden/config.toml /tmp/config.good
inside sh -c 'echo "no_such_key = 1" >> /etc/routewarden/config.toml'
if inside systemctl reload routewarden 2>/dev/null; then fail "systemctl reload exited 0 on a broken configuration"; fi
[ "$(prop routewarden ActiveState)" = active ] || fail "the daemon stopped after a refused reload"
[ "$(prop routewarden MainPID)" = "$pid" ] || fail "the daemon was restarted by a refused reload"
inside cp /tmp/config.good /etc/routewarden/config.toml
inside systemctl reload routewarden || fail "systemctl reload of a good configuration failed"

step "the unix socket in root-only /run/routewarden answers; a restart or a stop of the daemon keeps both listeners"
inside curl -sf --max-time 5 --unix-socket /run/routewarden/routewarden.sock http://localhost/healthz >/dev/null ||
    fail "no answer on /run/routewarden/routewarden.sock"
[ "$(inside stat -c '%a %U %G' /run/routewarden)" = "750 root root" ] ||
    fail "/run/routewarden is $(inside stat -c '%a %U %G' /run/routewarden), not 750 root root"
[ "$(inside stat -c '%a %U %G' /run/routewarden/routewarden.sock)" = "660 root root" ] ||
    fail "the socket is $(inside stat -c '%a %U %G' /run/routewarden/routewarden.sock), not 660 root root"
# Connections made while the daemon restarts wait in the held sockets' queues: none is refused (curl exit 7).
pid=$(prop routewarden MainPID)
inside sh -c 'systemctl restart --no-block routewarden
    i=0; while [ $i -lt 40 ]; do curl -s --max-time 30 -o /dev/null http://127.0.0.1:9977/healthz || exit $?; i=$((i+1)); done' ||
    fail "a connection during a restart of the daemon failed (curl exit $?)"
active_within routewarden.service 30 || fail "not active after the restart"
[ "$(prop routewarden MainPID)" != "$pid" ] || fail "the daemon was not restarted"
inside systemctl stop routewarden.service
[ "$(prop routewarden.socket ActiveState)" = active ] || fail "stopping the daemon closed its listeners"
inside test -S /run/routewarden/routewarden.sock || fail "stopping the daemon removed the unix socket"
# While it is stopped the port stays systemd's: a connection is queued and starts the daemon, which answers it.
inside curl -sf --max-time 30 --unix-socket /run/routewarden/routewarden.sock http://localhost/healthz >/dev/null ||
    fail "a connection to the held unix socket with the daemon stopped was not answered"
active_within routewarden.service 30 || fail "a connection to the held socket did not start the daemon"

step "remove, then install again: active again (not masked)"
inside dpkg -r routewarden >/dev/null
inside dpkg -i /root/new.deb >/dev/null
[ "$(inside systemctl is-enabled routewarden 2>&1 || true)" = enabled ] || fail "after remove + install: $(inside systemctl is-enabled routewarden 2>&1 || true)"
[ "$(inside systemctl is-enabled routewarden.socket 2>&1 || true)" = enabled ] ||
    fail "after remove + install, routewarden.socket is $(inside systemctl is-enabled routewarden.socket 2>&1 || true)"
active_within routewarden.service 30 || fail "not active after remove + install"

step "an unmet gate holds dependents without a start timeout or a restart, and releases them"
inside mkdir -p /etc/systemd/system/routewarden.service.d
inside sh -c 'printf "[Service]\nTimeoutStartSec=10s\n" > /etc/systemd/system/routewarden.service.d/50-test.conf'
inside sh -c 'printf "[gate]\nrequirements = [\"chain:filter/RW-GATE-TEST\"]\npoll_secs = 1\n" > /etc/routewarden/config.toml'
inside sh -c 'printf "[Unit]\nRequires=routewarden.service\nAfter=routewarden.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n" > /etc/systemd/system/rw-dependent.service'
inside systemctl daemon-reload
inside systemctl stop routewarden
inside systemctl start --no-block rw-dependent.service
held=40
sleep "$held"
[ "$(prop routewarden ActiveState)" = activating ] || fail "the gated daemon is $(prop routewarden ActiveState) after ${held} s (TimeoutStartSec=10s)"
[ "$(prop routewarden NRestarts)" = 0 ] || fail "the gated daemon was restarted $(prop routewarden NRestarts) times"
[ "$(prop rw-dependent ActiveState)" = inactive ] || fail "the dependent started before the gate opened"
inside curl -sf --max-time 5 http://127.0.0.1:9977/readyz >/dev/null && fail "/readyz said ready while the gate is closed"
inside curl -sf --max-time 5 http://127.0.0.1:9977/status >/dev/null || fail "/status does not answer while the gate holds"
echo "  held ${held} s with TimeoutStartSec=10s: daemon activating, 0 restarts, dependent waiting, /status answering"
t0=$(date +%s.%N)
inside iptables -N RW-GATE-TEST
active_within rw-dependent.service 20 || fail "the dependent did not start after the rule appeared"
t1=$(date +%s.%N)
echo "  released $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s after the chain appeared"
inside iptables -X RW-GATE-TEST
inside cp /tmp/config.good /etc/routewarden/config.toml
inside rm -f /etc/systemd/system/routewarden.service.d/50-test.conf /etc/systemd/system/rw-dependent.service
inside systemctl daemon-reload
inside systemctl restart routewarden
active_within routewarden.service 30 || fail "not active after the gate test"

step "findings in the journal carry PRIORITY and FINDING_ID"
# Harness, not product: under nspawn, ProtectKernelTunables= and ProtectControlGroups= remount /proc/sys without
# nspawn's boot_id overlay (measured with systemd-run -p, one property at a time),
# so the unit sees the host's boot id and `journalctl --follow` there never delivers the container's new entries.
# On a real host the boot id is the kernel's own in both places.
inside sh -c 'printf "[Service]\nProtectKernelTunables=no\nProtectControlGroups=no\n" > /etc/systemd/system/routewarden.service.d/60-nspawn-boot-id.conf'
inside systemctl daemon-reload
inside systemctl restart routewarden
inside systemd-run --quiet --unit=kubelet.service /bin/sh -c 'while true; do echo "E1201 10:00:00.000000    1234 kubelet.go:2855] \"Container runtime network not ready\" networkReady=\"NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized\""; sleep 1; done'
found=
for _ in $(seq 1 60); do
    if inside curl -sf --max-time 5 http://127.0.0.1:9977/findings | grep -q cni.not-ready; then found=1; break; fi
    sleep 1
done
[ -n "$found" ] || fail "the daemon did not report cni.not-ready from kubelet.service's journal"
inside journalctl -u routewarden -o json --no-pager | grep '"FINDING_ID":"cni.not-ready"' | grep -q '"PRIORITY"' ||
    fail "no journal entry of routewarden with FINDING_ID=cni.not-ready and PRIORITY"

step "upgrade (older build, then this one): the cursor and the findings are kept"
inside systemctl stop kubelet.service
inside dpkg -i /root/old.deb >/dev/null
active_within routewarden.service 30 || fail "not active after installing the older build"
inside systemctl stop routewarden
cursor=$(inside cat /var/lib/routewarden/journal.cursor)
[ -n "$cursor" ] || fail "no journal cursor saved on stop"
inside systemctl start routewarden
inside dpkg -i /root/new.deb >/dev/null
active_within routewarden.service 30 || fail "not active after the upgrade"
inside test -s /var/lib/routewarden/journal.cursor || fail "the upgrade lost the journal cursor"
# Resumed after the cursor: the kubelet lines of before (60 s of them, inside the 600 s first-start lookback) are
# not read again.
sleep 2
again=$(inside curl -sf --max-time 5 http://127.0.0.1:9977/metrics | sed -n 's/^routewarden_journal_lines_total{unit="kubelet.service"} //p')
[ -z "$again" ] || [ "$again" = 0 ] || fail "after the upgrade the daemon read $again kubelet lines again"
# ... and yet the finding those lines raised survives the restart (the rules' windows are replayed before the
# cursor), although no new kubelet line arrived since.
inside curl -sf --max-time 5 http://127.0.0.1:9977/findings | grep -q cni.not-ready ||
    fail "cni.not-ready did not survive the upgrade's restart"

step "purge removes configuration and state"
inside dpkg --purge routewarden >/dev/null
inside test ! -e /var/lib/routewarden || fail "purge left /var/lib/routewarden"
inside test ! -e /etc/routewarden || fail "purge left /etc/routewarden"
inside test ! -e /lib/systemd/system/routewarden.service || fail "purge left the unit"
inside test ! -e /lib/systemd/system/routewarden.socket || fail "purge left the socket unit"
inside test ! -e /run/routewarden/routewarden.sock || fail "removal left the unix socket"
rc=0; inside curl -s --max-time 5 -o /dev/null http://127.0.0.1:9977/healthz || rc=$?
[ "$rc" = 7 ] || fail "port 9977 is still held after removal (curl exit $rc)"
echo "systemd-nspawn package test: ok"
