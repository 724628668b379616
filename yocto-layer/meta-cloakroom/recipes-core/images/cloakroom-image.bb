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
    ${CLOAKROOM_LICENSED_CODECS} \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# Codecs under LICENSE_FLAGS "commercial" (patents): the software H.264
# encoder gstreamer1.0-plugins-ugly-x264 (what the Pi 5 and QEMU encode
# H.264 with; the Pi 4 has a hardware encoder) and gstreamer1.0-libav.
# None by default; a build that accepts their license flags lists them
# here (the kas files do both, see yocto-layer/kas/common.yml). Without
# them the daemon offers VP8 (and on the Pi 4 hardware H.264) only.
CLOAKROOM_LICENSED_CODECS ??= ""

# Opus and VP8, which the daemon cannot work without, need libopus and
# libvpx from meta-oe (dynamic-layers/openembedded-layer enables them).
# Without meta-oe the image would plan and then fail in do_rootfs; say so
# at parse time instead. The rest of the layer parses with oe-core alone.
# nooelint: oelint.task.noanonpython - a skip with its reason needs Python
python () {
    if 'openembedded-layer' not in d.getVar('BBFILE_COLLECTIONS').split():
        raise bb.parse.SkipRecipe("cloakroom-image needs meta-oe (openembedded-layer) for libopus and libvpx")
}
IMAGE_LINGUAS = ""

# Headroom for logs and first-boot state in the root filesystem (KiB).
IMAGE_ROOTFS_EXTRA_SPACE = "65536"

# With RAUC, cloakroom-health.service runs `rauc status mark-good` once the
# daemon is healthy; meta-rauc's rauc-mark-good.service would mark every
# boot good as soon as boot-complete.target is reached, so leave it out to
# keep a single place that decides.
BAD_RECOMMENDATIONS += "rauc-mark-good"
