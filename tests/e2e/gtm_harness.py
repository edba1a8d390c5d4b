"""Shared end-to-end harness: starts the real gtm processes on loopback and talks DNS to them.

Every test file does `sys.path.insert(0, os.path.dirname(__file__))`, imports this module and ends
with `gtm_harness.main()`, which runs unittest, dumps the daemons' stderr for any failing test and
prints "N passed, N failed".

Processes are only ever stopped by their own PID (SIGTERM, then SIGKILL after a timeout), and every
environment removes its temporary run directory, also when a test fails half-way.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

SOURCE_DIR = os.environ.get(
    "GTM_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("GTM_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

READY_TIMEOUT_S = 15.0   # generous: the sanitizer build starts slowly
STOP_TIMEOUT_S = 5.0
CLIENT_TIMEOUT_S = 2.0

# Environments alive right now; a failing test dumps their logs (see _DumpingResult).
_live_envs = []


# The zone every small test configuration starts with; tests append monitors and services.
ZONE_HEADER = """
zones:
  - name: gtm.example.
    soa: {mname: ns1, rname: hostmaster, serial: 1, minimum: 5}
    ns: [ns1]
    records:
      - {name: ns1, type: A, data: 127.0.0.1}
"""


def binary(name):
    path = os.path.join(BUILD_DIR, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not built (GTM_BUILD_DIR={BUILD_DIR})")
    return path


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def pick_free_port(families=((socket.AF_INET, "127.0.0.1"),)):
    """A port that is free for both UDP and TCP on every given (family, address) right now."""
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        held = [probe]
        try:
            for fam, addr in families:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    if fam == socket.AF_INET and kind == socket.SOCK_STREAM:
                        continue  # that is the probe itself
                    s = socket.socket(fam, kind)
                    held.append(s)
                    s.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free UDP+TCP port found")


def seqpacket_request(path, request, timeout=CLIENT_TIMEOUT_S):
    """One request on a daemon's control socket (SOCK_SEQPACKET: one message each way)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.send(request.encode())
        return s.recv(1 << 16).decode()


class Daemon:
    """One child process whose stderr goes to a file; waits for its "ready" line."""

    def __init__(self, name, argv, log_path, ready_text):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.ready_text = ready_text
        self.proc = None

    def start(self, timeout=READY_TIMEOUT_S):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_text in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before ready\n"
                                   f"{self.describe()}")
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout}s\n{self.describe()}")

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def describe(self):
        return (f"--- {self.name}: {' '.join(self.argv)}\n--- {self.name} output ---\n"
                f"{self.log()}--- end of {self.name} output ---")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM by PID, SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class GtmEnv:
    """A dataplane (+ optionally a control plane) on a fresh port and a temporary run directory.

    Use as a context manager, or call start()/close() from setUpClass/tearDownClass; close() always
    stops what was started and removes the run directory.
    """

    def __init__(self, config=None, dataplane_args=(), with_control=True, ipv6=None,
                 ready_timeout=READY_TIMEOUT_S):
        self.config = config  # path of a YAML file (copied into the run directory)
        self.ready_timeout = ready_timeout
        self.dataplane_args = list(dataplane_args)
        self.with_control = with_control
        self.ipv6 = ipv6_loopback_available() if ipv6 is None else ipv6
        self.run_dir = None
        self.port = None
        self.dataplane = None
        self.control = None
        self.config_path = None

    # -- lifecycle --

    def start(self):
        self.run_dir = tempfile.mkdtemp(prefix="gtm-e2e-")
        _live_envs.append(self)
        try:
            families = [(socket.AF_INET, "127.0.0.1")]
            if self.ipv6:
                families.append((socket.AF_INET6, "::1"))
            self.port = pick_free_port(families)
            listen = ["--listen", f"127.0.0.1:{self.port}"]
            if self.ipv6:
                listen += ["--listen", f"[::1]:{self.port}"]
            self.dataplane = Daemon(
                "gtm-dataplane",
                [binary("gtm-dataplane")] + listen + ["--run-dir", self.run_dir] +
                self.dataplane_args,
                os.path.join(self.run_dir, "dataplane.log"), "gtm-dataplane: ready")
            self.dataplane.start(self.ready_timeout)
            if self.with_control:
                self.config_path = os.path.join(self.run_dir, "config.yaml")
                shutil.copyfile(self.config, self.config_path)
                self.control = Daemon(
                    "gtm-control",
                    [binary("gtm-control"), "--config", self.config_path,
                     "--run-dir", self.run_dir],
                    os.path.join(self.run_dir, "control.log"), "gtm-control: ready")
                self.control.start(self.ready_timeout)
        except BaseException:
            sys.stderr.write(self.describe() + "\n")
            self.close()
            raise
        return self

    def close(self):
        """Stops the daemons (control first) and removes the run directory. Returns a list of
        problems: daemons that did not exit with status 0 on SIGTERM, with their output."""
        problems = []
        for d in (self.control, self.dataplane):
            if d is None or d.proc is None:
                continue
            try:
                status = d.stop()
                if status != 0:
                    problems.append(f"{d.name} exited with status {status} (expected 0 after SIGTERM)\n"
                                    f"{d.describe()}")
            except Exception as e:  # keep cleaning up
                problems.append(f"stopping {d.name}: {e}")
        if self in _live_envs:
            _live_envs.remove(self)
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        return problems

    def close_checked(self):
        """close(), failing if a daemon did not shut down cleanly (e.g. a sanitizer report)."""
        problems = self.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close_checked()
        else:
            self.close()
        return False

    def describe(self):
        return "\n".join(d.describe() for d in (self.dataplane, self.control) if d is not None)

    def assert_alive(self):
        for d in (self.dataplane, self.control):
            if d is not None and not d.alive():
                raise AssertionError(f"{d.name} died (status {d.proc.returncode})\n{d.describe()}")

    # -- control socket --

    def _seqpacket(self, sock_name, request, timeout=CLIENT_TIMEOUT_S):
        return seqpacket_request(os.path.join(self.run_dir, sock_name), request, timeout)

    def dataplane_request(self, request):
        return self._seqpacket("dataplane.sock", request)

    def status(self):
        return json.loads(self.dataplane_request("STATUS"))

    def totals(self):
        return self.status()["totals"]

    def wait_totals(self, predicate, timeout=3.0):
        """Polls STATUS until predicate(totals) holds; returns the last totals either way."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.totals()
            if predicate(t) or time.monotonic() > deadline:
                return t
            time.sleep(0.02)

    # -- DNS clients bound to this environment --

    def addr(self, v6=False):
        return "::1" if v6 else "127.0.0.1"

    def query(self, msg, tcp=False, v6=False, timeout=CLIENT_TIMEOUT_S, **kw):
        return dns_query(msg, self.addr(v6), self.port, tcp=tcp, timeout=timeout, **kw)

    def ask(self, name, rdtype="A", tcp=False, v6=False, **make_kw):
        return self.query(make_query(name, rdtype, **make_kw), tcp=tcp, v6=v6)

    def control_status(self):
        """gtm-control's STATUS reply, parsed."""
        return json.loads(self._seqpacket("control.sock", "STATUS"))

    def answers(self, name, rdtype="A"):
        return set(answer_values(self.ask(name, rdtype), rdtype))

    def wait_answers(self, name, expected, limit_s, rdtype="A"):
        """Polls until the answer set of `name` is `expected`, for at most limit_s + 2 s (slack for
        slow sanitizer builds); returns the seconds it took, raises AssertionError otherwise."""
        start = time.monotonic()
        got = None
        while time.monotonic() - start < limit_s + 2:
            got = self.answers(name, rdtype)
            if got == set(expected):
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"{name}: answers {got} != {set(expected)} after {limit_s + 2:.1f} s")

    def wait_answers_within(self, start, name, expected, limit_s, rdtype="A"):
        """wait_answers, but the bound counts from `start` (a time.monotonic() taken before the
        change) and is strict: raises AssertionError when the answers came later. Returns the
        seconds since `start`."""
        self.wait_answers(name, expected, limit_s, rdtype)
        took = time.monotonic() - start
        if took > limit_s:
            raise AssertionError(f"{name} {rdtype}: answers {set(expected)} after {took:.3f} s, "
                                 f"more than {limit_s:.1f} s")
        return took

    def raw_udp(self, payload, timeout=0.5, v6=False):
        return raw_udp(payload, self.addr(v6), self.port, timeout)

    def dig(self, *args, **kw):
        return dig(self.port, *args, **kw)

    def kdig(self, *args, **kw):
        return kdig(self.port, *args, **kw)


# ---------------------------------------------------------------------------------------------
# dnspython helpers


def make_query(name, rdtype="A", use_edns=None, payload=1232, options=None, rd=True, want_id=None):
    """A query message. use_edns=None: no OPT unless options are given."""
    if use_edns is None:
        use_edns = 0 if options else False
    msg = dns.message.make_query(name, rdtype)
    # Set EDNS after make_query: its want_dnssec step resets a non-zero EDNS version to 0.
    msg.use_edns(use_edns, payload=payload, options=options or [])
    if not rd:
        msg.flags &= ~dns.flags.RD
    if want_id is not None:
        msg.id = want_id
    return msg


def dns_query(msg, addr, port, tcp=False, timeout=CLIENT_TIMEOUT_S, ignore_trailing=False):
    if tcp:
        return dns.query.tcp(msg, addr, port=port, timeout=timeout)
    return dns.query.udp(msg, addr, port=port, timeout=timeout, ignore_trailing=ignore_trailing)


def raw_udp(payload, addr, port, timeout=0.5):
    """Sends raw bytes; returns the reply bytes or None when nothing came back within timeout."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (addr, port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def rcode_of(wire):
    """Rcode (low 4 bits) of a raw reply header."""
    return struct.unpack("!H", wire[2:4])[0] & 0xF


def answer_values(resp, rdtype=None):
    """Sorted text of the answer RRs (optionally only one type)."""
    out = []
    for rrset in resp.answer:
        if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out.extend(rd.to_text() for rd in rrset)
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# TCP framing (RFC 1035 4.2.2 / RFC 7766)


def tcp_connect(port, addr="127.0.0.1", timeout=CLIENT_TIMEOUT_S):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((addr, port))
    return s


def frame(wire):
    return struct.pack("!H", len(wire)) + wire


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(s):
    (n,) = struct.unpack("!H", recv_exact(s, 2))
    return recv_exact(s, n)


def wait_closed(s, timeout):
    """Seconds until the peer closed the connection (EOF or reset), or None if still open."""
    start = time.monotonic()
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65535)
            if not data:
                return time.monotonic() - start
            # Data is not expected here; keep reading until the close.
    except socket.timeout:
        return None
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except OSError as e:
        if e.errno in (errno.ECONNRESET, errno.EPIPE):
            return time.monotonic() - start
        raise


def wait_all_closed(socks, timeout):
    """time.monotonic() at which the peer closed each socket, or None for those still open."""
    closed = [None] * len(socks)
    deadline = time.monotonic() + timeout
    while None in closed:
        pending = [s for s, c in zip(socks, closed) if c is None]
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select(pending, [], [], left)
        for s in readable:
            i = socks.index(s)
            try:
                data = s.recv(65535)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                closed[i] = time.monotonic()
    return closed


# ---------------------------------------------------------------------------------------------
# dig / kdig


class DigResult:
    """The parts of a dig or kdig answer the tests look at."""

    def __init__(self, text):
        self.text = text
        self.status = None
        self.flags = set()
        self.counts = {}
        self.sections = {"QUESTION": [], "ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
        self.edns = None          # dict: version, udp, flags; None when the reply had no OPT
        self.ecs = None           # "192.0.2.0/24/0" as printed
        self.truncated_retry = "Truncated, retrying in TCP mode" in text
        self._parse()

    def _parse(self):
        section = None
        for line in self.text.splitlines():
            m = re.search(r"->>HEADER<<-.*status: (\w+)", line)
            if m:
                self.status = m.group(1)  # the last header wins (dig prints one per reply kept)
                self.flags = set()
                self.counts = {}
                self.sections = {k: [] for k in self.sections}
                self.edns = None
                self.ecs = None
                continue
            m = re.match(r";; [Ff]lags:([^;]*);(.*)", line)
            if m:
                self.flags = set(m.group(1).split())
                for k, v in re.findall(r"(QUERY|ANSWER|AUTHORITY|ADDITIONAL): (\d+)", m.group(2)):
                    self.counts[k] = int(v)
                continue
            # dig: "; EDNS: version: 0, flags:; udp: 1232"
            # kdig: ";; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: NOERROR"
            m = re.match(r";+ ?(?:EDNS: version|Version): (\d+)[,;] flags:([^;]*);\s*"
                         r"(?:udp|UDP size): (\d+)", line)
            if m:
                self.edns = {"version": int(m.group(1)), "flags": m.group(2).split(),
                             "udp": int(m.group(3))}
                continue
            m = re.match(r";+ ?CLIENT-SUBNET: (\S+)", line)
            if m:
                self.ecs = m.group(1)
                continue
            m = re.match(r";; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:", line)
            if m:
                section = m.group(1)
                continue
            if not line.strip() or line.startswith(";;"):
                section = None if not line.strip() else section
                continue
            if section == "QUESTION":
                self.sections[section].append(line.lstrip(";").split())
            elif section:
                self.sections[section].append(line.split())

    def rrs(self, section="ANSWER", rdtype=None):
        """[(owner, ttl, type, rdata-text)] of a section."""
        out = []
        for f in self.sections[section]:
            if len(f) >= 4 and f[2] == "IN":
                if rdtype is None or f[3] == rdtype:
                    out.append((f[0], int(f[1]), f[3], " ".join(f[4:])))
        return out


def _run_client(argv, timeout):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return p


def dig(port, *args, addr="127.0.0.1", timeout=10.0):
    """Runs dig against the server; returns a DigResult (or the stdout text when +short)."""
    argv = ["dig", f"@{addr}", "-p", str(port), "+time=2", "+tries=1", "+norecurse"] + list(args)
    p = _run_client(argv, timeout)
    if any(a == "+short" for a in args):
        return p.stdout
    return DigResult(p.stdout)


def kdig(port, *args, addr="127.0.0.1", timeout=10.0):
    argv = ["kdig", f"@{addr}", "-p", str(port), "+time=2", "+retry=0", "+norecurse"] + list(args)
    p = _run_client(argv, timeout)
    if any(a == "+short" for a in args):
        return p.stdout
    return DigResult(p.stdout)


def short_lines(text):
    return sorted(line.strip() for line in text.splitlines() if line.strip())


# ---------------------------------------------------------------------------------------------
# Network namespaces (root only)

NETNS_LOCK = "/run/lock/gtm-netns.lock"
# The lock is per machine, not per namespace: one process may set up several sites, so it holds the
# flock once and counts its holders (a second flock on a new open of the file would wait forever
# for the first).
_netns_lock_file = None
_netns_lock_holders = 0


def acquire_netns_lock():
    """Waits until no other process has namespaces or root-namespace routes set up (HELPERS.md)."""
    global _netns_lock_file, _netns_lock_holders
    if _netns_lock_holders == 0:
        _netns_lock_file = open(NETNS_LOCK, "w")
        fcntl.flock(_netns_lock_file, fcntl.LOCK_EX)
    _netns_lock_holders += 1


def release_netns_lock():
    global _netns_lock_file, _netns_lock_holders
    _netns_lock_holders -= 1
    if _netns_lock_holders == 0:
        _netns_lock_file.close()  # releases the flock
        _netns_lock_file = None


class NetnsSite:
    """A network namespace behind a veth pair, as a remote site: the root side has 198.18.N.1/30
    and 2001:2:0:N::1/64 (RFC 2544 / RFC 5180 benchmarking space), the namespace 198.18.N.2 and
    2001:2:0:N::2. Names carry the pid. Holds the machine's netns lock (HELPERS.md) from start()
    to close(), so concurrent runs never share root-namespace addresses; close() removes everything,
    also after a failure half-way through start()."""

    def __init__(self, tag, n):
        self.name = f"{tag}{os.getpid()}"
        self.host_if, self.site_if = f"{self.name}h", f"{self.name}s"
        self.host_v4, self.v4 = f"198.18.{n}.1", f"198.18.{n}.2"
        self.host_v6, self.v6 = f"2001:2:0:{n}::1", f"2001:2:0:{n}::2"
        self._locked = False
        self._procs = []

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip"] + list(args), check=True, stdout=subprocess.DEVNULL)

    def start(self):
        acquire_netns_lock()
        self._locked = True
        try:
            self._ip("netns", "add", self.name)
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.site_if)
            self._ip("link", "set", self.site_if, "netns", self.name)
            # Without this, taking the link down would also delete its IPv6 addresses.
            subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                            f"net.ipv6.conf.{self.site_if}.keep_addr_on_down=1"], check=True)
            self._ip("addr", "add", f"{self.host_v4}/30", "dev", self.host_if)
            self._ip("addr", "add", f"{self.host_v6}/64", "dev", self.host_if, "nodad")
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.name, "addr", "add", f"{self.v4}/30", "dev", self.site_if)
            self._ip("-n", self.name, "addr", "add", f"{self.v6}/64", "dev", self.site_if, "nodad")
            self._ip("-n", self.name, "link", "set", self.site_if, "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def link(self, up):
        """Takes the site's interface down (nothing answers from it) or up again."""
        self._ip("-n", self.name, "link", "set", self.site_if, "up" if up else "down")

    def popen(self, argv, **kw):
        """Starts a process inside the namespace; close() stops it (by PID)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + list(argv), **kw)
        self._procs.append(p)
        return p

    def close(self):
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._procs = []
        subprocess.run(["ip", "link", "del", self.host_if], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        if self._locked:
            release_netns_lock()
            self._locked = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


class PassiveListener:
    """A listening TCP socket that never accepts: enough for half-open probes (the handshake never
    completes), and accepted_nothing() shows that it did not."""

    def __init__(self, addr, port):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        self.sock.setblocking(False)

    def accepted_nothing(self):
        try:
            c, _ = self.sock.accept()
            c.close()
            return False
        except BlockingIOError:
            return True

    def close(self):
        self.sock.close()


def free_port_on(addrs):
    """A TCP port free on every address of `addrs` right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for a in addrs:
                with socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET) as t:
                    t.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def write_config(text):
    """Writes a configuration to a temporary file; returns its path (the caller unlinks it)."""
    fd, path = tempfile.mkstemp(prefix="gtm-e2e-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# Running


class _DumpingResult(unittest.TextTestResult):
    """Prints the daemons' output next to every failure, so a CTest log explains itself."""

    def _dump(self):
        for env in list(_live_envs):
            self.stream.write("\n" + env.describe() + "\n")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump()

    def addError(self, test, err):
        super().addError(test, err)
        self._dump()


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_DumpingResult, stream=sys.stdout)
    result = runner.run(suite)
    # Subtest failures count once, for their test; errors in setUpClass/tearDownClass are not
    # test cases but still count as a failure of the run.
    failed_cases, other = set(), 0
    for t, _ in result.failures + result.errors:
        if isinstance(t, unittest.TestCase):
            failed_cases.add(id(getattr(t, "test_case", t)))
        else:
            other += 1
    failed_cases |= {id(t) for t in result.unexpectedSuccesses}
    passed = result.testsRun - len(failed_cases) - len(result.skipped)
    failed = len(failed_cases) + other
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() else 1)


@contextlib.contextmanager
def env(config=None, **kw):
    with GtmEnv(config, **kw) as e:
        yield e
