# RAUC system configuration for the Raspberry Pi A/B SD card layout
# (wic/cloakroom-ab-sdimage.wks): U-Boot backend, rootfs slots on
# partitions 2 and 3, state on the shared data partition.
FILESEXTRAPATHS:prepend:cloakroom-distro:rpi := "${THISDIR}/files:"

# The keyring that verifies bundles: the certificate of the key that signs
# cloakroom-bundle. Keys are never committed: they live in
# CLOAKROOM_RAUC_KEY_DIR (conf/distro/cloakroom.conf; see yocto-layer/README.md).
FILESEXTRAPATHS:prepend:cloakroom-distro := "${CLOAKROOM_RAUC_KEY_DIR}:"
RAUC_KEYRING_FILE:cloakroom-distro = "cloakroom-dev.cert.pem"

do_install:append:cloakroom-distro:rpi() {
    sed -i -e 's/@MACHINE@/${MACHINE}/' ${D}${sysconfdir}/rauc/system.conf
}
