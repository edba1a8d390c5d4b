"""The failover drill (see scripts/failover-drill.sh). Addresses: 198.18.0.0/15 only; loopback for
gtm itself. Stops only the processes it started."""
import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import threading
import time

import dns.message
import dns.query
import dns.rdatatype

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import gtm_harness as h  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--interval-ms", type=int, default=200, help="monitor interval")
ap.add_argument("--ttl", type=int, default=1, help="TTL of the service's answers")
ap.add_argument("--duration", type=float, default=30, help="seconds of client traffic")
ap.add_argument("--rate", type=float, default=50, help="client requests per second")
ap.add_argument("--build", default="build")
args = ap.parse_args()

HTTP_PORT = 8080
# Each site is a namespace behind a veth pair: 198.18.1.2 (site a) and 198.18.2.2 (site b).
SITES = {"a": h.NetnsSite("gtmdra", 1), "b": h.NetnsSite("gtmdrb", 2)}


def start_sites():
    for name, site in SITES.items():
        site.start()
        # The site's web server: answers "site X" on / (its own Python, inside the namespace).
        code = ("import http.server,sys\n"
                "class H(http.server.BaseHTTPRequestHandler):\n"
                "  def do_GET(s):\n"
                f"    b=b'site {name}\\n'; s.send_response(200); s.send_header('Content-Length',str(len(b)));"
                " s.end_headers(); s.wfile.write(b)\n"
                "  def log_message(s,*a): pass\n"
                # The monitors close with a reset once they have their verdict: not an error.
                "class S(http.server.ThreadingHTTPServer):\n"
                "  def handle_error(s,*a): pass\n"
                f"S(('{site.v4}',{HTTP_PORT}),H).serve_forever()\n")
        site.popen(["/usr/bin/python3", "-c", code])
    # Both servers listen before gtm starts: the drill measures a failure, not a slow start.
    deadline = time.monotonic() + 10
    for site in SITES.values():
        while not fetch(site.v4)[0]:
            if time.monotonic() > deadline:
                sys.exit(f"drill: the web server of {site.name} does not answer")
            time.sleep(0.05)


def fail_site(site, failed):
    # The root side of the link goes down: the site's route disappears, as when a region drops off.
    subprocess.run(["ip", "link", "set", site.host_if, "down" if failed else "up"], check=True)


class Resolver:
    """A caching stub: asks gtm, keeps the answer for its TTL, rotates through the addresses."""

    def __init__(self, port):
        self.port = port
        self.addrs, self.expires, self.turn = [], 0.0, 0
        self.lock = threading.Lock()

    def pick(self):
        with self.lock:
            now = time.monotonic()
            if now >= self.expires or not self.addrs:
                q = dns.message.make_query("www.drill.example.", "A")
                r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=1.0)
                rrs = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.A]
                self.addrs = [a.address for rr in rrs for a in rr]
                ttl = rrs[0].ttl if rrs else 0
                self.expires = now + ttl
            if not self.addrs:
                return None
            self.turn += 1
            return self.addrs[self.turn % len(self.addrs)]


def fetch(addr):
    start = time.monotonic()
    try:
        with socket.create_connection((addr, HTTP_PORT), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: www.drill.example\r\n\r\n")
            data = s.recv(4096)
            ok = data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - start


def main():
    h.BUILD_DIR = os.path.abspath(args.build)
    interval = args.interval_ms
    timeout = max(10, interval * 4 // 5)
    config = h.write_config(f"""zones:
  - name: drill.example.
    soa: {{mname: ns1, rname: h, serial: 1, minimum: 1}}
    ns: [ns1]
    records:
      - {{name: ns1, type: A, data: 127.0.0.1}}
monitors:
  - {{name: web, type: http, port: {HTTP_PORT}, path: /, interval_ms: {interval},
      timeout_ms: {timeout}, rise: 2, fall: 2}}
services:
  - name: www.drill.example.
    ttl: {args.ttl}
    pools:
      - name: both-sites
        method: return-all
        monitors: [web]
        members:
          - {{name: site-a, address: {SITES['a'].v4}}}
          - {{name: site-b, address: {SITES['b'].v4}}}
""")
    env = h.GtmEnv(config, ipv6=False)
    try:
        start_sites()
        env.start()
        run_drill(env.port, interval)
    finally:
        env.close()
        for site in SITES.values():
            site.close()
        os.unlink(config)


def run_drill(dns_port, interval):
    resolver = Resolver(dns_port)
    # Until both sites are in the answers.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resolver.expires = 0
        if len(resolver.addrs) == 2 or (resolver.pick() and len(resolver.addrs) == 2):
            break
        time.sleep(0.05)

    site_a = SITES["a"].v4
    events = {}
    stop = threading.Event()

    def watch_answers():
        # Polls gtm directly (no cache) to time when site A leaves and returns.
        w = Resolver(dns_port)
        while not stop.is_set():
            w.expires = 0
            w.pick()
            present = site_a in w.addrs
            if "killed" in events and "removed" not in events and not present:
                events["removed"] = time.monotonic()
            if "restored" in events and "back" not in events and present:
                events["back"] = time.monotonic()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_answers, daemon=True)
    watcher.start()

    kill_at, restore_at = args.duration / 3, 2 * args.duration / 3
    results = []
    t0 = time.monotonic()
    period = 1.0 / args.rate
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        n = 0
        while True:
            now = time.monotonic() - t0
            if now >= args.duration:
                break
            if now >= kill_at and "killed" not in events:
                fail_site(SITES["a"], True)
                events["killed"] = time.monotonic()
            if now >= restore_at and "restored" not in events:
                fail_site(SITES["a"], False)
                events["restored"] = time.monotonic()
            addr = resolver.pick()
            sent = time.monotonic()
            futures.append((sent, pool.submit(fetch, addr) if addr else None))
            n += 1
            time.sleep(max(0.0, t0 + n * period - time.monotonic()))
        for sent, fut in futures:
            ok, latency = fut.result() if fut else (False, 0.0)
            results.append((sent, ok, latency))
    stop.set()
    watcher.join()

    total = len(results)
    failed = [r for r in results if not r[1]]
    lat = sorted(r[2] for r in results if r[1])
    window = (failed[-1][0] - failed[0][0]) if failed else 0.0
    removal = events.get("removed", float("nan")) - events["killed"]
    restore = events.get("back", float("nan")) - events["restored"]

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")

    print(f"Drill: 2 sites, monitor interval {interval} ms (rise 2, fall 2), TTL {args.ttl} s, "
          f"{args.rate:g} qps for {args.duration:g} s; site a fails at {kill_at:.1f} s, "
          f"recovers at {restore_at:.1f} s")
    print(f"# target 50% {pct(50):.2f} ms")
    print(f"# target 90% {pct(90):.2f} ms")
    print(f"# target 99% {pct(99):.2f} ms")
    print(f"Code 200 : {total - len(failed)} ({100.0 * (total - len(failed)) / total:.1f} %)")
    print(f"Code -1 : {len(failed)} ({100.0 * len(failed) / total:.1f} %)")
    print(f"drill: total={total} failed={len(failed)} error_window_s={window:.2f} "
          f"removal_s={removal:.2f} restore_s={restore:.2f}")


main()
