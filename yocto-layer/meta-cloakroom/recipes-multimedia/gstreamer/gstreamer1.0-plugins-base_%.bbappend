# cloakroomd: alsasrc/alsasink and Opus encode/decode. No pango: the daemon
# draws the room screen's text itself from ttf-bitstream-vera.
PACKAGECONFIG:append:cloakroom = " alsa opus"
