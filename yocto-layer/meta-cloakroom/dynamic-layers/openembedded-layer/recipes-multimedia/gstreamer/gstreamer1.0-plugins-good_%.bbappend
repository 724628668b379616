# cloakroomd: vp8enc/vp8dec (VP8 is what Jitsi end-to-end encryption
# uses). libvpx is in meta-oe, hence this dynamic layer.
PACKAGECONFIG:append:cloakroom-distro = " vpx"
