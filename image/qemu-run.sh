#!/usr/bin/env bash
# image/qemu-run.sh: boot a musehub x86_64 disk image in QEMU (UEFI firmware OVMF, TCG: no KVM).
#
#   image/qemu-run.sh [options] IMAGE [-- extra qemu arguments]
#
#   IMAGE                 the disk: .img (raw) or .qcow2; it is written to (the data partition
#                         grows on the first boot), so pass a copy
#   --run-dir DIR         where the serial log, monitor sockets and firmware variables go
#                         (default: a new directory from mktemp -d, printed on stderr)
#   --serial-log FILE     serial console (ttyS0) log          (default: RUN_DIR/serial.log)
#   --monitor SOCK        HMP monitor, unix socket            (default: RUN_DIR/monitor.sock)
#   --qmp SOCK            QMP monitor, unix socket            (default: RUN_DIR/qmp.sock)
#   --hostport PORT       host port forwarded to the guest's 443, on 127.0.0.1 (default 8443;
#                         0 for none)
#   --guestfwd RULE       one more slirp guestfwd rule (repeatable), e.g.
#                           'tcp:10.0.2.100:8080-cmd:socat - TCP:127.0.0.1:PORT'
#                         the guest reaches host services only through these (restrict=on);
#                         a comma inside RULE must be doubled (QEMU option syntax)
#   --mem MIB             memory (default 1024)     --smp N   CPUs (default 2)
#
# Environment: the same settings as QEMU_RUN_DIR, QEMU_SERIAL_LOG, QEMU_MONITOR, QEMU_QMP,
# QEMU_HOSTPORT, QEMU_GUESTFWD (rules separated by newlines), QEMU_MEM, QEMU_SMP, and OVMF_CODE,
# OVMF_VARS (firmware files; found under /usr/share/OVMF or /usr/share/ovmf by default).
#
# QEMU runs in the foreground (this script execs it, so its pid is this script's pid) with no
# display. Controlling it from a test:
#   echo system_powerdown | socat - UNIX-CONNECT:RUN_DIR/monitor.sock   # ACPI power button
#   echo system_reset     | socat - UNIX-CONNECT:RUN_DIR/monitor.sock   # reset
# The firmware variables file is a fresh copy for every run (RUN_DIR/OVMF_VARS.fd).
set -euo pipefail

RUN_DIR=${QEMU_RUN_DIR:-}
SERIAL_LOG=${QEMU_SERIAL_LOG:-}
MONITOR=${QEMU_MONITOR:-}
QMP=${QEMU_QMP:-}
HOSTPORT=${QEMU_HOSTPORT:-8443}
MEM=${QEMU_MEM:-1024}
SMP=${QEMU_SMP:-2}
GUESTFWD=()
if [[ -n ${QEMU_GUESTFWD:-} ]]; then
    while IFS= read -r rule; do [[ -n $rule ]] && GUESTFWD+=("$rule"); done <<<"$QEMU_GUESTFWD"
fi
IMAGE=
EXTRA=()

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit "${1:-2}"; }
while (($#)); do
    case $1 in
        --run-dir) RUN_DIR=${2:?}; shift 2 ;;
        --serial-log) SERIAL_LOG=${2:?}; shift 2 ;;
        --monitor) MONITOR=${2:?}; shift 2 ;;
        --qmp) QMP=${2:?}; shift 2 ;;
        --hostport) HOSTPORT=${2:?}; shift 2 ;;
        --guestfwd) GUESTFWD+=("${2:?}"); shift 2 ;;
        --mem) MEM=${2:?}; shift 2 ;;
        --smp) SMP=${2:?}; shift 2 ;;
        -h|--help) usage 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) echo "qemu-run.sh: unknown option $1" >&2; usage ;;
        *) [[ -z $IMAGE ]] || { echo "qemu-run.sh: one image only" >&2; usage; }; IMAGE=$1; shift ;;
    esac
done
[[ -n $IMAGE ]] || usage
[[ -f $IMAGE ]] || { echo "qemu-run.sh: no such image: $IMAGE" >&2; exit 1; }

find_fw() {  # the first of the candidate files that exists
    local f
    for f in "$@"; do [[ -f $f ]] && { echo "$f"; return; }; done
    echo "qemu-run.sh: OVMF firmware not found (apt-get install ovmf, or set OVMF_CODE/OVMF_VARS)" >&2
    exit 1
}
OVMF_CODE=${OVMF_CODE:-$(find_fw /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd \
    /usr/share/ovmf/OVMF_CODE_4M.fd /usr/share/ovmf/OVMF_CODE.fd /usr/share/edk2/ovmf/OVMF_CODE.fd)}
OVMF_VARS=${OVMF_VARS:-$(find_fw /usr/share/OVMF/OVMF_VARS_4M.fd /usr/share/OVMF/OVMF_VARS.fd \
    /usr/share/ovmf/OVMF_VARS_4M.fd /usr/share/ovmf/OVMF_VARS.fd /usr/share/edk2/ovmf/OVMF_VARS.fd)}

if [[ -z $RUN_DIR ]]; then
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/musehub-qemu.XXXXXX")
    echo "qemu-run.sh: run dir $RUN_DIR" >&2
fi
mkdir -p "$RUN_DIR"
SERIAL_LOG=${SERIAL_LOG:-$RUN_DIR/serial.log}
MONITOR=${MONITOR:-$RUN_DIR/monitor.sock}
QMP=${QMP:-$RUN_DIR/qmp.sock}
cp "$OVMF_VARS" "$RUN_DIR/OVMF_VARS.fd"
rm -f "$MONITOR" "$QMP"

case $IMAGE in
    *.qcow2) FORMAT=qcow2 ;;
    *) FORMAT=raw ;;
esac

# User networking, closed to the outside (restrict=on): the guest gets DHCP from QEMU, the
# host reaches its 443 on 127.0.0.1:HOSTPORT, and it reaches host services only through
# the guestfwd rules.
NETDEV=user,id=n0,restrict=on
[[ $HOSTPORT != 0 ]] && NETDEV+=",hostfwd=tcp:127.0.0.1:$HOSTPORT-:443"
for rule in "${GUESTFWD[@]}"; do NETDEV+=",guestfwd=$rule"; done

exec qemu-system-x86_64 \
    -name musehub \
    -machine q35 -accel tcg,thread=multi -cpu max -m "$MEM" -smp "$SMP" \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE" \
    -drive if=pflash,format=raw,unit=1,file="$RUN_DIR/OVMF_VARS.fd" \
    -drive file="$IMAGE",if=virtio,format="$FORMAT" \
    -netdev "$NETDEV" -device virtio-net-pci,netdev=n0 \
    -device virtio-rng-pci \
    -display none -vga none \
    -chardev file,id=serial0,path="$SERIAL_LOG" -serial chardev:serial0 \
    -monitor unix:"$MONITOR",server=on,wait=off \
    -qmp unix:"$QMP",server=on,wait=off \
    "${EXTRA[@]}"
