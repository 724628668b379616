# cloakroomd: Opus encode/decode (opusenc/opusdec), the meetings' audio
# codec. libopus is in meta-oe, hence this dynamic layer.
PACKAGECONFIG:append:cloakroom-distro = " opus"
