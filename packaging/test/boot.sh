# shellcheck shell=bash
# Sourced by nspawn.sh and sysext.sh: boots the Debian root at $C with systemd-nspawn (systemd as PID 1, its own
# network namespace) and gives the helpers both use. The caller defines C, LOG, step and fail, and sets NSPAWN= first.

# boot_container MACHINE [NSPAWN-ARG...]: boots, waits until systemd reports running (or degraded), brings up lo.
# Sets NSPAWN (nspawn's pid, for the caller's cleanup) and LEADER (the container's PID 1 on the host).
# --keep-unit: no machined on the host bus; --system-call-filter=bpf: nspawn's own seccomp filter refuses bpf().
boot_container() {
    local machine=$1
    shift
    systemd-nspawn -D "$C" --boot --register=no --keep-unit --private-network --console=read-only \
        --capability=all --system-call-filter=bpf "$@" --machine="$machine" >"$LOG" 2>&1 &
    NSPAWN=$!
    LEADER=
    for _ in $(seq 1 100); do
        LEADER=$(ps -o pid= --ppid "$NSPAWN" | tr -d ' ' | head -1 || true)
        [ -n "$LEADER" ] && [ "$(cat /proc/"$LEADER"/comm 2>/dev/null)" = systemd ] && break
        LEADER=
        sleep 0.1
    done
    [ -n "$LEADER" ] || { cat "$LOG" >&2; fail "the container's systemd did not start"; }
    local state=
    for _ in $(seq 1 150); do
        state=$(inside systemctl is-system-running 2>/dev/null || true)
        case $state in running|degraded) break ;; esac
        sleep 0.2
    done
    case $state in running|degraded) ;; *) fail "the container did not finish booting (state: $state)" ;; esac
    inside ip link set lo up
}

# Runs a command in every namespace of the container.
inside() { nsenter -t "$LEADER" -m -u -i -n -p -C -- "$@"; }
# prop UNIT PROPERTY
prop() { inside systemctl show -P "$2" "$1"; }
# active_within UNIT SECONDS
active_within() {
    for _ in $(seq 1 $(($2 * 5))); do [ "$(prop "$1" ActiveState)" = active ] && return 0; sleep 0.2; done
    return 1
}
