// Fuzzes the whole per-query path: parse_query + answer_query against a fixed snapshot, over UDP
// into a 512-octet buffer, in place, and over TCP. Any input must give a bounded, parsable-size
// response or a drop, never a crash or an out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "dataplane/engine/answer.h"

namespace {

// Exercises every answer path: static types, wildcard, CNAME chain/loop/out of zone, ENT, glue,
// and every GSLB method including failover, fallback, empty actions and a CNAME service; steering
// by client class (CIDR regions and ISP lines, IPv4 and IPv6), topology, persistence and drop.
// topo.example.com is the steered shape the pick table flattens (format.h PickEntry): access
// policy by region, topology then round-robin or ratio; the fast path answers it from the table,
// the general path (explain) from the chain, and the two are compared below.
const char* kYaml = R"(
regions:
  - {name: r4, cidr: [198.51.100.0/24, 10.0.0.0/8]}
  - {name: r6, cidr: ["2001:db8:1234::/48"]}
isp_lines:
  - {name: tel, cidr: [203.0.113.0/24, 198.51.100.128/25]}
datacenters: [d1, d2]
topology:
  - {client: r4, datacenter: d1, score: 10}
  - {client: tel, datacenter: d2, score: 20}
  - {client: "2001:db8::/32", datacenter: d2, score: 5}
zones:
  - name: example.com.
    soa: {mname: ns1.example.com., rname: h.example.com., serial: 1, minimum: 60, ttl: 3600}
    ns: [ns1.example.com., ns.other.net.]
    records:
      - {name: ns1, type: A, data: 192.0.2.53}
      - {name: ns1, type: AAAA, data: "2001:db8::53"}
      - {name: www, type: A, data: 192.0.2.1}
      - {name: www, type: AAAA, data: "2001:db8::1"}
      - {name: "@", type: MX, data: "10 mail"}
      - {name: "@", type: TXT, data: '"hello"'}
      - {name: _sip._udp, type: SRV, data: "10 60 5060 www"}
      - {name: "*.apps", type: A, data: 192.0.2.99}
      - {name: docs, type: CNAME, data: www}
      - {name: ext, type: CNAME, data: www.other.net.}
      - {name: loop1, type: CNAME, data: loop2}
      - {name: loop2, type: CNAME, data: loop1}
      - {name: a.b.deep, type: A, data: 192.0.2.7}
  - name: sub.example.com.
    soa: {mname: ns1.example.com., rname: h.example.com., serial: 1, minimum: 30, ttl: 600}
    ns: [ns1.example.com.]
    records:
      - {name: "*", type: CNAME, data: www.example.com.}
services:
  - name: app.gslb.example.com.
    ttl: 30
    pools:
      - name: a
        method: ratio
        members:
          - {name: a1, address: 192.0.2.10, weight: 3}
          - {name: a2, address: 192.0.2.11, mode: always-down}
          - {name: a6, address: "2001:db8::10"}
      - name: b
        method: round-robin
        members: [{name: b1, address: 198.51.100.1}]
    fallback: 203.0.113.1
  - name: rnd.example.com.
    type: A
    ttl: 30
    pools:
      - {name: r, method: random, members: [{address: 192.0.2.20}, {address: 192.0.2.21}]}
  - name: all.example.com.
    type: A
    ttl: 30
    pools:
      - {name: r, method: return-all, members: [{address: 192.0.2.30}, {address: 192.0.2.31}]}
  - name: n.example.com.
    type: A
    ttl: 30
    pools:
      - {name: r, method: return-n, count: 2, members: [{address: 192.0.2.40}, {address: 192.0.2.41}, {address: 192.0.2.42}]}
  - name: dead.example.com.
    type: A
    ttl: 30
    when_empty: servfail
    pools:
      - {name: r, members: [{address: 192.0.2.50, mode: always-down}]}
  - name: geo.example.com.
    ttl: 30
    when_empty: drop
    pools:
      - name: t
        method: [topology, persistence, return-all]
        members:
          - {name: t1, address: 192.0.2.60, datacenter: d1}
          - {name: t2, address: 192.0.2.61, datacenter: d2, weight: 3}
          - {name: t6, address: "2001:db8::60", datacenter: d2}
      - {name: s, method: persistence, members: [{address: 192.0.2.62}, {address: 192.0.2.63, mode: always-down}]}
      - {name: x, members: [{address: 192.0.2.64, mode: always-down}]}
    access_policy:
      - {regions: [r4, r6], primary: t, secondary: s}
      - {regions: [tel], primary: x, secondary: s}
      - {primary: x}
  - name: topo.example.com.
    ttl: 30
    pools:
      - name: near
        method: [topology, round-robin]
        members:
          - {name: n1, address: 192.0.2.70, datacenter: d1}
          - {name: n2, address: 192.0.2.71, datacenter: d1}
          - {name: n3, address: 192.0.2.72, datacenter: d2}
          - {name: n6, address: "2001:db8::70", datacenter: d2}
      - name: far
        method: [topology, ratio]
        members:
          - {name: f1, address: 198.51.100.70, datacenter: d2, weight: 3}
          - {name: f2, address: 198.51.100.71, datacenter: d1}
          - {name: f6, address: "2001:db8::71", datacenter: d1, weight: 2}
      - {name: ga, method: [global-availability], members: [{address: 192.0.2.73, mode: always-down}, {address: 192.0.2.74}]}
    access_policy:
      - {regions: [r4, tel], primary: near, secondary: far}
      - {regions: [r6], primary: [ga, far]}
      - {primary: far, secondary: near}
  - name: cname.gslb.example.com.
    type: CNAME
    ttl: 60
    pools:
      - {name: t, method: global-availability, members: [{target: www}, {target: x.other.net.}]}
)";

struct Fixture {
  std::vector<uint8_t> image;
  gtm::snap::SnapshotView view;
  Fixture() {
    gtm::control::LoadedConfig cfg;
    gtm::control::ConfigError err;
    std::string error;
    if (!gtm::control::load_config_string(kYaml, "fuzz.yaml", &cfg, &err) ||
        !gtm::control::geo::compile_shared(cfg.geo, &cfg.model.geo, &error) ||
        !gtm::control::build_snapshot(cfg.model, &image, &error) ||
        !view.validate(image.data(), image.size(), &error)) {
      abort();  // the fixed configuration must always build
    }
    // The comparison below covers the pick table only if the fast path has entries to read:
    // class-dependent ones (topo.example.com) and ones left to the chain (geo.example.com).
    uint32_t scoped = 0, chain = 0;
    for (uint32_t s = 0; s < view.service_count(); ++s) {
      const gtm::snap::Service& svc = view.services()[s];
      if (svc.pick_table == gtm::snap::kNone || (svc.flags & gtm::snap::kSvcNeedsClass) == 0) {
        continue;
      }
      for (uint32_t c = 0; c < view.class_count(); ++c) {
        const gtm::snap::PickEntry& e = view.pick_table()[svc.pick_table + c];
        scoped += (e.meta & gtm::snap::kPickScopeClass) != 0;
        chain += e.slot_count == 0;
      }
    }
    if (scoped == 0 || chain == 0) abort();
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gtm::engine::Transport;
  const Fixture& f = fixture();
  static gtm::engine::WorkerState ws;
  // The source address comes from the input too: its last bytes, as IPv4 or IPv6.
  gtm::engine::ClientAddr client;
  if (size >= 17) {
    client.family = (data[size - 17] & 1) ? 6 : 4;
    std::memcpy(client.addr, data + size - 16, 16);
  }
  gtm::engine::Explain explain;

  // With an explain record the engine always takes its general path; without one, the fast path
  // where it applies. Both must give the same bytes and leave the same counters and rotation state.
  const gtm::engine::WorkerState before = ws;
  uint8_t out[512];
  const size_t n = gtm::engine::answer_query(&f.view, data, size, out, sizeof(out), client,
                                             Transport::kUdp, ws, &explain);
  if (n > sizeof(out)) abort();
  gtm::engine::WorkerState fast = before;
  uint8_t out_fast[512];
  const size_t nf = gtm::engine::answer_query(&f.view, data, size, out_fast, sizeof(out_fast),
                                              client, Transport::kUdp, fast, nullptr);
  if (nf != n || std::memcmp(out_fast, out, n) != 0) abort();
  if (fast.rr_counter != ws.rr_counter || fast.rng != ws.rng ||
      std::memcmp(&fast.counters, &ws.counters, sizeof(ws.counters)) != 0) {
    abort();
  }

  // In place, in a buffer sized like a real receive buffer.
  std::vector<uint8_t> buf(data, data + size);
  buf.resize(size > 1232 ? size : 1232);
  const size_t m = gtm::engine::answer_query(&f.view, buf.data(), size, buf.data(), buf.size(),
                                             client, Transport::kUdp, ws, nullptr);
  if (m > buf.size()) abort();

  std::vector<uint8_t> tcp(65535);
  const size_t t = gtm::engine::answer_query(&f.view, data, size, tcp.data(), tcp.size(), client,
                                             Transport::kTcp, ws, nullptr);
  if (t > tcp.size()) abort();
  // Whether a query is answered at all does not depend on the transport or the buffer.
  if ((n == 0) != (t == 0) || (m == 0) != (t == 0)) abort();
  return 0;
}
