# config.txt for a cloakroom room device (Pi 4 / Pi 5).
#
# Pi 4: the VideoCore firmware runs the H.264 encoder behind the V4L2 codec
# driver (bcm2835-codec, /dev/video11, v4l2h264enc); it needs GPU memory.
# Pi 5 has no hardware encoder and ignores gpu_mem.
GPU_MEM:cloakroom-distro = "128"
# Full KMS display driver: kmssink draws the room screen, and the codec's
# buffers come from the CMA pool this overlay sets up.
VC4DTBO:cloakroom-distro = "vc4-kms-v3d"
DISABLE_SPLASH:cloakroom-distro = "1"
# The camera is a USB (UVC) device; CSI camera modules are detected and
# get their overlay, but the daemon does not drive them yet (they need
# libcamera). HDMI audio stays off: the speakerphone is the room's audio.
RPI_EXTRA_CONFIG:cloakroom-distro = "\n# cloakroom\ncamera_auto_detect=1\ndisplay_auto_detect=1\ndtparam=audio=off\n"
