# With RAUC: /etc/fw_env.config so that fw_printenv/fw_setenv (libubootenv),
# which RAUC's "uboot" backend calls, find the environment U-Boot saves as
# uboot.env on the boot partition.
FILESEXTRAPATHS:prepend:cloakroom-distro := "${THISDIR}/files:"
SRC_URI:append:cloakroom-distro:rpi = " ${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'file://fw_env.config', '', d)}"
