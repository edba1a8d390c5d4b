// A configuration that fills every snapshot section: geo tables (the MaxMind test database of
// examples/geo and a CIDR list), regions and an ISP line, datacenters and topology scores, access
// policies with pool sets and a switch policy, every pool method (chains included), persistence,
// a CNAME service, a fallback, static records and a wildcard. Shared by the snapshot reuse tests
// (dataplane) and the incremental builder tests (control), which flip its members' health.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"

namespace gtm::testing {

inline const char* kRichConfig = R"(options: {unknown_health: up}
geo:
  databases: [{name: country, path: geo/GeoIP2-Country-Test.mmdb}]
regions:
  - {name: cn, mmdb: {field: country.iso_code, values: [CN]}}
  - {name: europe, mmdb: {field: continent.code, values: [EU]}, cidr: [192.0.2.0/24]}
isp_lines:
  - {name: CNC, cidr_files: [geo/isp-cnc.txt]}
datacenters: [bj, sh, fra]
topology:
  - {client: CNC, datacenter: bj, score: 200}
  - {client: cn, datacenter: sh, score: 100}
  - {client: europe, datacenter: fra, score: 100}
  - {client: 0.0.0.0/0, datacenter: fra, score: 1}
zones:
  - name: gtm.example.
    soa: {mname: ns1, rname: hostmaster, serial: 1}
    ns: [ns1]
    records:
      - {name: ns1, type: A, data: 192.0.2.53}
      - {name: host, type: A, data: 192.0.2.1}
      - {name: host, type: TXT, data: '"hello"'}
      - {name: "*.apps", type: A, data: 192.0.2.99}
      - {name: "@", type: MX, data: "10 host"}
      - {name: alias, type: CNAME, data: host}
services:
  - name: www.gtm.example.
    ttl: 30
    pool_sets: {china: [beijing, shanghai], world: [frankfurt]}
    access_policy:
      - {regions: [cn, CNC], primary: china, secondary: world}
      - {regions: europe, primary: frankfurt, secondary: china}
      - {primary: world, secondary: china}
    switch_policy: {min_members: 2, min_percent: 50}
    fallback: [192.0.2.250, "2001:db8::250"]
    pools:
      - name: beijing
        datacenter: bj
        method: [topology, ratio]
        members:
          - {name: b1, address: 198.51.100.1, weight: 3}
          - {name: b2, address: 198.51.100.2, weight: 1}
          - {name: b6, address: "2001:db8::b1"}
      - name: shanghai
        datacenter: sh
        method: [topology, round-robin]
        members:
          - {name: s1, address: 198.51.100.11}
          - {name: s2, address: 198.51.100.12, datacenter: bj}
      - name: frankfurt
        datacenter: fra
        method: ratio
        members:
          - {name: f1, address: 198.51.100.21, weight: 5}
          - {name: f2, address: 198.51.100.22, weight: 2}
          - {name: f3, address: 198.51.100.23, weight: 2}
          - {name: f6, address: "2001:db8::f1"}
  - name: api.gtm.example.
    type: A
    ttl: 20
    when_empty: servfail
    access_policy:
      - {regions: europe, primary: [rest]}
      - {primary: [sticky, some, rest]}
    pools:
      - name: sticky
        method: persistence
        persistence: {mask_v4: 16, mask_v6: 48}
        members:
          - {name: p1, address: 203.0.113.1, weight: 2}
          - {name: p2, address: 203.0.113.2}
      - name: some
        method: return-n
        count: 2
        members:
          - {address: 203.0.113.11}
          - {address: 203.0.113.12, mode: always-up}
          - {address: 203.0.113.13}
      - name: rest
        method: [global-availability, random, return-all]
        members:
          - {address: 203.0.113.21}
          - {address: 203.0.113.22, enabled: false}
  - name: web.gtm.example.
    type: CNAME
    ttl: 60
    fallback: host.gtm.example.
    pools:
      - name: edges
        method: round-robin
        members:
          - {target: edge1.cdn.example.}
          - {target: edge2.cdn.example.}
)";

// kRichConfig loaded (relative paths against examples/) with its geo tables compiled.
inline control::LoadedConfig load_rich_config(const std::string& yaml = kRichConfig) {
  control::LoadedConfig cfg;
  control::ConfigError err;
  EXPECT_TRUE(control::load_config_string(yaml, GTM_SOURCE_DIR "/examples/rich.yaml", &cfg, &err))
      << err.to_string();
  std::string error;
  EXPECT_TRUE(control::geo::compile_shared(cfg.geo, &cfg.model.geo, &error)) << error;
  return cfg;
}

}  // namespace gtm::testing
