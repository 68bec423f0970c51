#!/usr/bin/env bash
# image/build.sh: build the x86_64 musehub appliance disk image (Debian bookworm, UEFI).
#
#   sudo image/build.sh --binary PATH --out DIR [--version V] [--rootfs-cache DIR]
#
#   --binary PATH       the musehub executable, installed as /usr/bin/musehub (stripped)
#   --out DIR           where the outputs go (created if missing)
#   --version V         image version (default: the version in Cargo.toml)
#   --rootfs-cache DIR  reuse a finished debootstrap of the same package list kept in DIR
#                       (made there on the first run); without it, debootstrap from scratch
#
# Environment: SOURCE_DATE_EPOCH (default: time of the last git commit), MIRROR (default
# http://deb.debian.org/debian), ZSTD_LEVEL (default 10; 19 makes a 6% smaller .zst and takes
# ten times longer), KEEP_WORK=1 keeps the work directory.
#
# Outputs in DIR: musehub-V-x86_64.img (raw GPT disk), .img.zst, .qcow2, .packages.txt
# (dpkg-query -W of the root file system) and .layout.json (sfdisk --json of the image).
#
# No loop devices and no mounts: the file systems are made from directories into plain files
# (mkfs.ext4 -d, mkfs.vfat -C + mcopy) and copied into the disk file with dd. Only debootstrap
# itself chroots (and mounts /proc in the target while it runs). See image/README.md.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=image/slim-modules.sh
source "$HERE/slim-modules.sh"
REPO=$(cd "$HERE/.." && pwd)

SUITE=bookworm
ARCH=amd64
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ZSTD_LEVEL=${ZSTD_LEVEL:-10}

# Packages on top of debootstrap's minbase (their dependencies come along, recommends do not).
PACKAGES=(
    systemd systemd-sysv udev dbus          # init; dbus for logind (power button) and networkd
    systemd-resolved systemd-timesyncd      # DNS stub resolver; NTP (a Pi has no RTC)
    linux-image-amd64 initramfs-tools zstd  # kernel; initrd compressed with zstd
    systemd-boot-efi                        # the boot loader copied to the ESP
    dosfstools e2fsprogs kmod iproute2      # fsck for the boot/root/data partitions, modules, ip
)

# ---- fixed identities: same inputs give the same bytes -------------------------------------
DISK_GUID=ace50673-02bf-42ea-a060-3332ecc7bd0a
PARTUUID_BOOT=35341368-6117-4c1e-857f-b6baddbacf63
PARTUUID_ROOT_A=3b40a4ef-c0a4-4eac-9d21-d43ec496e7aa
PARTUUID_ROOT_B=37660a5a-72cd-4666-97fe-b38749da3adb
PARTUUID_DATA=2170cb67-39f6-46cf-932c-328b7a53538a
FSUUID_ROOT_A=33bf5d67-42b3-4147-9cd1-027c6bb38c74
HASHSEED_ROOT_A=f7157c3f-2279-4eff-b914-3a8380e2126c
FSUUID_DATA=b379a28d-cca1-454b-9797-c711343e3d7a
HASHSEED_DATA=748a4792-3525-4e77-928c-cf7446b21fec
FAT_VOLID=4d555345                       # "MUSE", shown as 4D55-5345
MUSEHUB_UID=900                          # system user and group "musehub"

# GPT partition types
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_ROOT_X86_64=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
TYPE_LINUX_DATA=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# ---- sizes (MiB) ----------------------------------------------------------------------------
ESP_MIB=256
ROOT_MIB=1024   # each root slot; fixed for the life of an installed disk, so updates must fit
DATA_MIB=128    # grown to fill the disk on first boot (systemd-repart + x-systemd.growfs)
ROOT_MAX_FILL=60   # refuse to build when the root file system would be fuller than this (%)

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit "${1:-2}"; }
die() { echo "build.sh: $*" >&2; exit 1; }

BINARY= OUT= VERSION= CACHE=
while (($#)); do
    case $1 in
        --binary) BINARY=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --version) VERSION=${2:?}; shift 2 ;;
        --rootfs-cache) CACHE=${2:?}; shift 2 ;;
        --binary=*) BINARY=${1#*=}; shift ;;
        --out=*) OUT=${1#*=}; shift ;;
        --version=*) VERSION=${1#*=}; shift ;;
        --rootfs-cache=*) CACHE=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n $BINARY && -n $OUT ]] || usage
[[ $(id -u) == 0 ]] || die "run as root (debootstrap and chroot need it)"
[[ -f $BINARY && -x $BINARY ]] || die "--binary $BINARY is not an executable file"
for tool in debootstrap chroot mkfs.ext4 debugfs dumpe2fs mkfs.vfat mcopy sfdisk zstd qemu-img strip systemctl; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ $(uname -m) == x86_64 ]] || die "this builds the x86_64 image on an x86_64 host"

if [[ -z $VERSION ]]; then
    VERSION=$(awk -F'"' '/^\[/{pkg=($0=="[package]")} pkg && /^version *=/{print $2; exit}' "$REPO/Cargo.toml")
    [[ -n $VERSION ]] || die "no version in Cargo.toml; pass --version"
fi
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || true)
    [[ -n $SOURCE_DATE_EPOCH ]] || die "no git history: set SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BINARY=$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")
NAME=musehub-$VERSION-x86_64
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
R=$WORK/rootfs
DEBOOTSTRAP_TARGET=$R

cleanup() {
    local rc=$?
    # debootstrap unmounts what it mounted; this catches an interrupted run.
    for m in proc sys dev/pts dev; do
        mountpoint -q "$DEBOOTSTRAP_TARGET/$m" 2>/dev/null && umount -l "$DEBOOTSTRAP_TARGET/$m"
    done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T_START=$(date +%s)
T_PHASE=$T_START
PHASE=
TIMES=()
phase() {
    local now; now=$(date +%s)
    [[ -n $PHASE ]] && TIMES+=("$(printf '%-22s %5ds' "$PHASE" $((now - T_PHASE)))")
    [[ -n $PHASE ]] && echo "    ($PHASE: $((now - T_PHASE))s)"
    PHASE=$1 T_PHASE=$now
    [[ $1 == end ]] || echo "==> $1"
}
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TZ=UTC \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"; }
mib_of() { du -s --block-size=1M "$1" | cut -f1; }

echo "musehub image $NAME (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH), work dir $WORK"

# ---- 1. debootstrap (or the cache) ----------------------------------------------------------
phase debootstrap
PKGLIST=$(printf '%s\n' "$SUITE" "$ARCH" "$MIRROR" minbase "${PACKAGES[@]}" | sort | tr '\n' ' ')
run_debootstrap() {
    local target=$1
    DEBOOTSTRAP_TARGET=$target
    if ! debootstrap --variant=minbase --arch="$ARCH" --components=main \
            --include="$(IFS=,; echo "${PACKAGES[*]}")" \
            "$SUITE" "$target" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 40 "$WORK/debootstrap.log" >&2
        [[ -f $target/debootstrap/debootstrap.log ]] && tail -n 40 "$target/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    fi
}
if [[ -n $CACHE ]]; then
    mkdir -p "$CACHE"
    CACHE=$(cd "$CACHE" && pwd)
    if [[ -f $CACHE/stamp && $(cat "$CACHE/stamp") == "$PKGLIST" && -d $CACHE/rootfs ]]; then
        echo "    reusing the debootstrap in $CACHE"
    else
        echo "    debootstrap into the cache $CACHE (from scratch)"
        rm -rf "$CACHE/rootfs" "$CACHE/rootfs.new" "$CACHE/stamp"
        run_debootstrap "$CACHE/rootfs.new"
        mv "$CACHE/rootfs.new" "$CACHE/rootfs"
        printf '%s' "$PKGLIST" >"$CACHE/stamp"
    fi
    cp -a "$CACHE/rootfs" "$R"
else
    run_debootstrap "$R"
fi
KVER=$(ls "$R/usr/lib/modules")
[[ $(wc -w <<<"$KVER") == 1 ]] || die "expected one kernel in the root file system, found: $KVER"
ROOTFS_MIB_DEBOOTSTRAP=$(mib_of "$R")

# ---- 2. configure ---------------------------------------------------------------------------
phase configure
# The image's own files (units, network, fstab, ...), mirroring their target paths.
cp -r --no-preserve=ownership "$HERE/rootfs/." "$R/"
sed -i -e "s/@PARTUUID_BOOT@/$PARTUUID_BOOT/" -e "s/@PARTUUID_DATA@/$PARTUUID_DATA/" "$R/etc/fstab"
grep -q "^[^#]*@" "$R/etc/fstab" && die "etc/fstab has an unknown @PLACEHOLDER@"
install -m 0644 "$REPO/systemd/musehub.service" "$R/etc/systemd/system/musehub.service"
install -D -m 0644 "$REPO/README.md" "$R/usr/share/doc/musehub/README.md"

# The hub itself, without its symbol table.
cp "$BINARY" "$WORK/musehub"
BIN_SIZE_IN=$(stat -c %s "$WORK/musehub")
if [[ $(head -c 4 "$WORK/musehub" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
    strip "$WORK/musehub"
fi
BIN_SIZE_OUT=$(stat -c %s "$WORK/musehub")
install -m 0755 "$WORK/musehub" "$R/usr/bin/musehub"
echo "    /usr/bin/musehub: $BIN_SIZE_IN bytes, $BIN_SIZE_OUT after strip"

# etc/hostname and etc/hosts come from image/rootfs/ (debootstrap copied the build host's).
: >"$R/etc/machine-id"                   # empty: systemd makes one on the first boot
rm -f "$R/var/lib/dbus/machine-id"
ln -sf /run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"

# Accounts: root cannot log in; the hub runs as the system user musehub.
in_root passwd --lock root >/dev/null
in_root groupadd --system --gid "$MUSEHUB_UID" musehub
in_root useradd --system --uid "$MUSEHUB_UID" --gid musehub --home-dir /var/lib/musehub \
    --no-create-home --shell /usr/sbin/nologin --comment "musehub" musehub

# Mount points (the boot and data partitions; see etc/fstab).
mkdir -p "$R/boot/firmware" "$R/var/lib/musehub"
chmod 0700 "$R/var/lib/musehub"

# Services, enabled offline.
systemctl --root="$R" --quiet enable systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service musehub-setup.service musehub.service
# An appliance is updated as a whole image: no apt timers, no daily dpkg database backup,
# no e2scrub (it needs LVM snapshots).
systemctl --root="$R" --quiet disable apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer 2>/dev/null || true
# No login prompts: nobody can log in, the getty on tty1 would clear the screen showing the
# sign-in link, and while a getty (Type=idle) shares the console with musehub-setup systemd
# stops printing its status lines, which the serial log must show.
systemctl --root="$R" --quiet disable getty@tty1.service
systemctl --root="$R" --quiet mask serial-getty@ttyS0.service

# ---- 3. slim --------------------------------------------------------------------------------
phase slim
ROOTFS_MIB_BEFORE=$(mib_of "$R")
# Documentation (the copyright files stay: they are the licences), man pages, locales.
rm -rf "$R/usr/share/man" "$R/usr/share/info" "$R/usr/share/lintian" "$R/usr/share/linda" \
    "$R/usr/share/bug" "$R/usr/share/doc-base" "$R/usr/share/locale"/*/ "$R/usr/share/i18n"
find "$R/usr/share/doc" -mindepth 1 ! -type d ! -type l ! -name copyright \
    ! -path '*/usr/share/doc/musehub/*' -delete
find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete
# apt lists and caches, debootstrap's downloaded packages, logs and backups.
rm -rf "$R/var/lib/apt/lists"/* "$R/var/cache/apt"/*.bin "$R/var/cache/apt/archives"/*.deb \
    "$R/var/cache/ldconfig/aux-cache" "$R/var/lib/dpkg"/*-old "$R/var/cache/debconf"/*-old \
    "$R/etc"/{passwd,group,shadow,gshadow,subuid,subgid}- "$R/debootstrap"
mkdir -p "$R/var/lib/apt/lists/partial"
find "$R/var/log" -type f -delete
find "$R/tmp" "$R/var/tmp" -mindepth 1 -delete
# Kernel modules no appliance needs (image/slim-modules.sh says which).
MODULES_MIB_BEFORE=$(mib_of "$R/usr/lib/modules/$KVER")
slim_modules "$R/usr/lib/modules/$KVER"
in_root depmod -a "$KVER"
MODULES_MIB_AFTER=$(mib_of "$R/usr/lib/modules/$KVER")
# The initrd, rebuilt for what is left (COMPRESS=zstd, see etc/initramfs-tools/conf.d).
# mkinitramfs only clamps times newer than SOURCE_DATE_EPOCH and some copies escape it
# (etc/ld.so.conf.d): date the whole tree first, so the initrd does not depend on when the
# debootstrap ran.
find "$R" -xdev -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
in_root update-initramfs -u -k "$KVER" >"$WORK/initramfs.log" 2>&1 ||
    { cat "$WORK/initramfs.log" >&2; die "update-initramfs failed"; }
ROOTFS_MIB_AFTER=$(mib_of "$R")

# ---- 4. normalize ---------------------------------------------------------------------------
phase normalize
# Password ageing fields hold the day the account was made: use SOURCE_DATE_EPOCH's day.
day=$((SOURCE_DATE_EPOCH / 86400))
awk -F: -v OFS=: -v d="$day" '$3 != "" {$3 = d} {print}' "$R/etc/shadow" >"$WORK/shadow"
cat "$WORK/shadow" >"$R/etc/shadow"
in_root dpkg-query -W >"$OUT/$NAME.packages.txt"
# Every file dated SOURCE_DATE_EPOCH.
find "$R" -xdev -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

# ---- 5. boot partition (ESP, FAT32) --------------------------------------------------------
phase boot-partition
E=$WORK/esp
mkdir -p "$E/EFI/BOOT" "$E/loader/entries" "$E/musehub-a"
install -m 0644 "$R/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$E/EFI/BOOT/BOOTX64.EFI"
install -m 0644 "$R/boot/vmlinuz-$KVER" "$E/musehub-a/vmlinuz"
install -m 0644 "$R/boot/initrd.img-$KVER" "$E/musehub-a/initrd.img"
cat >"$E/loader/loader.conf" <<'EOF'
default musehub-a.conf
timeout 0
editor no
EOF
cat >"$E/loader/entries/musehub-a.conf" <<EOF
title   musehub $VERSION (slot A)
version $VERSION
linux   /musehub-a/vmlinuz
initrd  /musehub-a/initrd.img
options root=PARTUUID=$PARTUUID_ROOT_A rw console=tty0 console=ttyS0,115200 panic=10 systemd.gpt_auto=0
EOF
install -m 0644 "$HERE/boot/musehub.toml" "$E/musehub.toml"
install -m 0644 "$HERE/boot/README.txt" "$E/README.txt"
find "$E" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -f "$WORK/boot.img"
mkfs.vfat -C --invariant -F 32 -S 512 -h 2048 -i "$FAT_VOLID" -n MUSEHUB \
    "$WORK/boot.img" $((ESP_MIB * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$WORK/boot.img" "$E"/* ::/

# ---- 6. root and data file systems (ext4) ---------------------------------------------------
phase root-filesystem
# Our own mke2fs.conf, so the host's defaults do not change the result. 4 KiB blocks even
# for the small data file system (it grows to the whole disk).
cat >"$WORK/mke2fs.conf" <<'EOF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	small = {
		inode_ratio = 16384
	}
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
EOF
# mkfs.ext4 -d copies each file's atime and ctime from the build host (e2fsprogs 1.47.0), and
# ctime cannot be set from user space: rewrite both on every inode in use with debugfs.
fix_times() {
    local img=$1
    dumpe2fs "$img" 2>/dev/null | awk -v t="$SOURCE_DATE_EPOCH" '
        /^Inodes per group:/ { ipg = $4 }
        /^Group [0-9]+:/ { g = $2 + 0; delete free }
        /^  Free inodes: / {
            sub(/^  Free inodes: */, "")
            n = split($0, parts, /, */)
            for (i = 1; i <= n; i++) {
                if (parts[i] == "") continue
                split(parts[i], ab, "-"); a = ab[1] + 0; b = (ab[2] == "" ? a : ab[2] + 0)
                for (j = a; j <= b; j++) free[j] = 1
            }
            for (ino = g * ipg + 1; ino <= (g + 1) * ipg; ino++)
                if (!(ino in free) && (ino == 2 || ino > 10))
                    printf "sif <%d> atime @%s\nsif <%d> ctime @%s\n", ino, t, ino, t
        }' >"$img.debugfs"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$img.debugfs" "$img" >/dev/null 2>"$img.debugfs.err" ||
        { cat "$img.debugfs.err" >&2; die "debugfs failed on $img"; }
    if grep -v '^debugfs ' "$img.debugfs.err" | grep -q .; then
        head "$img.debugfs.err" >&2; die "debugfs reported errors on $img"
    fi
    rm -f "$img.debugfs" "$img.debugfs.err"
}
mkfs_ext4() {  # IMG MIB LABEL UUID HASHSEED SRCDIR ROOT_OWNER
    rm -f "$1"
    truncate -s "$2M" "$1"
    MKE2FS_CONFIG=$WORK/mke2fs.conf E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH \
        mkfs.ext4 -q -F -t ext4 -b 4096 -m 1 -L "$3" -U "$4" \
        -E "hash_seed=$5,root_owner=$7,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
        -d "$6" "$1"
    fix_times "$1"
    e2fsck -fn "$1" >"$1.fsck" 2>&1 || { cat "$1.fsck" >&2; die "e2fsck found errors in $1"; }
    rm -f "$1.fsck"
}
ROOT_USED_MIB=$(mib_of "$R")
((ROOT_USED_MIB * 100 <= ROOT_MIB * ROOT_MAX_FILL)) ||
    die "root file system ($ROOT_USED_MIB MiB) is over $ROOT_MAX_FILL% of the $ROOT_MIB MiB slot"
mkfs_ext4 "$WORK/root-a.img" "$ROOT_MIB" musehub-root-a "$FSUUID_ROOT_A" "$HASHSEED_ROOT_A" "$R" 0:0
mkdir -m 0700 "$WORK/data"
chown "$MUSEHUB_UID:$MUSEHUB_UID" "$WORK/data"
touch --date="@$SOURCE_DATE_EPOCH" "$WORK/data"
mkfs_ext4 "$WORK/data.img" "$DATA_MIB" musehub-data "$FSUUID_DATA" "$HASHSEED_DATA" "$WORK/data" \
    "$MUSEHUB_UID:$MUSEHUB_UID"

# ---- 7. the disk ---------------------------------------------------------------------------
phase disk
MIB=2048                                     # sectors of 512 bytes per MiB
P1=$MIB                                      # 1 MiB for the protective MBR and the GPT
P2=$((P1 + ESP_MIB * MIB))
P3=$((P2 + ROOT_MIB * MIB))
P4=$((P3 + ROOT_MIB * MIB))
END=$((P4 + DATA_MIB * MIB + MIB))           # 1 MiB at the end for the backup GPT
IMG=$OUT/$NAME.img
rm -f "$IMG" "$IMG.zst" "$OUT/$NAME.qcow2"
truncate -s $((END * 512)) "$IMG"
sfdisk --quiet --no-reread --no-tell-kernel "$IMG" <<EOF
label: gpt
label-id: $DISK_GUID
unit: sectors
first-lba: 2048
sector-size: 512

start=$P1, size=$((ESP_MIB * MIB)), type=$TYPE_ESP, uuid=$PARTUUID_BOOT, name="musehub-boot"
start=$P2, size=$((ROOT_MIB * MIB)), type=$TYPE_ROOT_X86_64, uuid=$PARTUUID_ROOT_A, name="musehub-root-a"
start=$P3, size=$((ROOT_MIB * MIB)), type=$TYPE_ROOT_X86_64, uuid=$PARTUUID_ROOT_B, name="musehub-root-b"
start=$P4, size=$((DATA_MIB * MIB)), type=$TYPE_LINUX_DATA, uuid=$PARTUUID_DATA, name="musehub-data"
EOF
put() { dd if="$1" of="$IMG" bs=1M seek=$(($2 / MIB)) conv=notrunc,sparse status=none; }
put "$WORK/boot.img" "$P1"
put "$WORK/root-a.img" "$P2"
put "$WORK/data.img" "$P4"                   # slot B (P3) stays zeros
(cd "$OUT" && sfdisk --json "$NAME.img") >"$OUT/$NAME.layout.json"

phase compress
zstd -q -T0 -"$ZSTD_LEVEL" --long=27 -f "$IMG" -o "$IMG.zst"
qemu-img convert -O qcow2 "$IMG" "$OUT/$NAME.qcow2"
touch --date="@$SOURCE_DATE_EPOCH" "$IMG" "$IMG.zst" "$OUT/$NAME.qcow2" \
    "$OUT/$NAME.packages.txt" "$OUT/$NAME.layout.json"

phase end
T_END=$(date +%s)
hsize() { numfmt --to=iec-i --suffix=B "$1"; }
echo
echo "phase times:"
printf '  %s\n' "${TIMES[@]}"
printf '  %-22s %5ds\n' total $((T_END - T_START))
echo "root file system: $ROOTFS_MIB_DEBOOTSTRAP MiB after debootstrap, $ROOTFS_MIB_BEFORE MiB configured," \
    "$ROOTFS_MIB_AFTER MiB slimmed (slot: $ROOT_MIB MiB)"
echo "kernel modules: $MODULES_MIB_BEFORE MiB -> $MODULES_MIB_AFTER MiB; initrd $(hsize "$(stat -c %s "$E/musehub-a/initrd.img")")"
echo "musehub binary: $(hsize "$BIN_SIZE_IN") -> $(hsize "$BIN_SIZE_OUT") stripped"
echo "outputs in $OUT:"
for f in "$IMG" "$IMG.zst" "$OUT/$NAME.qcow2"; do
    printf '  %-34s %10s  (%s bytes, %s on disk)\n' "$(basename "$f")" "$(hsize "$(stat -c %s "$f")")" \
        "$(stat -c %s "$f")" "$(du -h "$f" | cut -f1)"
done
printf '  %s\n' "$NAME.packages.txt ($(wc -l <"$OUT/$NAME.packages.txt") packages)" "$NAME.layout.json"
echo "sha256 $(sha256sum "$IMG" | cut -d' ' -f1)  $NAME.img"
