"""Driver of bench/health-scale.sh (see there). Stops only what it started, cleans up its namespace."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import gtm_harness as h  # noqa: E402

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
INTERVAL_MS = 1000
PER_POOL = 100


def cpu_split(pid):
    """(user, system) clock ticks of the process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(pid):
    return sum(cpu_split(pid))


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


h.BUILD_DIR = os.path.abspath(build)
probe_port = h.pick_free_port()
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
config = h.write_config("\n".join(lines) + "\n")
env = h.GtmEnv(config, ipv6=False, ready_timeout=60)


site = h.NetnsSite("gtmhs", 0) if mode == "netns" else None  # 198.18.0.1 <-> 198.18.0.2
sink = None
try:
    sink_cmd = [h.binary("gtm-bench-tcp-sink"), str(probe_port)]
    if site is not None:
        site.start()
        # Every address of 198.19.0.0/16 is local inside the namespace.
        subprocess.run(["ip", "-n", site.name, "addr", "add", "198.19.0.0/16", "dev", "lo"],
                       check=True)
        subprocess.run(["ip", "-n", site.name, "route", "add", "default", "via", site.host_v4],
                       check=True)
        subprocess.run(["ip", "route", "add", "198.19.0.0/16", "via", site.v4], check=True)
        sink_cmd = ["ip", "netns", "exec", site.name] + sink_cmd
    sink = h.Daemon("gtm-bench-tcp-sink", sink_cmd, config + ".sink.log", "ready")
    sink.start()
    env.start()
    cp, cp_log = env.control.proc, env.control.log_path
    time.sleep(3)  # every member probed at least twice: all up, steady state from here
    hz = os.sysconf("SC_CLK_TCK")
    downs0 = open(cp_log).read().count(" down after ")
    s0, t0, c0, u0 = env.control_status(), time.monotonic(), cpu_ticks(cp.pid), cpu_split(cp.pid)
    n0, m0 = cpu_ns(cp.pid), machine_ticks()
    time.sleep(seconds)
    s1, t1, c1, u1 = env.control_status(), time.monotonic(), cpu_ticks(cp.pid), cpu_split(cp.pid)
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
        p0 = env.control_status()["probes_completed"]
        out = subprocess.run(["timeout", "-s", "INT", "3", "strace", "-c", "-f", "-p", str(cp.pid)],
                             capture_output=True, text=True)
        probes = env.control_status()["probes_completed"] - p0
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
    env.close()
    if sink is not None:
        sink.stop()
    for path in (config, config + ".sink.log"):
        if os.path.exists(path):
            os.unlink(path)
    if site is not None:
        subprocess.run(["ip", "route", "del", "198.19.0.0/16"], stderr=subprocess.DEVNULL)
        site.close()
