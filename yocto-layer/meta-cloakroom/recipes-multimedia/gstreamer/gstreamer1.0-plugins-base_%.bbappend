# cloakroomd: alsasrc/alsasink, Opus encode/decode, and textoverlay/clockoverlay
# (pango) for the room screen's name, clock and "encrypted" badge.
PACKAGECONFIG:append:cloakroom = " alsa opus pango"
