// Fuzzes the DPDK packet path without DPDK: classify() on arbitrary frames for an untagged, an
// 802.1Q and a QinQ port; frames classified DNS are answered in place by the engine inside an
// mbuf-sized buffer and rewritten by make_reply() (software checksums and offload mode); frames for
// the exception path have their tags stripped and put back. Oracles: the DNS message lies inside
// the frame, every reply carries valid IPv4 and UDP checksums and consistent lengths, and a tag
// round trip gives back the frame it started from, and the fast path of classify() takes only
// frames the general path finds DNS, with the same offsets.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/engine/answer.h"
#include "dataplane/packet/checksum.h"
#include "dataplane/packet/classify.h"
#include "dataplane/packet/reply.h"

namespace {

using namespace gtm::packet;

const char* kYaml = R"(
zones:
  - name: gtm.example.
    soa: {mname: ns1, rname: hostmaster, serial: 1, minimum: 5}
    ns: [ns1]
    records:
      - {name: ns1, type: A, data: 198.18.0.1}
      - {name: static, type: A, data: 192.0.2.1}
      - {name: static, type: AAAA, data: "2001:db8::1"}
services:
  - name: www.gtm.example.
    ttl: 30
    pools:
      - name: p
        method: ratio
        members:
          - {name: a1, address: 192.0.2.10, weight: 3}
          - {name: a2, address: 192.0.2.11, weight: 1}
)";

// Room an mbuf gives a frame: 2048 octets of data after the headroom.
constexpr size_t kBufferSize = 2048;

struct Fixture {
  std::vector<uint8_t> image;
  gtm::snap::SnapshotView view;
  PortFilter ports[3];

  Fixture() {
    gtm::control::LoadedConfig cfg;
    gtm::control::ConfigError err;
    std::string error;
    if (!gtm::control::load_config_string(kYaml, "fuzz.yaml", &cfg, &err) ||
        !gtm::control::build_snapshot(cfg.model, &image, &error) ||
        !view.validate(image.data(), image.size(), &error)) {
      abort();
    }
    const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
    const uint8_t v4[4] = {198, 18, 0, 1};
    const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    for (PortFilter& p : ports) {
      std::memcpy(p.mac, mac, 6);
      p.addrs.add_v4(v4);
      p.addrs.add_v6(v6);
    }
    ports[1].vlan_count = 1;
    ports[1].vlan_id[0] = 100;
    ports[2].vlan_count = 2;
    ports[2].vlan_tpid[0] = kEtherTypeQinQ;
    ports[2].vlan_id[0] = 10;
    ports[2].vlan_id[1] = 20;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

uint16_t be16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

void check_reply(const uint8_t* f, uint32_t len, const FrameInfo& info, bool udp_offload) {
  if (len > kBufferSize || info.l4 + kUdpHeaderLen > len) __builtin_trap();
  const uint8_t* ip = f + info.l3;
  const uint8_t* udp = f + info.l4;
  const uint16_t udp_len = be16(udp + 4);
  if (info.l4 + udp_len != len) __builtin_trap();
  uint64_t pseudo;
  if (info.ip_version == 4) {
    if (be16(ip + 2) != kIpv4HeaderLen + udp_len) __builtin_trap();
    // With offload the NIC fills the header checksum; the field is left 0.
    const bool ip_ok =
        udp_offload ? be16(ip + 10) == 0 : csum_fold(csum_add(0, ip, kIpv4HeaderLen)) == 0xFFFF;
    if (!ip_ok) __builtin_trap();
    pseudo = csum_add(0, ip + 12, 8);
  } else {
    if (be16(ip + 4) != udp_len) __builtin_trap();
    pseudo = csum_add(0, ip + 8, 32);
  }
  pseudo = csum_add_u16(csum_add_u16(pseudo, kIpProtoUdp), udp_len);
  if (udp_offload) {
    uint16_t field;
    std::memcpy(&field, udp + 6, 2);
    if (field != csum_fold(pseudo)) __builtin_trap();
  } else if (csum_fold(csum_add(pseudo, udp, udp_len)) != 0xFFFF) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& fx = fixture();
  if (size > kBufferSize) return 0;
  const uint32_t len = static_cast<uint32_t>(size);
  gtm::engine::WorkerState ws;
  for (const PortFilter& port : fx.ports) {
    for (bool verify : {true, false}) {
      FrameInfo info;
      const Verdict v = classify(data, len, port, verify, &info);
      // The fast path may only take what the general path answers, with the same offsets.
      FrameInfo general, fast;
      const Verdict g = classify_general(data, len, port, verify, &general);
      if (g != v) __builtin_trap();
      if (classify_fast_ipv4(data, len, port, verify, &fast) &&
          (g != Verdict::kDns || fast.l3 != general.l3 || fast.l4 != general.l4 ||
           fast.dns != general.dns || fast.dns_len != general.dns_len ||
           fast.ip_version != general.ip_version || fast.vlan_count != general.vlan_count)) {
        __builtin_trap();
      }
      if (v == Verdict::kDrop) {
        if (info.reason >= DropReason::kCount) __builtin_trap();
        continue;
      }
      if (v == Verdict::kException) {
        if (info.vlan_count != port.vlan_count || len < kEthHeaderLen) __builtin_trap();
        std::vector<uint8_t> f(data, data + len);
        const uint32_t off = strip_vlan_tags(f.data(), info.vlan_count);
        insert_vlan_tags(f.data() + off - port.vlan_count * kVlanTagLen, port);
        // The port's tags are the frame's (classify checked the VLAN ids); only the PCP/DEI bits
        // and the outer TPID may differ, so compare the rest.
        if (std::memcmp(f.data(), data, 12) != 0 ||
            std::memcmp(f.data() + 12 + info.vlan_count * kVlanTagLen,
                        data + 12 + info.vlan_count * kVlanTagLen,
                        len - 12 - info.vlan_count * kVlanTagLen) != 0) {
          __builtin_trap();
        }
        continue;
      }
      if (info.dns + info.dns_len > len) __builtin_trap();
      for (bool offload : {false, true}) {
        alignas(64) uint8_t buf[kBufferSize];
        std::memcpy(buf, data, len);
        gtm::engine::ClientAddr client;
        client.family = info.ip_version;
        std::memcpy(client.addr, buf + info.l3 + (info.ip_version == 4 ? 12 : 8), 16);
        const size_t n = gtm::engine::answer_query(&fx.view, buf + info.dns, info.dns_len,
                                                   buf + info.dns, kBufferSize - info.dns, client,
                                                   gtm::engine::Transport::kUdp, ws);
        if (n == 0) continue;
        if (n > 1232) __builtin_trap();
        const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
        const uint32_t out =
            make_reply(buf, info, static_cast<uint32_t>(n), mac, {offload, offload});
        check_reply(buf, out, info, offload);
      }
    }
  }
  return 0;
}
