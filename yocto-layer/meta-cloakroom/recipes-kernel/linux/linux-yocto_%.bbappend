# qemuarm64 test image: a V4L2 test camera (vivid) and an ALSA loopback
# card (snd-aloop) stand in for the room's USB camera and speakerphone.
# CLOAKROOM_KERNEL_FRAGMENTS is set per MACHINE in conf/distro/cloakroom.conf.
FILESEXTRAPATHS:prepend:cloakroom-distro := "${THISDIR}/files:"
SRC_URI:append:cloakroom-distro = " ${CLOAKROOM_KERNEL_FRAGMENTS}"
