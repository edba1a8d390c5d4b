"""dnsperf end to end through a veth pair, socket backend next to the DPDK backend, on the same
machine: gtm-dataplane in one network namespace (the socket backend with one UDP worker on CPU 1,
or --io dpdk with nic_configs/af_packet.yaml or af_xdp.yaml: one lcore on CPU 1), dnsperf in the
other, pinned to CPU 0. Each mode runs SECONDS at full speed, then (DPDK modes) again while
gtm-control republishes the snapshot SWAPS times, to show what a swap under load costs.

Prints one line per run and ends with
  dnsperf-veth: socket_qps=X af_packet_qps=X af_xdp_qps=X swap_lost=N
Needs root; namespaces are named with the pid, created under /run/lock/gtm-netns.lock and removed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "dpdk"))
import dpdk_harness as dh  # noqa: E402
import gtm_harness as h  # noqa: E402

QUERIES = "static.gtm.example. A\nwww.gtm.example. A\nstatic.gtm.example. AAAA\n"


def dnsperf(ns, seconds, qfile):
    p = ns.client("taskset", "-c", "0", "dnsperf", "-s", dh.SERVICE4, "-d", qfile, "-l",
                  str(seconds), "-q", "500", "-c", "4", "-T", "1", timeout=seconds + 60)
    out = p.stdout
    def num(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else float("nan")
    return {"qps": num(r"Queries per second:\s+([\d.]+)"),
            "sent": num(r"Queries sent:\s+(\d+)"),
            "lost": num(r"Queries lost:\s+(\d+)"),
            "latency_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
            "text": out}


def start_control(work, run_dir):
    config = os.path.join(work, "zone.yaml")
    with open(config, "w") as f:
        f.write(dh.ZONE)
    control = h.Daemon("gtm-control", [h.binary("gtm-control"), "--config", config, "--run-dir",
                                       run_dir], os.path.join(work, "control.log"),
                       "gtm-control: ready")
    control.start()
    return control


def run_mode(mode, seconds, swaps):
    work = dh.work_dir("gtm-dnsperf-")
    ns = dh.Namespaces()
    dp = control = sock = None
    results = []
    try:
        ns.open()
        ns.veth(kernel_blind=(mode == "af_packet"))
        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w") as f:
            f.write(QUERIES * 100)
        if mode == "socket":
            dh.sh("ip", "-n", ns.dp, "addr", "add", f"{dh.SERVICE4}/24", "dev", "gtmveth0")
            run_dir = os.path.join(work, "run")
            os.makedirs(run_dir)
            sock = h.Daemon("gtm-dataplane",
                            ["ip", "netns", "exec", ns.dp, h.binary("gtm-dataplane"), "--listen",
                             f"{dh.SERVICE4}:53", "--workers", "1", "--cpus", "1", "--run-dir",
                             run_dir], os.path.join(work, "dataplane.log"), "gtm-dataplane: ready")
            sock.start()
        else:
            dp = dh.DpdkDataplane(os.path.join(dh.NIC_CONFIGS, f"{mode}.yaml"), work,
                                  netns=ns.dp)
            dp.start()
            run_dir = dp.run_dir
        control = start_control(work, run_dir)
        # Warm-up: ARP, and the first answers.
        ns.client("dig", f"@{dh.SERVICE4}", "+time=2", "+tries=3", "static.gtm.example.")
        r = dnsperf(ns, seconds, qfile)
        r["run"] = f"{mode}"
        results.append(r)
        if mode != "socket" and swaps:
            perf = subprocess.Popen(
                ["ip", "netns", "exec", ns.cl, "taskset", "-c", "0", "dnsperf", "-s", dh.SERVICE4,
                 "-d", qfile, "-l", str(seconds), "-q", "500", "-c", "4", "-T", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            done = 0
            gap = seconds / (swaps + 1)
            time.sleep(gap)
            while done < swaps and perf.poll() is None:
                dh.sh(h.binary("gtmctl"), "--run-dir", run_dir, "reload")
                done += 1
                time.sleep(gap)
            out = perf.communicate(timeout=seconds + 60)[0]
            m = re.search(r"Queries lost:\s+(\d+)", out)
            q = re.search(r"Queries per second:\s+([\d.]+)", out)
            s = re.search(r"Queries sent:\s+(\d+)", out)
            t = dp.totals()
            results.append({"run": f"{mode}+{done} swaps", "qps": float(q.group(1)),
                            "sent": float(s.group(1)), "lost": float(m.group(1)),
                            "latency_ms": float("nan"),
                            "unanswered": t["rx_dns"] - t["responses"] - t["malformed_dropped"]})
    finally:
        for d in (control, sock):
            if d is not None:
                d.stop()
        if dp is not None:
            dp.stop()
        ns.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--swaps", type=int, default=100)
    ap.add_argument("--modes", default="socket,af_packet,af_xdp")
    args = ap.parse_args()
    summary = {}
    swap_lost = 0
    for mode in args.modes.split(","):
        for r in run_mode(mode, args.seconds, args.swaps):
            extra = f", unanswered by the lcore {r['unanswered']}" if "unanswered" in r else ""
            print(f"{r['run']:>22}: {r['qps']:>9.0f} qps, sent {r['sent']:.0f}, lost "
                  f"{r['lost']:.0f}, average latency {r['latency_ms']:.3f} ms{extra}", flush=True)
            if "swaps" in r["run"]:
                swap_lost += int(r["lost"])
            else:
                summary[mode] = r["qps"]
    print("dnsperf-veth: " + " ".join(f"{m}_qps={summary[m]:.0f}" for m in summary) +
          f" swap_lost={swap_lost}")


if __name__ == "__main__":
    main()
