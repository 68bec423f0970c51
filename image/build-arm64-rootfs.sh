#!/bin/sh
# Build the root file system tree of the arm64 (Raspberry Pi 4) musehub image.
#
#   sudo [MUSEHUB_BIN=path/to/aarch64/musehub] image/build-arm64-rootfs.sh [--first-stage-only] DIR
#
# 1. debootstrap --foreign --arch=arm64 --variant=minbase: downloads the arm64 packages and
#    unpacks the essential ones. Runs on any architecture.
# 2. The image's own files (image/rootfs/, shared with the x86_64 image), copied in before the
#    packages are installed, so that their dpkg excludes and initramfs settings already apply.
# 3. debootstrap --second-stage: the packages' maintainer scripts, which are arm64 programs.
#    Runs when this machine can execute arm64 code: natively on an arm64 host, or on x86_64
#    through qemu-user-static in binfmt_misc (the script mounts binfmt_misc and registers
#    Debian's /usr/lib/binfmt.d/qemu-aarch64.conf when qemu-user-static is installed and
#    nothing is registered yet). Otherwise it stops after the first stage (exit code 3).
# 4. The same configuration as image/build.sh gives the x86_64 root: hostname, accounts
#    (musehub uid/gid 900, root locked), units, no apt timers, slimmed kernel modules; then the
#    Pi's boot files: raspi-firmware's hook writes the kernel, initrd, DTBs, GPU firmware,
#    config.txt and cmdline.txt (root=PARTUUID= of slot A) to DIR/boot/firmware, the contents
#    of the FAT partition, joined by musehub.toml and README.txt from image/boot/.
#
# Environment:
#   MUSEHUB_BIN      aarch64 musehub binary for /usr/bin/musehub (optional; see arm64.md)
#   PARTUUID_BOOT, PARTUUID_ROOT_A, PARTUUID_DATA
#                    partition UUIDs the disk assembly will use; default: the fixed ones in
#                    image/build.sh (same layout, same identities as the x86_64 image)
#   MIRROR           Debian mirror (default http://deb.debian.org/debian)
#
# Making the disk image from DIR: image/arm64.md.
set -eu
umask 022
export LC_ALL=C

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=image/slim-modules.sh
. "$HERE/slim-modules.sh"

# The x86_64 image's packages (image/build.sh PACKAGES, keep in step) less its kernel and boot
# loader (linux-image-amd64, systemd-boot-efi) ...
COMMON_PACKAGES="systemd systemd-sysv udev dbus systemd-resolved systemd-timesyncd
initramfs-tools zstd dosfstools e2fsprogs kmod iproute2"
# ... plus the Pi's kernel and boot firmware. raspi-firmware (component non-free-firmware) has
# the GPU firmware (start4.elf, fixup4.dat, ...) and the kernel/initramfs hooks that copy the
# kernel, the initrd and the DTBs to /boot/firmware and write config.txt and cmdline.txt.
ARM64_PACKAGES="linux-image-arm64 raspi-firmware"

first_stage_only=no
case "${1:-}" in
--first-stage-only) first_stage_only=yes; shift ;;
esac
[ $# -eq 1 ] || { echo "usage: $0 [--first-stage-only] DIR" >&2; exit 2; }
DIR=$1

die() { echo "build-arm64-rootfs.sh: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot)"
for tool in debootstrap chroot systemctl useradd groupadd; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[ -d "$HERE/rootfs" ] || die "image/rootfs/ is missing (the files shared with the x86_64 image)"
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
	die "$DIR exists and is not empty"
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# The partition identities of image/build.sh, unless given.
fixed() { sed -n "s/^$1=\([0-9a-f-]*\).*/\1/p" "$HERE/build.sh" 2>/dev/null | head -n 1; }
PARTUUID_BOOT=${PARTUUID_BOOT:-$(fixed PARTUUID_BOOT)}
PARTUUID_ROOT_A=${PARTUUID_ROOT_A:-$(fixed PARTUUID_ROOT_A)}
PARTUUID_DATA=${PARTUUID_DATA:-$(fixed PARTUUID_DATA)}
for v in "$PARTUUID_BOOT" "$PARTUUID_ROOT_A" "$PARTUUID_DATA"; do
	[ -n "$v" ] || die "set PARTUUID_BOOT, PARTUUID_ROOT_A and PARTUUID_DATA (none in image/build.sh)"
done

# --- 1. first stage -----------------------------------------------------------------------------
log "first stage: debootstrap --foreign --arch=arm64 --variant=minbase $SUITE"
t0=$(date +%s)
# shellcheck disable=SC2086 # word splitting of the package lists is wanted
debootstrap --foreign --arch=arm64 --variant=minbase \
	--components=main,non-free-firmware \
	--include="$(echo $COMMON_PACKAGES $ARM64_PACKAGES | tr ' ' ',')" \
	"$SUITE" "$DIR" "$MIRROR"
t1=$(date +%s)
log "first stage: $((t1 - t0)) s, $(du -sh "$DIR" | cut -f1)"
if [ "$first_stage_only" = yes ]; then
	log "stopping after the first stage (--first-stage-only)"
	exit 0
fi

# --- can this machine run arm64 programs? -------------------------------------------------------
can_run_arm64() { chroot "$DIR" /bin/true 2>/dev/null; }
register_qemu_binfmt() {
	conf=/usr/lib/binfmt.d/qemu-aarch64.conf # from qemu-user-static
	bm=/proc/sys/fs/binfmt_misc
	[ -f "$conf" ] || return 1
	[ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || return 1
	[ -e "$bm/qemu-aarch64" ] && return 0
	# Debian's entry has the F flag: the kernel opens the static qemu at registration, so it
	# runs inside the chroot without a copy of qemu there.
	log "registering $conf in binfmt_misc"
	grep -v '^#' "$conf" >"$bm/register"
}
can_run_arm64 || register_qemu_binfmt || true
if ! can_run_arm64; then
	log "this machine cannot run arm64 programs (not an arm64 CPU, no qemu-aarch64 in binfmt_misc)."
	log "Second stage not run. On an arm64 machine: chroot $DIR /debootstrap/debootstrap --second-stage,"
	log "or run this script there from the start."
	exit 3
fi

# --- 2. the image's own files -------------------------------------------------------------------
# Before the second stage: etc/dpkg/dpkg.cfg.d keeps documentation, man pages and translations
# out while the packages are unpacked, and etc/initramfs-tools shapes the initrd that the
# kernel's postinst builds, so it is built once (twice, with the initramfs-tools trigger) and
# not again. No file here belongs to a package.
log "copying image/rootfs/ (shared with the x86_64 image)"
cp -r --no-preserve=ownership "$HERE/rootfs/." "$DIR/"
sed -i -e "s/@PARTUUID_BOOT@/$PARTUUID_BOOT/" -e "s/@PARTUUID_DATA@/$PARTUUID_DATA/" "$DIR/etc/fstab"
! grep -q '@[A-Z_]*@' "$DIR/etc/fstab" || die "etc/fstab has an unknown @PLACEHOLDER@"
# raspi-firmware's hooks write the boot files here; in the running image the FAT partition is
# mounted here (etc/fstab), which is where Debian's raspi-firmware expects it.
mkdir -p "$DIR/boot/firmware"

# --- 3. second stage ----------------------------------------------------------------------------
log "second stage: debootstrap --second-stage (arm64 programs run $(if [ "$(uname -m)" = aarch64 ]; then echo natively; else echo through qemu-user; fi))"
t2=$(date +%s)
chroot "$DIR" /debootstrap/debootstrap --second-stage
t3=$(date +%s)
log "second stage: $((t3 - t2)) s, $(du -sh "$DIR" | cut -f1)"

# --- 4. configuration, as image/build.sh does for x86_64 ----------------------------------------
log "configuring"
in_root() { chroot "$DIR" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }
install -m 0644 "$REPO/systemd/musehub.service" "$DIR/etc/systemd/system/musehub.service"
install -D -m 0644 "$REPO/README.md" "$DIR/usr/share/doc/musehub/README.md"
if [ -n "${MUSEHUB_BIN:-}" ]; then
	# ELF e_machine 0xb7 (183) is aarch64.
	[ "$(od -An -tx1 -j18 -N2 "$MUSEHUB_BIN" | tr -d ' \n')" = b700 ] ||
		die "MUSEHUB_BIN=$MUSEHUB_BIN is not an aarch64 ELF binary"
	install -m 0755 "$MUSEHUB_BIN" "$DIR/usr/bin/musehub"
	if command -v aarch64-linux-gnu-strip >/dev/null; then
		aarch64-linux-gnu-strip "$DIR/usr/bin/musehub"
	fi
else
	log "MUSEHUB_BIN not set: the tree has no /usr/bin/musehub"
fi

# etc/hostname and etc/hosts come from image/rootfs/ (debootstrap copied the build host's).
: >"$DIR/etc/machine-id" # empty: systemd makes one on the first boot
rm -f "$DIR/var/lib/dbus/machine-id"
ln -sf /run/systemd/resolve/stub-resolv.conf "$DIR/etc/resolv.conf"

# Accounts: root cannot log in; the hub runs as the system user musehub (900). The build
# host's tools edit the tree's /etc (no arm64 program needed).
usermod --root "$DIR" --lock root
groupadd --root "$DIR" --system --gid 900 musehub
useradd --root "$DIR" --system --uid 900 --gid musehub --home-dir /var/lib/musehub \
	--no-create-home --shell /usr/sbin/nologin --comment musehub musehub
mkdir -p "$DIR/var/lib/musehub"
chmod 0700 "$DIR/var/lib/musehub"

# Units, enabled offline (systemctl --root only links files).
systemctl --root="$DIR" --quiet enable systemd-networkd.service systemd-resolved.service \
	systemd-timesyncd.service musehub-setup.service musehub.service
systemctl --root="$DIR" --quiet disable apt-daily.timer apt-daily-upgrade.timer \
	dpkg-db-backup.timer e2scrub_all.timer 2>/dev/null || true
# No login prompt on the serial console (ttyS1 on the Pi 3/4, see CONSOLES below).
systemctl --root="$DIR" --quiet mask serial-getty@ttyS1.service

# Kernel modules no appliance needs, as on x86_64 (image/build.sh), except that the Pi keeps
# drm/vc4, its HDMI driver: the setup link is shown on a screen plugged into the box. None of
# these is in the initrd, which therefore stays as the second stage built it.
KVER=$(ls "$DIR/usr/lib/modules")
[ "$(echo "$KVER" | wc -w)" -eq 1 ] || die "expected one kernel, found: $KVER"
modules_before=$(du -sm "$DIR/usr/lib/modules" | cut -f1)
slim_modules "$DIR/usr/lib/modules/$KVER" vc4   # the Pi's HDMI
in_root depmod -a "$KVER"
log "kernel modules: $modules_before MiB -> $(du -sm "$DIR/usr/lib/modules" | cut -f1) MiB"

# --- 5. the Pi's boot files ---------------------------------------------------------------------
# raspi-firmware's kernel hook (/etc/kernel/postinst.d/z50-raspi-firmware) ran in the second
# stage and wrote /boot/firmware: GPU firmware, kernel, initrd, every bcm*.dtb of
# /usr/lib/linux-image-*/broadcom/, config.txt and cmdline.txt. Its settings come from
# /etc/default/raspi-firmware (a conffile of the package), so they are set now and the hook
# run again; on the Pi it runs on every kernel or initramfs update with the same settings.
#   ROOTPART  root= of cmdline.txt: slot A by PARTUUID, so that SD, USB and NVMe boot alike.
#   CMA=0     no cma=: the hook decides "Pi 4 or not" from the build host's
#             /sys/firmware/devicetree, so in a chroot it writes cma=64M, which its own comment
#             says can leave a Pi 4 unbootable. The hub is headless and needs no CMA pool.
#   CONSOLES  serial (ttyS1 on the Pi 3/4) and HDMI, last one for the boot messages; probing
#             them in a chroot would see the build host's devices.
cat >>"$DIR/etc/default/raspi-firmware" <<EOF

# musehub image (image/build-arm64-rootfs.sh):
ROOTPART=PARTUUID=$PARTUUID_ROOT_A
CMA=0
CONSOLES="ttyS1,115200 tty0"
EOF
# Appended to cmdline.txt: as the x86_64 boot entry, reboot 10 s after a panic, and no
# systemd-gpt-auto-generator (fstab names the partitions).
echo "panic=10 systemd.gpt_auto=0" >"$DIR/etc/default/raspi-extra-cmdline"
mount -t proc proc "$DIR/proc" # the hook's ischroot needs /proc to see the chroot
trap 'umount "$DIR/proc" 2>/dev/null || true' EXIT
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
umount "$DIR/proc"
trap - EXIT
install -m 0644 "$HERE/boot/musehub.toml" "$DIR/boot/firmware/musehub.toml"
[ ! -f "$HERE/boot/README.txt" ] || install -m 0644 "$HERE/boot/README.txt" "$DIR/boot/firmware/README.txt"

# --- 6. slim ------------------------------------------------------------------------------------
# dpkg already left out documentation, man pages and translations (etc/dpkg/dpkg.cfg.d).
rm -rf "$DIR/var/lib/apt/lists/"* "$DIR/var/cache/apt/"*.bin "$DIR/var/cache/apt/archives/"*.deb \
	"$DIR/var/lib/dpkg/"*-old "$DIR/var/cache/debconf/"*-old "$DIR/debootstrap" \
	"$DIR/etc/passwd-" "$DIR/etc/group-" "$DIR/etc/shadow-" "$DIR/etc/gshadow-"
mkdir -p "$DIR/var/lib/apt/lists/partial"
find "$DIR/var/log" -type f -delete

t4=$(date +%s)
root_mib=$(du -sm --exclude="$DIR/boot/firmware" "$DIR" | cut -f1)
fat_mib=$(du -sm "$DIR/boot/firmware" | cut -f1)
log "done in $((t4 - t0)) s: root file system $root_mib MiB, FAT contents (DIR/boot/firmware) $fat_mib MiB"
