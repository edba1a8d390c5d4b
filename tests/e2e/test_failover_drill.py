"""The failover drill script runs end to end (network namespaces, real HTTP backends, a client
resolving through gtm) and its report shows the failed site leaving and returning within the
monitor bounds. Needs root for network namespaces; skipped otherwise."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness  # noqa: E402

INTERVAL_MS = 200


@unittest.skipUnless(os.geteuid() == 0, "network namespaces need root")
class FailoverDrillTest(unittest.TestCase):
    def test_drill_report(self):
        # The script execs the drill, so the drill's namespaces are tagged with this child's pid.
        proc = subprocess.Popen(
            [os.path.join(gtm_harness.SOURCE_DIR, "scripts", "failover-drill.sh"), "--duration",
             "9", "--rate", "40", "--interval-ms", str(INTERVAL_MS), "--build",
             os.environ.get("GTM_BUILD_DIR", "build")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            stdout, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        p = subprocess.CompletedProcess(proc.args, proc.returncode, stdout)
        self.assertEqual(p.returncode, 0, p.stdout)
        print(p.stdout.strip().splitlines()[-1])
        m = re.search(r"^drill: total=(\d+) failed=(\d+) error_window_s=([\d.]+) "
                      r"removal_s=([\d.]+) restore_s=([\d.]+)$", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        total, failed = int(m.group(1)), int(m.group(2))
        removal, restore = float(m.group(4)), float(m.group(5))
        self.assertGreater(total, 300)
        self.assertLessEqual(removal, INTERVAL_MS / 1000 * 2 + 1)  # interval x fall + 1 s
        self.assertLessEqual(restore, INTERVAL_MS / 1000 * 2 + 1)  # interval x rise + 1 s
        self.assertLess(failed / total, 0.135)  # the cloud GTM's drill to beat: 13.5 %
        out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
        # Cleaned up: none of this drill's namespaces is left (other checkouts may run drills too).
        tag = f"gtmdr{proc.pid % 100000}"
        self.assertFalse([n for n in out.split() if n.startswith(tag) and len(n) == len(tag) + 1],
                         out)


if __name__ == "__main__":
    gtm_harness.main()
