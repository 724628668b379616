#
# SPDX-License-Identifier: Apache-2.0
#
"""oeqa runtime tests for the cloakroom image.

Run with `bitbake cloakroom-image -c testimage` (the qemuarm64 kas file
adds "cloakroom" to TEST_SUITES). They check what a person installing the
room would check first: the daemon runs, its web page answers, and the
camera is seen. On qemuarm64 the camera is vivid (loaded at boot by
KERNEL_MODULE_AUTOLOAD); on a Pi it is whatever USB camera is plugged in.
"""

import json
import time

from oeqa.core.decorator.depends import OETestDepends
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage

# The daemon starts GStreamer and makes its certificate on first boot;
# give it this long before calling it broken.
STARTUP_TIMEOUT_S = 90


class CloakroomTest(OERuntimeTestCase):

    def wait_for(self, cmd, timeout=STARTUP_TIMEOUT_S):
        """Run cmd on the target until it exits 0 or timeout passes; return the last (status, output)."""
        deadline = time.monotonic() + timeout
        while True:
            status, output = self.target.run(cmd)
            if status == 0 or time.monotonic() >= deadline:
                return status, output
            time.sleep(3)

    @OETestDepends(['ssh.SSHTest.test_ssh'])
    @OEHasPackage(['cloakroom'])
    def test_cloakroomd_active(self):
        status, output = self.wait_for('systemctl is-active cloakroomd.service')
        if status != 0:
            _, journal = self.target.run('journalctl -b -u cloakroomd.service --no-pager | tail -n 50')
            self.fail('cloakroomd.service is not active (%s):\n%s' % (output, journal))
        # Not root, and allowed the low ports through the capability only.
        # The effective uid from /proc/<pid>/status: the daemon makes itself
        # not dumpable (no core dumps), which shows its /proc/<pid> as root's.
        status, output = self.target.run(
            "id -nu $(awk '/^Uid:/ {print $3}' /proc/$(systemctl show -p MainPID --value cloakroomd.service)/status)")
        self.assertEqual(output.strip(), 'cloakroom', msg='cloakroomd runs as %r' % output)

    @OETestDepends(['cloakroom.CloakroomTest.test_cloakroomd_active'])
    def test_web_page_healthz(self):
        # -k: the device certificate is self-signed, made on first start.
        cmd = 'curl -fsSk --max-time 10 https://localhost/healthz'
        status, output = self.wait_for(cmd)
        self.assertEqual(status, 0, msg='https://localhost/healthz did not answer: %s' % output)
        # Plain HTTP only redirects to HTTPS.
        status, output = self.target.run(
            "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/")
        code, _, location = output.strip().partition(' ')
        self.assertIn(code, ('301', '302', '307', '308'), msg='http://localhost/ answered %r' % output)
        self.assertTrue(location.startswith('https://'), msg='redirects to %r' % location)

    @OETestDepends(['cloakroom.CloakroomTest.test_cloakroomd_active'])
    def test_cloakroom_devices_lists_v4l2_camera(self):
        status, output = self.target.run('cloakroom devices --json')
        self.assertEqual(status, 0, msg='cloakroom devices --json failed: %s' % output)
        try:
            devices = json.loads(output)
        except ValueError as err:
            self.fail('cloakroom devices --json printed no JSON (%s): %s' % (err, output))
        # DeviceReport in firmware/media/src/devices.rs: {"cameras": [{"path": "/dev/videoN", ...}], ...}
        cameras = [c for c in devices.get('cameras', []) if str(c.get('path', '')).startswith('/dev/video')]
        self.assertTrue(cameras, msg='no V4L2 camera listed: %s' % output)
        if self.td.get('MACHINE', '').startswith('qemu'):
            drivers = [c.get('driver') for c in cameras]
            self.assertIn('vivid', drivers, msg='qemu image should list the vivid camera: %s' % drivers)
