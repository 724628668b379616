# cloakroomd: kmssink (the room screen without a desktop). webrtcdsp (echo
# cancellation) needs webrtc-audio-processing from meta-multimedia and is
# enabled in dynamic-layers/multimedia-layer.
PACKAGECONFIG:append:cloakroom-distro = " kms"
