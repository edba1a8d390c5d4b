"""End-to-end gtm-dataplane on its own (no gtm-control): start-up from the last good snapshot,
UDP and TCP (pipelined) over IPv4 and IPv6, garbage counted in STATUS, PUBLISH of a corrupt, an
unsealed and a stale image refused while the old answers keep coming, PUBLISH of a new image
swapped in and saved, and a clean SIGTERM.

Images are built with `gtmctl compile`; the control socket is spoken to directly.
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gtm_harness as h  # noqa: E402

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

ZONE = """\
zones:
  - name: dp.test.
    soa: {{mname: ns1.dp.test., rname: hostmaster.dp.test., serial: {serial}, refresh: 3600,
           retry: 600, expire: 86400, minimum: 60}}
    ns: [ns1.dp.test.]
    records:
      - {{name: ns1, type: A, data: 127.0.0.1}}
      - {{name: host, type: A, data: {host_v4}}}
      - {{name: host, type: AAAA, data: "{host_v6}"}}
      - {{name: "@", type: TXT, data: '"generation {serial}"'}}
services:
  - name: svc.dp.test.
    ttl: 30
    pools:
      - name: only
        method: round-robin
        members:
          - {{name: m1, address: {svc_v4}}}
"""

OLD = dict(serial=1, host_v4="192.0.2.10", host_v6="2001:db8::10", svc_v4="198.51.100.1")
NEW = dict(serial=2, host_v4="192.0.2.20", host_v6="2001:db8::20", svc_v4="198.51.100.2")

HEADER_GENERATION_OFFSET = 24  # magic[8], format_version, header_size, total_size (format.h)
WORKERS = 2


def compile_image(work_dir, name, values):
    config = os.path.join(work_dir, name + ".yaml")
    with open(config, "w") as f:
        f.write(ZONE.format(**values))
    out = os.path.join(work_dir, name + ".bin")
    p = subprocess.run([h.binary("gtmctl"), "compile", config, out, "--generation",
                        str(values["serial"])], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"gtmctl compile failed: {p.stdout}{p.stderr}")
    with open(out, "rb") as f:
        return f.read()


SECTION_NAME_INDEX = 4  # kSecNameIndex (format.h)
HEADER_SECTION_COUNT_OFFSET = 48  # ... generation, checksum, created_unix_ms (format.h Header)
HEADER_SECTIONS_OFFSET = 56  # SectionEntry{id u32, elem_size u32, offset u64, size u64}[]


def section_span(image, section_id):
    count = struct.unpack_from("<I", image, HEADER_SECTION_COUNT_OFFSET)[0]
    for i in range(count):
        sid, _, offset, size = struct.unpack_from("<IIQQ", image, HEADER_SECTIONS_OFFSET + 24 * i)
        if sid == section_id:
            return offset, size
    raise AssertionError("image has no section %d" % section_id)


def image_generation(image):
    return struct.unpack_from("<Q", image, HEADER_GENERATION_OFFSET)[0]


def sealed_memfd(data, seal=True):
    fd = os.memfd_create("gtm-e2e-image", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.write(fd, data)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW |
                    fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    return fd


class DataplaneBasic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work_dir = tempfile.mkdtemp(prefix="gtm-e2e-dp-")
        cls.daemon = None
        try:
            cls.old_image = compile_image(cls.work_dir, "old", OLD)
            cls.new_image = compile_image(cls.work_dir, "new", NEW)
            cls.run_dir = os.path.join(cls.work_dir, "run")  # created by the dataplane
            os.makedirs(cls.run_dir)
            with open(os.path.join(cls.run_dir, "snapshot.bin"), "wb") as f:
                f.write(cls.old_image)
            cls.ipv6 = h.ipv6_loopback_available()
            families = [(socket.AF_INET, "127.0.0.1")]
            if cls.ipv6:
                families.append((socket.AF_INET6, "::1"))
            cls.port = h.pick_free_port(families)
            argv = [h.binary("gtm-dataplane"), "--listen", f"127.0.0.1:{cls.port}",
                    "--run-dir", cls.run_dir, "--workers", str(WORKERS)]
            if cls.ipv6:
                argv += ["--listen", f"[::1]:{cls.port}"]
            cls.daemon = h.Daemon("gtm-dataplane", argv,
                                  os.path.join(cls.work_dir, "dataplane.log"),
                                  "gtm-dataplane: ready")
            cls.daemon.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.daemon is not None:
            cls.daemon.stop()
        shutil.rmtree(cls.work_dir, ignore_errors=True)

    def setUp(self):
        if self.daemon is None or not self.daemon.alive():
            self.fail("gtm-dataplane is not running\n" + (self.daemon.describe() if self.daemon
                                                          else ""))

    # -- helpers --

    def request(self, text, fds=()):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(h.CLIENT_TIMEOUT_S)
            s.connect(os.path.join(self.run_dir, "dataplane.sock"))
            if fds:
                socket.send_fds(s, [text.encode()], list(fds))
            else:
                s.send(text.encode())
            return s.recv(65536).decode()

    def publish(self, data, generation, seal=True):
        fd = sealed_memfd(data, seal)
        try:
            return self.request(f"PUBLISH {generation}", [fd])
        finally:
            os.close(fd)

    def status(self):
        return json.loads(self.request("STATUS"))

    def ask(self, name, rdtype="A", tcp=False, v6=False):
        msg = h.make_query(name, rdtype)
        return h.dns_query(msg, "::1" if v6 else "127.0.0.1", self.port, tcp=tcp)

    def assert_answers(self, values, tcp=False, v6=False):
        resp = self.ask("host.dp.test.", "A", tcp=tcp, v6=v6)
        self.assertEqual(resp.rcode(), dns.rcode.NOERROR)
        self.assertEqual(h.answer_values(resp, "A"), [values["host_v4"]])
        resp = self.ask("host.dp.test.", "AAAA", tcp=tcp, v6=v6)
        self.assertEqual(h.answer_values(resp, "AAAA"), [values["host_v6"]])
        resp = self.ask("svc.dp.test.", "A", tcp=tcp, v6=v6)
        self.assertEqual(h.answer_values(resp, "A"), [values["svc_v4"]])

    # -- tests, in order: later ones change the active image --

    def test_01_starts_from_last_good_snapshot(self):
        self.assertIn("gtm-dataplane: loaded last good snapshot generation 1", self.daemon.log())
        self.assertEqual(self.request("GENERATION"), "OK 1")
        sock_mode = os.stat(os.path.join(self.run_dir, "dataplane.sock")).st_mode & 0o777
        self.assertEqual(sock_mode, 0o660)

    def test_02_udp_ipv4(self):
        self.assert_answers(OLD)
        resp = self.ask("missing.dp.test.")
        self.assertEqual(resp.rcode(), dns.rcode.NXDOMAIN)
        # Many queries from fresh sockets: every reply comes back, whichever worker took it.
        for _ in range(20):
            self.assertEqual(h.answer_values(self.ask("host.dp.test.")), [OLD["host_v4"]])

    def test_03_udp_ipv6(self):
        if not self.ipv6:
            self.skipTest("no IPv6 loopback")
        self.assert_answers(OLD, v6=True)

    def test_04_tcp_pipelined(self):
        families = ["127.0.0.1"] + (["::1"] if self.ipv6 else [])
        names = [("host.dp.test.", "A", [OLD["host_v4"]]),
                 ("host.dp.test.", "AAAA", [OLD["host_v6"]]),
                 ("missing.dp.test.", "A", []),
                 ("svc.dp.test.", "A", [OLD["svc_v4"]]),
                 ("dp.test.", "TXT", ['"generation 1"'])]
        for addr in families:
            s = h.tcp_connect(self.port, addr)
            try:
                # All queries in one write, the last one split over two writes.
                wires = [h.make_query(n, t, want_id=100 + i).to_wire()
                         for i, (n, t, _) in enumerate(names)]
                stream = b"".join(h.frame(w) for w in wires)
                s.sendall(stream[:-3])
                time.sleep(0.05)
                s.sendall(stream[-3:])
                for i, (name, rdtype, want) in enumerate(names):
                    resp = dns.message.from_wire(h.recv_frame(s))
                    self.assertEqual(resp.id, 100 + i, "answers must come in query order")
                    self.assertEqual(str(resp.question[0].name), name)
                    self.assertEqual(h.answer_values(resp, rdtype), want)
                # The connection stays usable after the pipeline.
                s.sendall(h.frame(h.make_query("host.dp.test.", "A", want_id=7).to_wire()))
                resp = dns.message.from_wire(h.recv_frame(s))
                self.assertEqual((resp.id, h.answer_values(resp)), (7, [OLD["host_v4"]]))
            finally:
                s.close()
        self.assert_answers(OLD, tcp=True)

    def test_05_garbage_is_counted(self):
        before = self.status()["totals"]
        too_short = b"\x12\x34\x01"
        response_bit = bytearray(h.make_query("host.dp.test.", "A").to_wire())
        response_bit[2] |= 0x80  # QR=1: a response, never answered
        self.assertIsNone(h.raw_udp(too_short, "127.0.0.1", self.port))
        self.assertIsNone(h.raw_udp(bytes(response_bit), "127.0.0.1", self.port))
        deadline = time.monotonic() + 3
        while True:
            status = self.status()
            if (status["totals"]["malformed_dropped"] >= before["malformed_dropped"] + 2 or
                    time.monotonic() > deadline):
                break
            time.sleep(0.02)
        self.assertEqual(status["totals"]["malformed_dropped"], before["malformed_dropped"] + 2)
        # Shape: one entry per UDP worker plus the TCP thread; totals are the per-worker sums.
        workers = status["workers"]
        self.assertEqual([w["transport"] for w in workers], ["udp"] * WORKERS + ["tcp"])
        self.assertEqual([w["worker"] for w in workers], list(range(WORKERS + 1)))
        for key, total in status["totals"].items():
            self.assertEqual(total, sum(w[key] for w in workers), key)
        self.assertEqual(status["generation"], 1)
        self.assertGreater(workers[-1]["tcp_queries"], 0)
        self.assertGreater(workers[-1]["tcp_connections"], 0)
        self.assertGreater(sum(w["udp_queries"] for w in workers[:-1]), 0)
        # The server still answers after the garbage.
        self.assert_answers(OLD)

    def test_06_bad_publish_keeps_old_image(self):
        # A sealed memfd is not checksummed (nothing can change it on its way), so the body
        # corruption must be one the cross-reference checks catch: a name-index bucket that
        # points past the last node.
        corrupt = bytearray(self.new_image)
        offset, size = section_span(self.new_image, SECTION_NAME_INDEX)
        buckets = struct.unpack_from("<%dI" % (size // 4), self.new_image, offset)
        used = next(i for i, v in enumerate(buckets) if v != 0)
        struct.pack_into("<I", corrupt, offset + 4 * used, 0xFFFFFFF0)
        reply = self.publish(bytes(corrupt), 2)
        self.assertTrue(reply.startswith("ERR "), reply)
        self.assertIn("name index", reply)
        reply = self.publish(self.new_image[:100], 2)  # truncated
        self.assertTrue(reply.startswith("ERR "), reply)
        reply = self.publish(self.new_image, 2, seal=False)  # could change after validation
        self.assertTrue(reply.startswith("ERR "), reply)
        reply = self.publish(self.new_image, 3)  # announced generation differs from the image's
        self.assertTrue(reply.startswith("ERR "), reply)
        reply = self.publish(self.old_image, 1)  # not newer than the active one
        self.assertTrue(reply.startswith("ERR stale generation"), reply)
        reply = self.request("PUBLISH 2")  # no descriptor
        self.assertTrue(reply.startswith("ERR "), reply)
        self.assertTrue(self.request("BOGUS").startswith("ERR "))

        self.assertEqual(self.request("GENERATION"), "OK 1")
        self.assert_answers(OLD)
        self.assert_answers(OLD, tcp=True)
        with open(os.path.join(self.run_dir, "snapshot.bin"), "rb") as f:
            self.assertEqual(image_generation(f.read()), 1)

    def test_07_publish_swaps_in_new_image(self):
        self.assertEqual(self.publish(self.new_image, 2), "OK 2")
        self.assertEqual(self.request("GENERATION"), "OK 2")
        self.assertEqual(self.status()["generation"], 2)
        self.assert_answers(NEW)
        self.assert_answers(NEW, tcp=True)
        if self.ipv6:
            self.assert_answers(NEW, v6=True)
        resp = self.ask("dp.test.", "TXT")
        self.assertEqual(h.answer_values(resp), ['"generation 2"'])
        # Saved as the last good image for the next start, after the reply.
        deadline = time.monotonic() + 10
        while self.status()["saved"]["generation"] != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(os.path.join(self.run_dir, "snapshot.bin"), "rb") as f:
            self.assertEqual(f.read(), self.new_image)
        self.assertGreater(self.status()["last_publish"]["total_us"], 0)
        self.assertIn("published generation 2", self.daemon.log())

    def test_99_sigterm_exits_cleanly(self):
        self.daemon.signal(signal.SIGTERM)
        self.daemon.proc.wait(timeout=h.STOP_TIMEOUT_S)
        self.assertEqual(self.daemon.proc.returncode, 0, self.daemon.describe())
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "dataplane.sock")))
        self.assertTrue(os.path.exists(os.path.join(self.run_dir, "snapshot.bin")))


if __name__ == "__main__":
    h.main()
