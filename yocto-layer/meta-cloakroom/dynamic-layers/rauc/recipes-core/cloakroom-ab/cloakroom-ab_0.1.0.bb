SUMMARY = "cloakroom A/B update glue for RAUC"
DESCRIPTION = "RAUC post-install handler that records the freshly \
               installed slot for cloakroom-health, and the bind mount \
               that keeps /var/lib/cloakroom on the data partition \
               shared by both slots."
# Placeholder until the project has a public page (.invalid never resolves).
HOMEPAGE = "https://cloakroom.invalid/"
SECTION = "base"
LICENSE = "Apache-2.0"
# nooelint: oelint.var.licenseremotefile - the sources are this layer's own files, covered by the project license
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "\
    file://cloakroom-data-dirs.service \
    file://rauc-post-install \
    file://var-lib-cloakroom.mount \
"

# Only local files: they are the source.
S = "${UNPACKDIR}"

inherit allarch systemd

do_install() {
    install -d ${D}${libexecdir}/cloakroom
    install -m 0755 ${UNPACKDIR}/rauc-post-install ${D}${libexecdir}/cloakroom/

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/cloakroom-data-dirs.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/var-lib-cloakroom.mount ${D}${systemd_system_unitdir}/
}

SYSTEMD_SERVICE:${PN} = "var-lib-cloakroom.mount"

RDEPENDS:${PN} = "rauc"
