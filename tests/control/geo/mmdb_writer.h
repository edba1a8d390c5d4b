// A small MaxMind DB writer for tests: networks with JSON data, IPv4 or IPv6 trees, IPv4 aliases,
// and direct access to the search tree for building corrupt databases. Record size 24.
// (Spec: MaxMind DB File Format 2.0.)
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gtm::testing {

class MmdbWriter {
 public:
  // A record: >= 0 a node index, kEmpty, or data_ref(i) for the i-th data record.
  static constexpr int64_t kEmpty = -1;
  static int64_t data_ref(size_t i) { return -2 - static_cast<int64_t>(i); }

  explicit MmdbWriter(int ip_version) : ip_version_(ip_version) {
    nodes_.push_back({kEmpty, kEmpty});
  }

  int bits() const { return ip_version_ == 4 ? 32 : 128; }

  // Inserts "a.b.c.d/n" or "x::/n" (an IPv4 network in an IPv6 tree goes under ::/96). Later
  // inserts override earlier ones where they overlap.
  void insert(const std::string& cidr, const nlohmann::json& data) {
    std::array<uint8_t, 16> addr{};
    int len = 0;
    parse(cidr, &addr, &len);
    set_record(addr, len, add_data(data));
  }

  // Points the record at addr/len to the IPv4 subtree (the node at ::/96), as MaxMind's writer
  // does for ::ffff:0:0/96, 2001::/32 and 2002::/16.
  void alias_ipv4(const std::string& cidr) {
    std::array<uint8_t, 16> zero{}, addr{};
    int len = 0;
    parse(cidr, &addr, &len);
    const int64_t v4 = walk(zero, 96);
    set_record(addr, len, v4);
  }

  // The node reached from the root by the first `len` bits of addr (created if needed).
  int64_t walk(const std::array<uint8_t, 16>& addr, int len) {
    int64_t n = 0;
    for (int bit = 0; bit < len; ++bit) {
      const int side = (addr[bit / 8] >> (7 - bit % 8)) & 1;
      if (nodes_[n][side] < 0) {
        const int64_t old = nodes_[n][side];
        nodes_.push_back({old, old});
        nodes_[n][side] = static_cast<int64_t>(nodes_.size() - 1);
      }
      n = nodes_[n][side];
    }
    return n;
  }

  size_t add_data(const nlohmann::json& data) {
    std::vector<uint8_t> bytes;
    put(data, &bytes);
    auto [it, inserted] = data_index_.try_emplace(bytes, records_.size());
    if (inserted) records_.push_back(bytes);
    return it->second;
  }

  std::vector<std::array<int64_t, 2>>& nodes() { return nodes_; }

  std::vector<uint8_t> serialize() const {
    const uint64_t count = nodes_.size();
    std::vector<uint8_t> data;
    std::vector<uint64_t> offsets;
    for (const auto& r : records_) {
      offsets.push_back(data.size());
      data.insert(data.end(), r.begin(), r.end());
    }
    std::vector<uint8_t> out;
    for (const auto& n : nodes_) {
      for (int side = 0; side < 2; ++side) {
        const int64_t r = n[side];
        uint64_t v = r >= 0        ? static_cast<uint64_t>(r)
                     : r == kEmpty ? count
                                   : count + 16 + offsets[static_cast<size_t>(-2 - r)];
        if (raw_.count(&n - nodes_.data()) && raw_.at(&n - nodes_.data())[side] != 0) {
          v = raw_.at(&n - nodes_.data())[side];
        }
        out.push_back(static_cast<uint8_t>(v >> 16));
        out.push_back(static_cast<uint8_t>(v >> 8));
        out.push_back(static_cast<uint8_t>(v));
      }
    }
    out.insert(out.end(), 16, 0);
    out.insert(out.end(), data.begin(), data.end());
    static const uint8_t kMarker[] = {0xAB, 0xCD, 0xEF, 'M', 'a', 'x', 'M',
                                      'i',  'n',  'd',  '.', 'c', 'o', 'm'};
    out.insert(out.end(), kMarker, kMarker + sizeof(kMarker));
    put_header(7, 9, &out);  // metadata map, 9 keys, with the types libmaxminddb insists on
    put_key_uint("binary_format_major_version", 5, 2, &out);
    put_key_uint("binary_format_minor_version", 5, 0, &out);
    put_key_uint("build_epoch", 9, 1700000000, &out);
    put_string("database_type", &out);
    put_string("GTM-Test", &out);
    put_string("description", &out);
    put_header(7, 1, &out);
    put_string("en", &out);
    put_string("test database", &out);
    put_key_uint("ip_version", 5, static_cast<uint64_t>(ip_version_), &out);
    put_string("languages", &out);
    put_header(11, 1, &out);
    put_string("en", &out);
    put_key_uint("node_count", 6, count, &out);
    put_key_uint("record_size", 5, 24, &out);
    return out;
  }

  // Overrides the raw 24-bit value written for a record (for pointers into the separator, past
  // the end, ...).
  void set_raw(size_t node, int side, uint32_t value) {
    raw_[static_cast<ptrdiff_t>(node)][side] = value;
  }

  void write(const std::string& path) const {
    const auto bytes = serialize();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }

 private:
  void parse(const std::string& cidr, std::array<uint8_t, 16>* addr, int* len) const {
    const size_t slash = cidr.find('/');
    const std::string a = cidr.substr(0, slash);
    *len = std::stoi(cidr.substr(slash + 1));
    if (a.find(':') != std::string::npos) {
      inet_pton(AF_INET6, a.c_str(), addr->data());
    } else if (ip_version_ == 4) {
      inet_pton(AF_INET, a.c_str(), addr->data());
    } else {
      inet_pton(AF_INET, a.c_str(), addr->data() + 12);
      *len += 96;
    }
  }

  void set_record(const std::array<uint8_t, 16>& addr, int len, int64_t value) {
    const int64_t parent = walk(addr, len - 1);
    const int bit = len - 1;
    nodes_[parent][(addr[bit / 8] >> (7 - bit % 8)) & 1] = value;
  }

  void set_record(const std::array<uint8_t, 16>& addr, int len, size_t data) {
    set_record(addr, len, data_ref(data));
  }

  static void put_header(int type, uint64_t size, std::vector<uint8_t>* out) {
    const uint8_t t = static_cast<uint8_t>(type <= 7 ? type << 5 : 0);
    uint8_t s;
    std::vector<uint8_t> ext;
    if (size < 29) {
      s = static_cast<uint8_t>(size);
    } else if (size < 285) {
      s = 29;
      ext = {static_cast<uint8_t>(size - 29)};
    } else {
      s = 30;
      ext = {static_cast<uint8_t>((size - 285) >> 8), static_cast<uint8_t>(size - 285)};
    }
    out->push_back(t | s);
    if (type > 7) out->push_back(static_cast<uint8_t>(type - 7));
    out->insert(out->end(), ext.begin(), ext.end());
  }

  static void put_string(const std::string& s, std::vector<uint8_t>* out) {
    put_header(2, s.size(), out);
    out->insert(out->end(), s.begin(), s.end());
  }

  static void put_uint(int type, uint64_t v, std::vector<uint8_t>* out) {
    std::vector<uint8_t> bytes;
    for (; v != 0; v >>= 8) bytes.insert(bytes.begin(), static_cast<uint8_t>(v));
    put_header(type, bytes.size(), out);
    out->insert(out->end(), bytes.begin(), bytes.end());
  }

  static void put_key_uint(const std::string& key, int type, uint64_t v,
                           std::vector<uint8_t>* out) {
    put_string(key, out);
    put_uint(type, v, out);
  }

  // JSON -> MaxMind data: strings, maps, arrays, booleans, unsigned integers (uint16/32/64 by
  // size), negative integers (int32) and doubles.
  static void put(const nlohmann::json& j, std::vector<uint8_t>* out) {
    if (j.is_string()) {
      put_string(j.get<std::string>(), out);
    } else if (j.is_boolean()) {
      put_header(14, j.get<bool>() ? 1 : 0, out);
    } else if (j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0)) {
      const uint64_t v = j.get<uint64_t>();
      put_uint(v <= 0xFFFF ? 5 : v <= 0xFFFFFFFF ? 6 : 9, v, out);
    } else if (j.is_number_integer()) {
      const uint32_t v = static_cast<uint32_t>(static_cast<int32_t>(j.get<int64_t>()));
      put_header(8, 4, out);
      for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>(v >> s));
    } else if (j.is_number_float()) {
      const double d = j.get<double>();
      uint64_t v;
      std::memcpy(&v, &d, 8);
      put_header(3, 8, out);
      for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>(v >> s));
    } else if (j.is_array()) {
      put_header(11, j.size(), out);
      for (const auto& e : j) put(e, out);
    } else {
      put_header(7, j.size(), out);
      for (auto it = j.begin(); it != j.end(); ++it) {
        put_string(it.key(), out);
        put(it.value(), out);
      }
    }
  }

  int ip_version_;
  std::vector<std::array<int64_t, 2>> nodes_;
  std::vector<std::vector<uint8_t>> records_;
  std::map<std::vector<uint8_t>, size_t> data_index_;
  std::map<ptrdiff_t, std::array<uint32_t, 2>> raw_;
};

}  // namespace gtm::testing
