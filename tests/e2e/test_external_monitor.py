"""External-command monitors end to end: gtm-control runs a real program per probe with the member
address in its environment; exit 0 is up, any other exit is down, and a command that hangs past
the timeout is killed and counted as a failure."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

CONFIG = gtm_harness.ZONE_HEADER.replace("{", "{{").replace("}", "}}") + """
monitors:
  - {{name: flag, type: external, command: ["{check}", "{dir}"], interval_ms: 100,
      timeout_ms: 80, rise: 1, fall: 1}}
  - {{name: hang, type: external, command: ["/bin/sleep", "5"], interval_ms: 200, timeout_ms: 100,
      rise: 1, fall: 1}}
services:
  - name: ext.gtm.example.
    ttl: 1
    pools:
      - name: p
        method: return-all
        members:
          - {{name: x, address: 127.0.0.20, monitors: [flag]}}
          - {{name: y, address: 127.0.0.21, monitors: [flag]}}
          - {{name: z, address: 127.0.0.22, monitors: [hang]}}
          - {{name: steady, address: 127.0.0.7, mode: always-up}}
"""


class ExternalMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gtm-ext-")
        cls.check = os.path.join(cls.dir, "check.sh")
        with open(cls.check, "w") as f:
            f.write('#!/bin/sh\n[ -e "$1/up-$GTM_MEMBER_ADDRESS" ]\n')
        os.chmod(cls.check, 0o755)
        config = os.path.join(cls.dir, "ext.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(check=cls.check, dir=cls.dir))
        open(os.path.join(cls.dir, "up-127.0.0.20"), "w").close()
        cls.env = gtm_harness.GtmEnv(config).start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.env.close()
        shutil.rmtree(cls.dir)
        assert problems == [], problems

    def settle(self, expected, limit=3.0):
        self.env.wait_answers("ext.gtm.example.", expected, limit)

    def test_exit_status_decides(self):
        self.settle({"127.0.0.20", "127.0.0.7"})
        open(os.path.join(self.dir, "up-127.0.0.21"), "w").close()
        self.settle({"127.0.0.20", "127.0.0.21", "127.0.0.7"})
        os.unlink(os.path.join(self.dir, "up-127.0.0.20"))
        self.settle({"127.0.0.21", "127.0.0.7"})
        with open(os.path.join(self.env.run_dir, "control.log")) as f:
            log = f.read()
        self.assertIn("(flag): down after 1 failures: exit 1", log)
        self.assertIn("(hang): down after 1 failures: timeout", log)


if __name__ == "__main__":
    gtm_harness.main()
