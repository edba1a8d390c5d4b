// Builds Ethernet frames for the packet tests, and checks checksums the slow, obvious way (16 bits
// at a time, straight from RFC 1071) so the tests do not trust the code they test.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace gtm::packet::test {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes* b, uint16_t v) {
  b->push_back(static_cast<uint8_t>(v >> 8));
  b->push_back(static_cast<uint8_t>(v));
}

inline uint16_t get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

inline void set16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// RFC 1071, 16 bits at a time, big-endian words: the reference the fast code is checked against.
inline uint16_t reference_sum(const std::vector<const Bytes*>& parts) {
  uint32_t sum = 0;
  Bytes all;
  for (const Bytes* p : parts) all.insert(all.end(), p->begin(), p->end());
  if (all.size() % 2) all.push_back(0);
  for (size_t i = 0; i < all.size(); i += 2) sum += static_cast<uint32_t>(all[i] << 8 | all[i + 1]);
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

inline Bytes parse_addr(const std::string& text) {
  uint8_t buf[16];
  if (text.find(':') != std::string::npos) {
    inet_pton(AF_INET6, text.c_str(), buf);
    return Bytes(buf, buf + 16);
  }
  inet_pton(AF_INET, text.c_str(), buf);
  return Bytes(buf, buf + 4);
}

struct FrameSpec {
  uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
  std::vector<std::pair<uint16_t, uint16_t>> tags;  // (tpid, tci), outer first
  std::string src = "198.18.0.10";
  std::string dst = "198.18.0.1";
  uint8_t proto = 17;
  uint16_t sport = 40000;
  uint16_t dport = 53;
  Bytes payload;
  uint8_t ipv4_ihl = 5;    // > 5: options (zero-filled)
  uint16_t ipv4_frag = 0;  // flags + fragment offset field
  uint8_t ttl = 61;
  bool good_ip_checksum = true;
  bool udp_checksum = true;  // false: 0 (allowed over IPv4 only)
  size_t pad_to = 60;        // Ethernet minimum, without FCS
};

// A UDP (or, with proto != 17, a bare IP) frame as a client would send it.
inline Bytes build_frame(const FrameSpec& s) {
  Bytes f(s.dst_mac, s.dst_mac + 6);
  f.insert(f.end(), s.src_mac, s.src_mac + 6);
  for (auto [tpid, tci] : s.tags) {
    put16(&f, tpid);
    put16(&f, tci);
  }
  const Bytes src = parse_addr(s.src);
  const Bytes dst = parse_addr(s.dst);
  const bool v6 = src.size() == 16;
  put16(&f, v6 ? 0x86DD : 0x0800);
  Bytes l4;
  if (s.proto == 17) {
    put16(&l4, s.sport);
    put16(&l4, s.dport);
    put16(&l4, static_cast<uint16_t>(8 + s.payload.size()));
    put16(&l4, 0);
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    if (s.udp_checksum) {
      Bytes pseudo = src;
      pseudo.insert(pseudo.end(), dst.begin(), dst.end());
      put16(&pseudo, 0);
      put16(&pseudo, 17);
      put16(&pseudo, static_cast<uint16_t>(l4.size()));
      uint16_t c = static_cast<uint16_t>(~reference_sum({&pseudo, &l4}));
      set16(&l4[6], c == 0 ? 0xFFFF : c);
    }
  } else {
    l4 = s.payload;
  }
  if (!v6) {
    Bytes ip;
    ip.push_back(static_cast<uint8_t>(0x40 | s.ipv4_ihl));
    ip.push_back(0);
    put16(&ip, static_cast<uint16_t>(s.ipv4_ihl * 4 + l4.size()));
    put16(&ip, 0x1234);
    put16(&ip, s.ipv4_frag);
    ip.push_back(s.ttl);
    ip.push_back(s.proto);
    put16(&ip, 0);
    ip.insert(ip.end(), src.begin(), src.end());
    ip.insert(ip.end(), dst.begin(), dst.end());
    ip.resize(s.ipv4_ihl * 4u, 0);
    uint16_t c = static_cast<uint16_t>(~reference_sum({&ip}));
    set16(&ip[10], s.good_ip_checksum ? c : static_cast<uint16_t>(c ^ 0x0101));
    f.insert(f.end(), ip.begin(), ip.end());
  } else {
    const uint8_t vtf[4] = {0x60, 0x01, 0x23, 0x45};
    f.insert(f.end(), vtf, vtf + 4);
    put16(&f, static_cast<uint16_t>(l4.size()));
    f.push_back(s.proto);
    f.push_back(s.ttl);
    f.insert(f.end(), src.begin(), src.end());
    f.insert(f.end(), dst.begin(), dst.end());
  }
  f.insert(f.end(), l4.begin(), l4.end());
  if (f.size() < s.pad_to) f.resize(s.pad_to, 0);
  return f;
}

// A minimal DNS query: id, RD, one question.
inline Bytes dns_query(const std::string& dotted, uint16_t qtype, uint16_t id = 0x4242) {
  Bytes q;
  put16(&q, id);
  put16(&q, 0x0100);
  put16(&q, 1);
  put16(&q, 0);
  put16(&q, 0);
  put16(&q, 0);
  size_t pos = 0;
  while (pos < dotted.size()) {
    size_t dot = dotted.find('.', pos);
    if (dot == std::string::npos) dot = dotted.size();
    q.push_back(static_cast<uint8_t>(dot - pos));
    q.insert(q.end(), dotted.begin() + static_cast<long>(pos),
             dotted.begin() + static_cast<long>(dot));
    pos = dot + 1;
  }
  q.push_back(0);
  put16(&q, qtype);
  put16(&q, 1);
  return q;
}

}  // namespace gtm::packet::test
