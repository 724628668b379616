# RAUC's "uboot" backend reads and writes the U-Boot environment with
# fw_printenv/fw_setenv (libubootenv); /etc/fw_env.config comes from the
# u-boot bbappend in dynamic-layers/raspberrypi.
RDEPENDS:${PN}:append:cloakroom-distro:rpi = " libubootenv-bin"
