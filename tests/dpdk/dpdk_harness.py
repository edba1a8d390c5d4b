"""Helpers for the DPDK backend's tests (CTest label `dpdk`): start gtm-dataplane --io dpdk with a
NIC configuration and a pre-compiled snapshot, read its STATUS and its DPDK telemetry, stop it.

EAL runs with --no-huge -m and a file prefix unique to the test process (gtmt<pid>), so several
runs can share the machine; the EAL's runtime directory is removed when the dataplane stops.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import gtm_harness  # noqa: E402

SOURCE_DIR = gtm_harness.SOURCE_DIR
NIC_CONFIGS = os.path.join(SOURCE_DIR, "nic_configs")

# Zone and services every DPDK test answers from.
ZONE = gtm_harness.ZONE_HEADER + """      - {name: static, type: A, data: 192.0.2.1}
      - {name: static, type: AAAA, data: "2001:db8::1"}
services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - name: site-a
        method: ratio
        members:
          - {name: a1, address: 192.0.2.10, weight: 3}
          - {name: a2, address: 192.0.2.11, weight: 1}
"""


def compile_snapshot(run_dir, zone_yaml=ZONE):
    """Writes zone_yaml to run_dir and compiles it into run_dir/snapshot.bin (the image the
    dataplane loads at start, before any packet is read)."""
    config = os.path.join(run_dir, "zone.yaml")
    with open(config, "w") as f:
        f.write(zone_yaml)
    subprocess.run([os.path.abspath(gtm_harness.binary("gtmctl")), "compile", config,
                    os.path.join(run_dir, "snapshot.bin")], check=True, capture_output=True)
    return config


class DpdkDataplane:
    """gtm-dataplane --io dpdk, started in `cwd` (relative capture paths of pcap.yaml resolve
    there), optionally inside a network namespace."""

    def __init__(self, nic_config, work_dir, netns=None, extra_eal=()):
        self.nic_config = nic_config
        self.work_dir = work_dir
        self.run_dir = os.path.join(work_dir, "run")
        os.makedirs(self.run_dir, exist_ok=True)
        self.prefix = f"gtmt{os.getpid()}"
        self.netns = netns
        # Absolute: the dataplane starts in work_dir.
        argv = [os.path.abspath(gtm_harness.binary("gtm-dataplane")), "--io", "dpdk", "--nic-config", nic_config,
                "--run-dir", self.run_dir, "--", "--file-prefix", self.prefix] + list(extra_eal)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self.daemon = gtm_harness.Daemon("gtm-dataplane", argv,
                                         os.path.join(work_dir, "dataplane.log"),
                                         "gtm-dataplane: ready")

    def start(self, timeout=20.0):
        cwd = os.getcwd()
        os.chdir(self.work_dir)
        try:
            self.daemon.start(timeout)
        finally:
            os.chdir(cwd)
        return self

    def request(self, text, timeout=3.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(timeout)
            s.connect(os.path.join(self.run_dir, "dataplane.sock"))
            s.send(text.encode())
            return s.recv(65536).decode()

    def status(self):
        return json.loads(self.request("STATUS"))

    def totals(self):
        return self.status()["totals"]

    def wait_totals(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            t = self.totals()
            if predicate(t) or time.monotonic() > deadline:
                return t
            time.sleep(0.05)

    def telemetry(self, command):
        """One DPDK telemetry command's reply (the /var/run/dpdk/<prefix>/dpdk_telemetry.v2
        socket; inside a namespace the path is the same, the socket is a file)."""
        path = f"/var/run/dpdk/{self.prefix}/dpdk_telemetry.v2"
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(3.0)
            s.connect(path)
            json.loads(s.recv(16384).decode())  # greeting: version, pid, max output length
            s.send(command.encode())
            return json.loads(s.recv(65536).decode())

    def gtmctl_status(self):
        return subprocess.run([gtm_harness.binary("gtmctl"), "--run-dir", self.run_dir, "status"],
                              capture_output=True, text=True, timeout=10).stdout

    def log(self):
        return self.daemon.log()

    def stop(self):
        """SIGTERM by PID; returns the exit status. Removes the EAL runtime directory."""
        status = self.daemon.stop(timeout=10.0)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        return status


def write_pcap(path, frames):
    """A classic pcap file (Ethernet link type) holding `frames` (bytes) as they are: no padding,
    no parsing, so broken frames stay broken."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1, i, len(frame), len(frame)))
            f.write(frame)


def work_dir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


# ---------------------------------------------------------------------------------------------
# Network namespaces: the dataplane in one, clients in the other, joined by a veth pair. The
# dataplane's end is always called gtmveth0 and its tap gtm-wan0 (interface names are per
# namespace), so the shipped nic_configs/*.yaml work unchanged.

SERVICE4 = "198.18.0.1"
SERVICE6 = "2001:db8:18::1"
CLIENT4 = "198.18.0.10"
CLIENT6 = "2001:db8:18::10"


def sh(*argv, check=True, timeout=30):
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


class Namespaces:
    """Two namespaces named with this process's pid, created under the exclusive flock on
    /run/lock/gtm-netns.lock (HELPERS.md) and removed in close(), also after a failure."""

    def __init__(self):
        pid = os.getpid()
        self.dp = f"gtmdp{pid}"
        self.cl = f"gtmcl{pid}"
        self._locked = False
        self._made = []

    def open(self):
        gtm_harness.acquire_netns_lock()
        self._locked = True
        for ns in (self.dp, self.cl):
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def veth(self, kernel_blind):
        """gtmveth0 (dataplane side) <-> eth0 (client side). kernel_blind: keep the dataplane
        namespace's kernel from handling the frames itself (AF_PACKET sees them alongside it)."""
        sh("ip", "link", "add", "gtmveth0", "netns", self.dp, "type", "veth", "peer", "name", "eth0",
           "netns", self.cl)
        sh("ip", "netns", "exec", self.dp, "sysctl", "-qw", "net.ipv6.conf.gtmveth0.disable_ipv6=1")
        if kernel_blind:
            sh("ip", "netns", "exec", self.dp, "nft", "add", "table", "netdev", "gtm")
            sh("ip", "netns", "exec", self.dp, "nft", "add", "chain", "netdev", "gtm", "in",
               "{ type filter hook ingress device gtmveth0 priority 0; policy drop; }")
        sh("ip", "-n", self.dp, "link", "set", "gtmveth0", "up")
        self.client_link("eth0")

    def client_link(self, ifname):
        """Addresses and link up on the client's side. The kernel leaves UDP/TCP checksums of
        locally sent packets to the device (partial) on veth; turn that off so the frames that
        reach the dataplane, and through it the kernel's TCP, are complete."""
        sh("ip", "netns", "exec", self.cl, "ethtool", "-K", ifname, "tx", "off")
        sh("ip", "-n", self.cl, "addr", "add", f"{CLIENT4}/24", "dev", ifname)
        sh("ip", "-n", self.cl, "-6", "addr", "add", f"{CLIENT6}/64", "dev", ifname, "nodad")
        sh("ip", "-n", self.cl, "link", "set", ifname, "up")

    def client(self, *argv, timeout=30, check=False):
        return sh("ip", "netns", "exec", self.cl, *argv, timeout=timeout, check=check)

    def close(self):
        for ns in reversed(self._made):
            sh("ip", "netns", "del", ns, check=False)
        self._made = []
        if self._locked:
            gtm_harness.release_netns_lock()
            self._locked = False
