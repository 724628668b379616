# cloakroomd: webrtcdsp/webrtcechoprobe cancel the speaker's echo in the
# microphone. Its library, webrtc-audio-processing, is in meta-multimedia,
# hence this dynamic layer.
PACKAGECONFIG:append:cloakroom-distro = " webrtcdsp"
