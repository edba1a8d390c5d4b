"""Driver of bench/publish-scale.sh (see there). Stops only what it started."""
import json
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import gtm_harness as h  # noqa: E402
import publish_scale_config  # noqa: E402

members, static, flips, build = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
probes = (sys.argv[5] if len(sys.argv) > 5 else "probes") == "probes"
geo_db = os.environ.get("GTM_GEO_FULL_DB", os.path.join(
    HERE, "..", "..", "shared", "geo", "full", "geo-whois-asn-country.mmdb"))
FLAPPERS = 4
TIMEOUT_S = 30
READY_S = 120  # the full country database and 10,000 members: the first build takes a while


class Flapper:
    """The health endpoint of one flapper member: listening means up, closed means down."""

    def __init__(self, addr, port):
        self.addr, self.port, self.sock = addr, port, None

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(64)
        self.sock = s

    def serve(self):
        if self.sock is None:
            return
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.accept()[0].close()
        except BlockingIOError:
            pass

    def down(self):
        self.sock.close()
        self.sock = None


h.BUILD_DIR = os.path.abspath(build)
probe_port, flap_port = h.pick_free_port(), h.pick_free_port()
config = h.write_config("")
publish_scale_config.write(config, members, static, FLAPPERS, probe_port if probes else 0,
                           flap_port, os.path.abspath(geo_db))
env = h.GtmEnv(config, ipv6=False, ready_timeout=READY_S)
sink = h.Daemon("gtm-bench-tcp-sink", [h.binary("gtm-bench-tcp-sink"), str(probe_port)],
                config + ".sink.log", "ready")
flappers = [Flapper(f"127.2.0.{k + 1}", flap_port) for k in range(FLAPPERS)]
try:
    for f in flappers:
        f.up()
    if probes:
        sink.start()
    env.start()
    status = env.control_status

    def settle(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for f in flappers:
                f.serve()
            time.sleep(0.01)

    settle(3)  # every member probed: the steady state
    image_bytes = None
    rows = []
    for i in range(flips):
        f = flappers[i % FLAPPERS]
        before = status()
        if f.sock is None:
            f.up()
        else:
            f.down()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            settle(0.02)
            now = status()
            if now["events"] > before["events"] and now["acked_generation"] > before["acked_generation"]:
                break
            if time.monotonic() > deadline:
                sys.exit(f"publish-scale: flip {i} was not published\n{env.control.log()[-3000:]}")
        settle(0.3)  # the events of this flip are all in; the next flip starts from quiet
        now = status()
        dps = env.status()
        row = {"verdict_to_ack_us": now["last_health_publish_us"],
               "control_build_memfd_us": now["last_build_us"],
               "control_publish_round_trip_us": now["last_publish_us"],
               "health_builds": now["health_builds"], "full_builds": now["full_builds"]}
        row.update({"dp_" + k: v for k, v in dps.get("last_publish", {}).items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if all(isinstance(r.get(k), (int, float)) for r in rows)]
    print(f"{'figure':32} {'median':>10} {'min':>10} {'max':>10}")
    for k in keys:
        v = [r[k] for r in rows]
        print(f"{k:32} {statistics.median(v):10.0f} {min(v):10.0f} {max(v):10.0f}")
    st = status()
    med = statistics.median(r["verdict_to_ack_us"] for r in rows)
    print(f"publish_scale: members={members} static={static} probes={'on' if probes else 'off'} "
          f"flips={flips} geo_classes={st['geo'].get('classes')} "
          f"verdict_to_ack_us_median={med:.0f} loadavg={os.getloadavg()[0]:.2f}")
finally:
    env.close()
    sink.stop()
    for f in flappers:
        if f.sock is not None:
            f.down()
    for path in (config, config + ".sink.log"):
        if os.path.exists(path):
            os.unlink(path)
