# RAUC system configuration for the Raspberry Pi A/B SD card layout
# (recipes-core/images/cloakroom-ab-sdimage.wks): U-Boot backend, rootfs
# slots on partitions 2 and 3, state on the shared data partition.
FILESEXTRAPATHS:prepend:cloakroom-distro:rpi := "${THISDIR}/files:"

# The keyring that verifies bundles: the certificate of the key that signs
# cloakroom-bundle. Keys are never committed: they live in
# CLOAKROOM_RAUC_KEY_DIR (conf/distro/cloakroom.conf; see yocto-layer/README.md).
FILESEXTRAPATHS:prepend:cloakroom-distro := "${CLOAKROOM_RAUC_KEY_DIR}:"
RAUC_KEYRING_FILE:cloakroom-distro = "cloakroom-dev.cert.pem"

# Without the certificate this recipe (and so what installs RAUC) is
# skipped with the reason, instead of a fetch checksum error that stops
# the whole parse. The file is a parse dependency: adding it later
# reparses the recipe.
# nooelint: oelint.task.noanonpython,oelint.vars.noncoreoverride - a skip with its reason needs Python; the function acts only under the cloakroom-distro override (its first line)
python () {
    if 'cloakroom-distro' in d.getVar('OVERRIDES').split(':'):
        cert = os.path.join(d.getVar('CLOAKROOM_RAUC_KEY_DIR'), d.getVar('RAUC_KEYRING_FILE'))
        bb.parse.mark_dependency(d, cert)
        if not os.path.exists(cert):
            raise bb.parse.SkipRecipe("no RAUC keyring %s: make the update keys (yocto-layer/README.md, \"Update keys\")" % cert)
}

do_install:append:cloakroom-distro:rpi() {
    sed -i -e 's/@MACHINE@/${MACHINE}/' ${D}${sysconfdir}/rauc/system.conf
}
