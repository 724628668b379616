# cloakroomd: alsasrc/alsasink. No pango: the daemon draws the room
# screen's text itself from ttf-bitstream-vera. Opus (libopus, meta-oe) is
# enabled in dynamic-layers/openembedded-layer.
PACKAGECONFIG:append:cloakroom-distro = " alsa"
