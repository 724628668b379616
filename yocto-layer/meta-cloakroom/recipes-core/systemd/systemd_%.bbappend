# cloakroom: time sync for TLS certificates and meeting timestamps
# (systemd-timesyncd, time-sync.target), and the boot assessment target
# (boot-complete.target) that cloakroom-health.service gates.
PACKAGECONFIG:append:cloakroom-distro = " timesyncd"
