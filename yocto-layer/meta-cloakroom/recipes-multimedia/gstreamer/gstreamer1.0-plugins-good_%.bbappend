# cloakroomd: v4l2src and the Pi 4 hardware encoder (v4l2h264enc on
# /dev/video11), vp8enc/vp8dec (VP8 is what Jitsi end-to-end encryption
# uses), pngenc for the idle screen's QR code.
PACKAGECONFIG:append:cloakroom = " v4l2 vpx libpng"
