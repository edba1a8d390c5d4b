"""Driver of bench/health-scale.sh (see there). Stops only what it started, cleans up its namespace."""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

members, seconds, build = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
# "loopback": targets are 127.1.x.y on this host. "netns": targets are 198.19.x.y inside a network
# namespace of their own behind a veth pair (198.18.0.1 <-> 198.18.0.2), so the targets' side of
# every handshake is not run inside gtm-control's system calls as it is on loopback.
mode = sys.argv[4] if len(sys.argv) > 4 else "loopback"
# The monitor type: "tcp" (connect), "tcp-half-open" (SYN from a raw socket) or "icmp" (echo, with
# ICMP_COUNT requests per probe).
monitor = sys.argv[5] if len(sys.argv) > 5 else "tcp"
icmp_count = int(sys.argv[6]) if len(sys.argv) > 6 else 3
if monitor not in ("tcp", "tcp-half-open", "icmp"):
    sys.exit(f"health-scale: unknown monitor type {monitor!r}")
NS = f"gtmhs{os.getpid()}"
INTERVAL_MS = 1000
PER_POOL = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_ns(pid):
    """CPU time the scheduler charged to the process, in ns (exact, unlike the tick counts)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def machine_ticks():
    """(busy, steal) jiffies of the whole machine: what else ran, and what the host took."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:3]) + sum(v[5:7]), v[7]


def cpu_split(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def control_status(run_dir):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(os.path.join(run_dir, "control.sock"))
    s.send(b"STATUS")
    reply = json.loads(s.recv(65536))
    s.close()
    return reply


def wait_line(path, text, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"health-scale: process exited:\n{open(path).read()}")
        if os.path.exists(path) and text in open(path).read():
            return
        time.sleep(0.05)
    sys.exit(f"health-scale: timed out waiting for {text!r}")


# One network-namespace user at a time on this machine (see scripts/failover_drill.py).
_netns_lock = open("/run/lock/gtm-netns.lock", "w")
if mode == "netns":
    fcntl.flock(_netns_lock, fcntl.LOCK_EX)
run_dir = tempfile.mkdtemp(prefix="gtm-health-scale-")
probe_port, dns_port = free_port(), free_port()
lines = ["zones:", "  - name: scale.example.", "    soa: {mname: ns1, rname: h, serial: 1}",
         "    ns: [ns1]", "    records:", "      - {name: ns1, type: A, data: 127.0.0.1}",
         "monitors:",
         f"  - {{name: m, type: {monitor}, interval_ms: {INTERVAL_MS}, timeout_ms: 500, "
         + (f"count: {icmp_count}, " if monitor == "icmp" else f"port: {probe_port}, ")
         + "rise: 2, fall: 2}", "services:"]
for svc in range((members + PER_POOL - 1) // PER_POOL):
    lines += [f"  - name: s{svc}.scale.example.", "    ttl: 30", "    pools:",
              "      - name: p", "        method: round-robin", "        monitors: [m]",
              "        members:"]
    for k in range(min(PER_POOL, members - svc * PER_POOL)):
        i = svc * PER_POOL + k + 1
        prefix = "198.19" if mode == "netns" else "127.1"
        lines.append(f"          - {{address: {prefix}.{i // 256}.{i % 256}}}")
config = os.path.join(run_dir, "scale.yaml")
with open(config, "w") as f:
    f.write("\n".join(lines) + "\n")

def sh(*cmd):
    subprocess.run(cmd, check=True)


procs = []
try:
    sink_cmd = [os.path.join(build, "gtm-bench-tcp-sink"), str(probe_port)]
    if mode == "netns":
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", f"{NS}h", "type", "veth", "peer", "name", f"{NS}n")
        sh("ip", "link", "set", f"{NS}n", "netns", NS)
        sh("ip", "addr", "add", "198.18.0.1/30", "dev", f"{NS}h")
        sh("ip", "link", "set", f"{NS}h", "up")
        sh("ip", "-n", NS, "addr", "add", "198.18.0.2/30", "dev", f"{NS}n")
        sh("ip", "-n", NS, "link", "set", f"{NS}n", "up")
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        # Every address of 198.19.0.0/16 is local inside the namespace.
        sh("ip", "-n", NS, "addr", "add", "198.19.0.0/16", "dev", "lo")
        sh("ip", "-n", NS, "route", "add", "default", "via", "198.18.0.1")
        sh("ip", "route", "add", "198.19.0.0/16", "via", "198.18.0.2")
        sink_cmd = ["ip", "netns", "exec", NS] + sink_cmd
    sink = subprocess.Popen(sink_cmd, stdout=subprocess.PIPE, text=True)
    procs.append(sink)
    sink.stdout.readline()
    dp_log, cp_log = os.path.join(run_dir, "dp.log"), os.path.join(run_dir, "cp.log")
    dp = subprocess.Popen([os.path.join(build, "gtm-dataplane"), "--listen",
                           f"127.0.0.1:{dns_port}", "--run-dir", run_dir],
                          stderr=open(dp_log, "w"))
    procs.append(dp)
    wait_line(dp_log, "gtm-dataplane: ready", dp)
    cp = subprocess.Popen([os.path.join(build, "gtm-control"), "--config", config, "--run-dir",
                           run_dir], stderr=open(cp_log, "w"))
    procs.append(cp)
    wait_line(cp_log, "gtm-control: ready", cp, timeout=60)
    time.sleep(3)  # every member probed at least twice: all up, steady state from here
    hz = os.sysconf("SC_CLK_TCK")
    downs0 = open(cp_log).read().count(" down after ")
    s0, t0, c0, u0 = control_status(run_dir), time.monotonic(), cpu_ticks(cp.pid), cpu_split(cp.pid)
    n0, m0 = cpu_ns(cp.pid), machine_ticks()
    time.sleep(seconds)
    s1, t1, c1, u1 = control_status(run_dir), time.monotonic(), cpu_ticks(cp.pid), cpu_split(cp.pid)
    n1, m1 = cpu_ns(cp.pid), machine_ticks()
    downs = open(cp_log).read().count(" down after ") - downs0
    rate = (s1["probes_completed"] - s0["probes_completed"]) / (t1 - t0)
    cpu = 100.0 * (c1 - c0) / hz / (t1 - t0)
    cpu_exact = 100.0 * (n1 - n0) / 1e9 / (t1 - t0)
    machine = 100.0 * (m1[0] - m0[0]) / hz / (t1 - t0)
    steal = 100.0 * (m1[1] - m0[1]) / hz / (t1 - t0)
    if os.environ.get("GTM_STRACE"):
        # System calls per probe (deterministic, unlike CPU time on a shared VM): strace slows the
        # process down, so this runs after the CPU window and counts probes over its own window.
        p0 = control_status(run_dir)["probes_completed"]
        out = subprocess.run(["timeout", "-s", "INT", "3", "strace", "-c", "-f", "-p", str(cp.pid)],
                             capture_output=True, text=True)
        probes = control_status(run_dir)["probes_completed"] - p0
        rows = [line.split() for line in out.stderr.splitlines() if line.strip()[:1].isdigit()]
        total = sum(int(r[3]) for r in rows if len(r) >= 5 and r[-1] != "total")
        print(out.stderr)
        print(f"syscalls_per_probe={total / max(probes, 1):.2f} (probes={probes})")
    if os.environ.get("GTM_PERF"):
        subprocess.run(["perf", "record", "-q", "-g", "-o", "/tmp/cp.perf", "-p", str(cp.pid), "--", "sleep", "3"])
    print(f"targets={s1['probe_targets']} window_s={t1 - t0:.1f} "
          f"probes={s1['probes_completed'] - s0['probes_completed']} "
          f"control_user_pct={100.0 * (u1[0] - u0[0]) / hz / (t1 - t0):.1f} "
          f"control_sys_pct={100.0 * (u1[1] - u0[1]) / hz / (t1 - t0):.1f} "
          f"control_sched_pct={cpu_exact:.1f} machine_busy_pct={machine:.1f} steal_pct={steal:.1f} "
          f"loadavg={os.getloadavg()[0]:.2f} targets_down_in_window={downs}")
    kind = monitor + (f" count={icmp_count}" if monitor == "icmp" else "")
    print(f"health_scale: mode={mode} monitor={kind} members={members} interval_ms={INTERVAL_MS} "
          f"probes_per_s={rate:.0f} control_cpu_pct={cpu:.1f}")
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    subprocess.run(["rm", "-rf", run_dir])
    if mode == "netns":
        subprocess.run(["ip", "route", "del", "198.19.0.0/16"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", f"{NS}h"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
