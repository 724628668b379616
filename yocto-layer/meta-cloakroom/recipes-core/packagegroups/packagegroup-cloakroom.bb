SUMMARY = "cloakroom appliance: daemon and run-time dependencies"
DESCRIPTION = "Everything cloakroom-image installs on top of a bootable \
               system: the daemon, GStreamer elements, ALSA, mDNS, time \
               sync, kernel modules for cameras and speakerphones, and \
               RAUC when it is enabled."
# Placeholder until the project has a public page (.invalid never resolves).
HOMEPAGE = "https://cloakroom.invalid/"
SECTION = "multimedia"
LICENSE = "MIT"

# Kernel module package names depend on MACHINE, so not allarch.
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

# Codecs that need a "commercial" license flag (x264enc, libav) are not
# here: whether to accept those licenses is the build's choice, made in
# cloakroom-image (CLOAKROOM_LICENSED_CODECS).
#
# A/B updates (Raspberry Pi kas files): RAUC and the glue in dynamic-layers/rauc.
# Listed first in RDEPENDS below.
CLOAKROOM_AB_PACKAGES = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'cloakroom-ab rauc', '', d)}"
RDEPENDS:${PN} = "\
    ${CLOAKROOM_AB_PACKAGES} \
    alsa-utils-alsactl \
    avahi-daemon \
    ca-certificates \
    cloakroom \
    gstreamer1.0 \
    gstreamer1.0-plugins-bad-kms \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audiomixer \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-compositor \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-good-imagefreeze \
    gstreamer1.0-plugins-good-png \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-good-vpx \
    systemd-conf \
    ttf-bitstream-vera \
"

# Soft dependencies: webrtcdsp only exists with meta-multimedia; a module
# built into the kernel has no package.
RRECOMMENDS:${PN} = "\
    gstreamer1.0-plugins-bad-webrtcdsp \
    kernel-module-snd-usb-audio \
    kernel-module-uvcvideo \
"
# With RAUC the kernel lives in each rootfs slot (/boot), where boot.cmd loads it.
RRECOMMENDS:${PN} += "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'kernel-image', '', d)}"
RRECOMMENDS:${PN}:append:rpi = "\
    kernel-module-bcm2835-codec \
    kernel-module-bcm2835-isp \
    kernel-module-bcm2835-v4l2 \
"
RRECOMMENDS:${PN}:append:qemuall = "\
    kernel-module-snd-aloop \
    kernel-module-vivid \
"
