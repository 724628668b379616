# cloakroomd: x264enc, the software H.264 encoder on boards without one in
# hardware (Pi 5). x264 and this recipe carry LICENSE_FLAGS "commercial":
# the kas files accept them; check your product's licensing.
PACKAGECONFIG:append:cloakroom-distro = " x264"
