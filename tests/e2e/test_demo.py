"""The README's first command works: scripts/demo.sh serves the demo config and shows live answers.

Runs the real script with GTM_DEMO_EXIT=1 (print the answers, then stop) on a free port, and checks the
answers it printed against the demo configuration.
"""
import os
import re
import socket
import subprocess
import sys
import unittest

SOURCE_DIR = os.environ.get("GTM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    # A port free for both UDP and TCP on 127.0.0.1 and ::1.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u6:
                    u6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


class DemoTest(unittest.TestCase):
    def test_demo_script_answers(self):
        port = free_port()
        env = dict(os.environ, GTM_DEMO_PORT=str(port), GTM_DEMO_EXIT="1")
        proc = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "demo.sh")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600)
        out = proc.stdout
        self.assertEqual(proc.returncode, 0, out[-4000:])
        self.assertIn(f"answering on 127.0.0.1:{port}", out)
        # www.gtm.example. A comes from pool site-a (192.0.2.10 or .11), TTL 30.
        self.assertRegex(out, r"www\.gtm\.example\.\s+30\s+IN\s+A\s+192\.0\.2\.1[01]")
        self.assertRegex(out, r"www\.gtm\.example\.\s+30\s+IN\s+AAAA\s+2001:db8:a::10")
        self.assertRegex(out, r"gtm\.example\.\s+3600\s+IN\s+SOA\s+ns1\.gtm\.example\.")
        self.assertRegex(out, r"status: NXDOMAIN")
        self.assertIn("explain:", out)
        self.assertIn("site-a", out)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
