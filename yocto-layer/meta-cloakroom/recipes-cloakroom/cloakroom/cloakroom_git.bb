SUMMARY = "cloakroom meeting-room daemon and command-line tool"
DESCRIPTION = "cloakroomd joins video meetings from a camera, microphone, \
               speaker and screen in a room, encrypting every audio and \
               video frame end to end; cloakroom is its command-line tool."
# Placeholder until the project has a public page (.invalid never resolves).
HOMEPAGE = "https://cloakroom.invalid/"
SECTION = "multimedia"
# The workspace is Apache-2.0 (Cargo.toml, [workspace.package]); the
# repository has no LICENSE file yet, hence the common license text.
# The crates linked in (cloakroom-crates.inc) carry their own licenses
# (mostly MIT/Apache-2.0): list them here before shipping a product.
LICENSE = "Apache-2.0"
# nooelint: oelint.var.licenseremotefile - no LICENSE file in the source tree yet (see above)
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# cloakroom-media: gstreamer-rs links GStreamer and its app/video
# libraries; alsa-sys links alsa-lib; v4l2-sys-mit runs
# bindgen, which needs libclang (clang-native: oe-core from walnascar,
# meta-clang before that).
DEPENDS = "\
    alsa-lib \
    clang-native \
    gstreamer1.0 \
    gstreamer1.0-plugins-base \
"

PV = "0.1.0+git"

# The project's git repository. Set CLOAKROOM_GIT_URI and SRCREV_cloakroom
# (e.g. in the kas file's local_conf_header) to the repository and the
# commit to build; the all-zero SRCREV below is a placeholder that fails
# at fetch time on purpose rather than building an unknown commit.
CLOAKROOM_GIT_URI ??= "git://git.cloakroom.invalid/cloakroom.git;protocol=https;branch=main"
SRC_URI = "${CLOAKROOM_GIT_URI};name=cloakroom"
SRCREV_cloakroom ??= "0000000000000000000000000000000000000000"
# Crates fetched from git (if any) append to this in cloakroom-crates.inc.
SRCREV_FORMAT = "cloakroom"

# Every crate from Cargo.lock, pinned with its checksum, so that
# `cargo build --frozen` never touches the network. Regenerate with
# tools/yocto-crates (not `bitbake -c update_crates`, which would also
# pick up fuzz/Cargo.lock).
require cloakroom-crates.inc

# S: oe-core's default, ${UNPACKDIR}/${BP}, where the git fetcher unpacks
# the repository (BB_GIT_DEFAULT_DESTSUFFIX).

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

CVE_PRODUCT = "cloakroom"

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET}"

# Only the two binaries for the device: not media-bench or frame-bench.
CARGO_BUILD_FLAGS += "-p cloakroomd -p cloakroom"

do_install:append() {
    install -d ${D}${sysconfdir}/cloakroom
    install -m 0644 ${S}/dist/config/cloakroom.toml ${D}${sysconfdir}/cloakroom/cloakroom.toml

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/dist/systemd/cloakroomd.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/dist/systemd/cloakroom-health.service ${D}${systemd_system_unitdir}/

    install -d ${D}${libexecdir}/cloakroom
    install -m 0755 ${S}/dist/libexec/cloakroom-health ${D}${libexecdir}/cloakroom/

    install -d ${D}${nonarch_libdir}/sysusers.d
    install -m 0644 ${S}/dist/sysusers.d/cloakroom.conf ${D}${nonarch_libdir}/sysusers.d/

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/dist/udev/60-cloakroom-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/
}

# The same user as dist/sysusers.d/cloakroom.conf, created at build time so
# that a read-only rootfs has it too. render is created here as well in
# case base-passwd lacks it (groupadd skips groups that exist).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio; --system render"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/cloakroom --no-create-home --shell /sbin/nologin --user-group --groups video,audio,gpio,render cloakroom"

SYSTEMD_SERVICE:${PN} = "cloakroomd.service cloakroom-health.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

CONFFILES:${PN} = "${sysconfdir}/cloakroom/cloakroom.toml"

FILES:${PN} += "\
    ${nonarch_base_libdir}/udev/rules.d/60-cloakroom-gpio.rules \
    ${nonarch_libdir}/sysusers.d/cloakroom.conf \
"

# Run time: the GStreamer elements the media crate cannot work without,
# and curl for the health check. packagegroup-cloakroom adds the rest.
RDEPENDS:${PN} = "\
    curl \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-compositor \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-good-vpx \
"
# Echo cancellation, when meta-multimedia is there. The software H.264
# encoder (x264, "commercial" license flag) is not recommended here: a
# recommendation of a recipe skipped for its license flag still breaks
# `bitbake world`; the image installs it when the build accepts the flag
# (CLOAKROOM_LICENSED_CODECS in cloakroom-image.bb).
RRECOMMENDS:${PN} = "\
    gstreamer1.0-plugins-bad-webrtcdsp \
"
