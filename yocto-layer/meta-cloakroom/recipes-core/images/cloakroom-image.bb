SUMMARY = "cloakroom meeting-room appliance image"
DESCRIPTION = "The cloakroom daemon with GStreamer (V4L2, VP8, x264, Opus, \
               echo cancellation), ALSA, mDNS (<room>.local), time sync and \
               the kernel modules for USB cameras and speakerphones. On \
               Raspberry Pi builds with RAUC in DISTRO_FEATURES it is the \
               A/B-updatable system that cloakroom-bundle carries."
# Placeholder until the project has a public page (.invalid never resolves).
HOMEPAGE = "https://cloakroom.invalid/"
SECTION = "images"
LICENSE = "MIT"

inherit core-image

# A room device is not a login box: no IMAGE_FEATURES here; the qemuarm64
# kas file adds ssh and root login for the oeqa tests only.
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    packagegroup-cloakroom \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
IMAGE_LINGUAS = ""

# Headroom for logs and first-boot state in the root filesystem (KiB).
IMAGE_ROOTFS_EXTRA_SPACE = "65536"

# With RAUC, cloakroom-health.service runs `rauc status mark-good` once the
# daemon is healthy; meta-rauc's rauc-mark-good.service would mark every
# boot good as soon as boot-complete.target is reached, so leave it out to
# keep a single place that decides.
BAD_RECOMMENDATIONS += "rauc-mark-good"
