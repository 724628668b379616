# cloakroomd: v4l2src and the Pi 4 hardware encoder (v4l2h264enc on
# /dev/video11), pngenc for the idle screen's QR code. VP8 (libvpx,
# meta-oe) is enabled in dynamic-layers/openembedded-layer.
PACKAGECONFIG:append:cloakroom-distro = " v4l2 libpng"
