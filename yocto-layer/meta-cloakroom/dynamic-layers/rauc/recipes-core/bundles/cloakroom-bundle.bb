# nooelint: oelint.file.underscores,oelint.var.mandatoryvar.SRC_URI - a bundle has no version or sources of its own: the bundle class packs cloakroom-image from the deploy directory
SUMMARY = "cloakroom RAUC update bundle"
DESCRIPTION = "Signed RAUC bundle with the cloakroom-image root \
               filesystem, installed into the inactive A/B slot with \
               rauc install."
# Placeholder until the project has a public page (.invalid never resolves).
HOMEPAGE = "https://cloakroom.invalid/"
SECTION = "base"
LICENSE = "MIT"

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "cloakroom-${MACHINE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}-${DATETIME}"
RAUC_BUNDLE_VERSION[vardepsexclude] = "DATETIME"
RAUC_BUNDLE_DESCRIPTION = "cloakroom meeting-room appliance"
# dm-verity: the bundle is checked block by block while it is installed.
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "cloakroom-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing key and certificate: never committed. CLOAKROOM_RAUC_KEY_DIR is
# set in conf/distro/cloakroom.conf (see yocto-layer/README.md, "Update keys").
RAUC_KEY_FILE = "${CLOAKROOM_RAUC_KEY_DIR}/cloakroom-dev.key.pem"
RAUC_CERT_FILE = "${CLOAKROOM_RAUC_KEY_DIR}/cloakroom-dev.cert.pem"

# Without the key pair the bundle is skipped with the reason (at parse
# time, not in do_bundle); the files are parse dependencies, so making the
# keys later reparses the recipe.
# nooelint: oelint.task.noanonpython - a skip with its reason needs Python
python () {
    for var in ('RAUC_KEY_FILE', 'RAUC_CERT_FILE'):
        path = d.getVar(var)
        bb.parse.mark_dependency(d, path)
        if not os.path.exists(path):
            raise bb.parse.SkipRecipe("no %s %s: make the update keys (yocto-layer/README.md, \"Update keys\")" % (var, path))
}
