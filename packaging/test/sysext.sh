#!/bin/bash
# The systemd-sysext image under a real systemd: boots a Debian 12 root (systemd 252) with systemd-nspawn, puts the
# image in /var/lib/extensions, merges it with systemd-sysext, runs the unit it carries and unmerges it. Run by
# `cargo xtask package-test` as root:
#   sysext.sh ROOT_TAR RAW VERSION WORKDIR
# ROOT_TAR: the debootstrapped root nspawn.sh boots (systemd, curl); RAW: routewarden-<version>-x86-64.raw.
# The container gets the host's loop devices (systemd-sysext attaches the image to one, read-only); everything else
# runs inside its namespaces: the host's network, rules, units and /usr are never touched.
set -euo pipefail
# shellcheck source=packaging/test/boot.sh
. "$(dirname "$0")/boot.sh"

ROOT_TAR=$1 RAW=$2 VERSION=$3 WORK=$4
C=$WORK/sysext-root
LOG=$WORK/sysext-nspawn.log
NSPAWN=

step() { echo "# $*"; }
fail() {
    echo "FAILED: $*" >&2
    if [ -n "$NSPAWN" ]; then
        echo "--- journalctl -u routewarden -u systemd-sysext (last 40) ---" >&2
        inside journalctl --no-pager -n 40 -u routewarden -u systemd-sysext >&2 || true
    fi
    exit 1
}

# systemd's loop device code removes (LOOP_CTL_REMOVE) a loop device it allocated once done with it; the host's
# udev is not watching here, so the node would stay gone from /dev. Put back every loop device the run took.
LOOPS=$(cd /dev && ls -d loop[0-9]* 2>/dev/null | sed 's/^loop//' | tr '\n' ' ')
restore_loops() {
    python3 -c '
import errno, fcntl, os, sys
fd = os.open("/dev/loop-control", os.O_RDWR)
for n in sys.argv[1:]:
    if not os.path.exists("/dev/loop" + n):
        try:
            fcntl.ioctl(fd, 0x4C80, int(n))  # LOOP_CTL_ADD
        except OSError as e:
            if e.errno != errno.EEXIST:
                print("could not restore /dev/loop%s: %s" % (n, e), file=sys.stderr)
' $LOOPS
}

cleanup() {
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        # nspawn turns SIGTERM into an orderly poweroff (which unmerges and detaches the loop device).
        kill -TERM "$NSPAWN" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN" 2>/dev/null || true
        wait "$NSPAWN" 2>/dev/null || true
    fi
    restore_loops
}
trap cleanup EXIT
trap 'echo "FAILED: line $LINENO: $BASH_COMMAND" >&2' ERR

rm -rf "$C" && mkdir -p "$C" && tar -C "$C" -xf "$ROOT_TAR"
systemd-machine-id-setup --root="$C" >/dev/null 2>&1 || true
rm -f "$C/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
# The extension's name is the file's name without .raw: systemd 252 requires it to match extension-release.NAME.
mkdir -p "$C/var/lib/extensions"
cp "$RAW" "$C/var/lib/extensions/routewarden.raw"
# Nothing of routewarden in the root before the merge.
[ ! -e "$C/usr/bin/routewarden" ] && [ ! -e "$C/usr/lib/systemd/system/routewarden.service" ] ||
    fail "the root already has routewarden"

# Loop devices for systemd-sysext: the control device and every loop node the host has (the kernel hands out the
# first free one).
[ -e /dev/loop-control ] && [ -e /dev/loop0 ] || fail "no loop devices on this machine (/dev/loop-control, /dev/loop0)"
binds=(--bind=/dev/loop-control)
for d in /dev/loop[0-9]*; do binds+=("--bind=$d"); done

step "boot (systemd-nspawn --boot, systemd $(tar -xOf "$ROOT_TAR" ./var/lib/dpkg/status | sed -n '/^Package: systemd$/,/^$/s/^Version: //p'))"
boot_container "rw-sysext-$$" "${binds[@]}"

step "systemd-sysext merge"
inside systemd-sysext list --no-pager | grep -q routewarden || fail "systemd-sysext list does not show the image"
inside systemd-sysext merge || fail "systemd-sysext merge failed"
inside systemd-sysext status --no-pager | grep -q routewarden || fail "systemd-sysext status does not show routewarden merged"
got=$(inside /usr/bin/routewarden --version) || fail "/usr/bin/routewarden --version failed"
echo "  $got"
case $got in *" $VERSION"*) ;; *) fail "--version says '$got', not $VERSION" ;; esac
inside test -f /usr/share/routewarden/config.toml || fail "no reference configuration in /usr/share/routewarden"
inside test ! -e /etc/routewarden/config.toml || fail "an /etc/routewarden/config.toml appeared: a sysext cannot ship /etc"
inside routewarden config validate >/dev/null || fail "config validate without /etc/routewarden/config.toml failed"

step "daemon-reload: multi-user.target upholds the unit, which starts, READY, and answers"
inside systemctl daemon-reload
prop multi-user.target Upholds | grep -qw routewarden.service || fail "multi-user.target does not uphold routewarden.service"
active_within routewarden.service 30 || fail "routewarden.service is $(prop routewarden ActiveState) after the merge"
status=$(prop routewarden StatusText)
[ -n "$status" ] || fail "no STATUS= after READY"
echo "  STATUS=$status"
inside curl -sf --max-time 5 http://127.0.0.1:9977/healthz >/dev/null || fail "/healthz did not answer"
inside curl -sf --max-time 5 http://127.0.0.1:9977/status | grep -q '"schema_version"' || fail "/status did not answer"

step "configuration from /etc/routewarden (not in the image): a restart picks it up"
inside mkdir -p /etc/routewarden
# (Not the listen address: routewarden.socket holds 127.0.0.1:9977 and the daemon serves what it inherits.)
inside sh -c 'printf "disabled_sources = [\"ipvs\"]\n" > /etc/routewarden/config.toml'
inside systemctl restart routewarden
active_within routewarden.service 30 || fail "not active with /etc/routewarden/config.toml"
inside sh -c 'curl -sf --max-time 5 "http://127.0.0.1:9977/status?pretty=0" | grep -Eq "\"ipvs\":\{[^}]*\"status\":\"disabled\""' \
    || fail "the daemon did not take /etc/routewarden/config.toml (ipvs not disabled in /status)"
inside rm -f /etc/routewarden/config.toml

step "opt out of the autostart by masking the drop-in"
inside mkdir -p /etc/systemd/system/multi-user.target.d
inside ln -sf /dev/null /etc/systemd/system/multi-user.target.d/10-routewarden.conf
inside systemctl daemon-reload
inside systemctl stop routewarden
sleep 2
[ "$(prop routewarden ActiveState)" = inactive ] || fail "routewarden.service came back ($(prop routewarden ActiveState)) with the drop-in masked"
inside rm -f /etc/systemd/system/multi-user.target.d/10-routewarden.conf

step "systemd-sysext unmerge leaves nothing of it in /usr"
# As docs/install.md says: stop the units (the socket too, or a connection starts the daemon again) first.
inside systemctl stop routewarden.socket routewarden.service
inside systemd-sysext unmerge || fail "systemd-sysext unmerge failed"
inside systemctl daemon-reload
for f in /usr/bin/routewarden /usr/lib/systemd/system/routewarden.service /usr/lib/systemd/system/routewarden-wait@.service \
    /usr/lib/systemd/system/routewarden.socket \
    /usr/lib/systemd/system/multi-user.target.d/10-routewarden.conf /usr/share/routewarden \
    /usr/lib/extension-release.d/extension-release.routewarden; do
    inside test ! -e "$f" || fail "$f is still there after unmerge"
done
[ "$(prop routewarden LoadState)" = not-found ] || fail "routewarden.service is still $(prop routewarden LoadState) after unmerge"
if inside findmnt -n -t overlay /usr >/dev/null; then fail "/usr is still an overlay after unmerge"; fi
echo "systemd-sysext test: ok"
