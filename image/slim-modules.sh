# shellcheck shell=sh
# Sourced by image/build.sh and image/build-arm64-rootfs.sh (POSIX sh, so both can): the
# kernel modules no appliance needs. Sound, video capture and DVB, GPU drivers (but DRM's
# simple and virtio framebuffers and any DRM drivers named), InfiniBand, ISDN, staging; radios
# (wireless, Bluetooth, NFC, WWAN: they need firmware and daemons the image does not have);
# CAN buses, industrial I/O and data acquisition boards, SCSI target mode, cluster file
# systems and the NFS server.
#
#   slim_modules MODULES_DIR [DRM_DRIVER_TO_KEEP …]     # MODULES_DIR = .../lib/modules/<kver>
#
# Modules that depend on a removed one go too (modules.dep lists each module's dependencies,
# transitively). The caller runs depmod afterwards, inside the root file system.
slim_modules() {
    sm_dir=$1
    shift
    sm_k=$sm_dir/kernel
    rm -rf "$sm_k/sound" "$sm_k/drivers/media" "$sm_k/drivers/infiniband" "$sm_k/drivers/isdn" \
        "$sm_k/drivers/staging" "$sm_k/drivers/net/wireless" "$sm_k/net/wireless" \
        "$sm_k/net/mac80211" "$sm_k/drivers/bluetooth" "$sm_k/net/bluetooth" \
        "$sm_k/drivers/nfc" "$sm_k/net/nfc" "$sm_k/drivers/net/wwan" "$sm_k/drivers/net/can" \
        "$sm_k/net/can" "$sm_k/drivers/iio" "$sm_k/drivers/comedi" "$sm_k/drivers/target" \
        "$sm_k/fs/ocfs2" "$sm_k/fs/gfs2" "$sm_k/fs/nfsd"
    find "$sm_k/drivers/gpu" -mindepth 1 -maxdepth 1 ! -name drm -exec rm -rf {} +
    for sm_drm in "$sm_k/drivers/gpu/drm"/*/; do
        sm_name=$(basename "$sm_drm")
        case " tiny virtio ttm $* " in
            *" $sm_name "*) ;;
            *) rm -rf "$sm_drm" ;;
        esac
    done
    (cd "$sm_dir" && while IFS=: read -r mod deps; do
        for d in $deps; do [ -e "$d" ] || { rm -f "$mod"; break; }; done
    done <modules.dep)
}
