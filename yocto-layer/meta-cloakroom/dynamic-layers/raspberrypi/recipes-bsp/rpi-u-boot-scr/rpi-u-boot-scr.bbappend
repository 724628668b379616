# With RAUC (DISTRO_FEATURES "rauc"), replace meta-raspberrypi's boot.cmd.in
# with the A/B one in files/rauc/: it picks slot A or B from the U-Boot
# environment that RAUC's "uboot" backend writes (BOOT_ORDER, BOOT_x_LEFT).
FILESEXTRAPATHS:prepend:cloakroom-distro := "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', '${THISDIR}/files/rauc:', '', d)}"
