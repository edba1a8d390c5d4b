"""gtm-dataplane --io dpdk refuses a wrong NIC configuration at start with a message naming the
key: an unknown key and a queue owned twice (the loader), more lcores than the machine has, a vdev
that does not probe and a PCI port that is not there (start-up). Each run must exit non-zero
before it is ready, with that message on stderr.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_harness as dh  # noqa: E402
import gtm_harness as h  # noqa: E402

import yaml  # noqa: E402


class Refusals(unittest.TestCase):
    def setUp(self):
        self.dir = dh.work_dir("gtm-refuse-")
        with open(os.path.join(dh.NIC_CONFIGS, "pcap.yaml")) as f:
            self.base = yaml.safe_load(f)
        self.prefix = f"gtmt{os.getpid()}"

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def start(self, text):
        path = os.path.join(self.dir, "nic.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([h.binary("gtm-dataplane"), "--io", "dpdk", "--nic-config", path,
                            "--run-dir", os.path.join(self.dir, "run"), "--", "--file-prefix",
                            self.prefix], capture_output=True, text=True, timeout=60,
                           cwd=self.dir)
        self.assertNotIn("gtm-dataplane: ready", p.stderr)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        return p.stderr

    def edited(self, change):
        doc = yaml.safe_load(yaml.safe_dump(self.base))
        change(doc)
        return yaml.safe_dump(doc, sort_keys=False)

    def test_unknown_key(self):
        err = self.start(self.edited(lambda d: d["ports"][0].update({"rx_desc": 64})))
        self.assertRegex(err, r"nic\.yaml:\d+:\d+: unknown key 'rx_desc' in ports\[0\]")

    def test_queue_owned_twice(self):
        def change(d):
            d["lcores"].append({"lcore": 1, "queues": [{"port": "wan0", "queue": 0}]})
            d["lcores"][1]["lcore"] = 0
            d["main_lcore"] = 3
        err = self.start(self.edited(change))
        self.assertRegex(err, r"nic\.yaml:\d+:\d+: lcores\[1\]\.queues\[0\]: queue 0 of port 'wan0' "
                              r"is already owned by lcores\[0\]")

    def test_more_lcores_than_exist(self):
        err = self.start(self.edited(lambda d: d["lcores"][0].update({"lcore": os.cpu_count()})))
        self.assertRegex(err, rf"nic\.yaml:\d+:\d+: lcores\[0\]\.lcore: lcore {os.cpu_count()} does "
                              r"not exist here")

    def test_vdev_that_does_not_probe(self):
        err = self.start(self.edited(lambda d: d["ports"][0].update(
            {"device": "net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=out.pcap"})))
        self.assertRegex(err, r"nic\.yaml:\d+:\d+: ports\[0\]\.device: 'net_pcap0,rx_pcap="
                              r"/nonexistent/in.pcap,tx_pcap=out.pcap' did not probe")

    def test_pci_port_that_is_not_there(self):
        err = self.start(self.edited(lambda d: d["ports"][0].update({"device": "0000:7f:1f.7"})))
        self.assertRegex(err, r"nic\.yaml:\d+:\d+: ports\[0\]\.device: '0000:7f:1f.7' did not probe "
                              r"\(is it bound to vfio-pci\?")


if __name__ == "__main__":
    h.main()
