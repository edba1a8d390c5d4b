#include "control/compiler/snapshot_builder.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include "dataplane/dns/name.h"
#include "dataplane/dns/wire.h"
#include "dataplane/snapshot/format.h"

namespace gtm::control {

namespace {

using dns::wire_name_length;
using snap::kNone;

// A ratio pool's wheel never holds more slots than this (weights are scaled down beyond it).
constexpr uint64_t kMaxWheelSlots = 4096;
// Bounds the O(members x slots) wheel computation and the size of a pool.
constexpr size_t kMaxPoolMembers = 4096;

// Internal error path; build_snapshot turns it into a return value.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& msg) {
  throw BuildError(msg);
}

// Byte order of wire names for ordered maps. Written out instead of std::less<std::vector> because
// GCC 12 at -O3 reports a false -Wstringop-overread inside std::lexicographical_compare.
struct WireNameLess {
  bool operator()(const WireName& a, const WireName& b) const {
    const size_t n = std::min(a.size(), b.size());
    const int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
    return c != 0 ? c < 0 : a.size() < b.size();
  }
};

// ---------------------------------------------------------------------------------------------
// Wire-name helpers.

bool is_exact_name(const std::vector<uint8_t>& bytes, size_t from = 0) {
  return from < bytes.size() &&
         wire_name_length(bytes.data() + from, bytes.size() - from) == bytes.size() - from;
}

// Presentation form for error messages: "www.example.", "." for the root; odd bytes as \DDD.
std::string text(const std::vector<uint8_t>& name) {
  std::string out;
  size_t pos = 0;
  while (pos < name.size() && name[pos] != 0) {
    size_t len = name[pos++];
    for (size_t i = 0; i < len && pos < name.size(); ++i, ++pos) {
      uint8_t c = name[pos];
      if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\%03u", c);
        out += buf;
      }
    }
    out += '.';
  }
  return out.empty() ? "." : out;
}

void check_canonical(const WireName& name, const std::string& what) {
  if (name.empty() || name.size() > dns::kMaxNameLen) fail(what + ": bad name length");
  if (!is_exact_name(name)) fail(what + ": malformed wire name");
  for (uint8_t c : name) {
    if (c >= 'A' && c <= 'Z') fail(what + ": name " + text(name) + " is not lowercase");
  }
}

// Whether `name` is `apex` or below it.
bool within(const WireName& name, const WireName& apex) {
  if (apex.size() > name.size()) return false;
  size_t suffix = name.size() - apex.size();
  size_t pos = 0;
  while (pos < suffix) pos += 1 + static_cast<size_t>(name[pos]);
  return pos == suffix && std::equal(apex.begin(), apex.end(), name.begin() + suffix);
}

WireName parent(const WireName& name) {
  return WireName(name.begin() + 1 + name[0], name.end());
}

bool is_wildcard(const WireName& name) {
  return name.size() >= 2 && name[0] == 1 && name[1] == '*';
}

std::string type_text(uint16_t type) {
  const char* name = dns::rr_type_name(type);
  return name != nullptr ? name : "TYPE" + std::to_string(type);
}

// Offsets of the compressible names inside an RDATA of `type` (RFC 3597 section 4).
std::pair<uint16_t, uint16_t> name_offsets(uint16_t type, const WireRdata& rdata) {
  switch (type) {
    case dns::kTypeNS:
    case dns::kTypeCNAME:
    case dns::kTypePTR:
      return {0, snap::kNoNameInRdata};
    case dns::kTypeMX:
      return {2, snap::kNoNameInRdata};
    case dns::kTypeSOA:
      return {0, static_cast<uint16_t>(wire_name_length(rdata.data(), rdata.size()))};
    default:
      return {snap::kNoNameInRdata, snap::kNoNameInRdata};
  }
}

// Whether RDATA has the shape its type requires (only types whose shape the format relies on).
bool rdata_shape_ok(uint16_t type, const WireRdata& r) {
  switch (type) {
    case dns::kTypeA:
      return r.size() == 4;
    case dns::kTypeAAAA:
      return r.size() == 16;
    case dns::kTypeNS:
    case dns::kTypeCNAME:
    case dns::kTypePTR:
      return is_exact_name(r);
    case dns::kTypeMX:
      return r.size() > 2 && is_exact_name(r, 2);
    case dns::kTypeSRV:
      return r.size() > 6 && is_exact_name(r, 6);
    default:
      return true;
  }
}

bool soa_shape_ok(const WireRdata& r) {
  size_t mname = wire_name_length(r.data(), r.size());
  if (mname == 0) return false;
  size_t rname = wire_name_length(r.data() + mname, r.size() - mname);
  return rname != 0 && mname + rname + 20 == r.size();
}

uint32_t soa_minimum(const WireRdata& r) {
  return dns::load32(r.data() + r.size() - 4);
}

// ---------------------------------------------------------------------------------------------
// The smooth weighted wheel.

// Returns positions into `weights` (one per slot): each position i appears weights'[i] times, where
// weights' are the weights divided by their GCD and, beyond kMaxWheelSlots, scaled proportionally
// with a floor of 1. Order is nginx's smooth weighted round-robin, so members interleave.
std::vector<uint32_t> smooth_wheel(std::vector<uint64_t> weights) {
  if (weights.empty()) return {};
  auto reduce = [&weights] {
    uint64_t g = 0;
    for (uint64_t w : weights) g = std::gcd(g, w);
    uint64_t total = 0;
    for (uint64_t& w : weights) total += (w /= g);
    return total;
  };
  uint64_t total = reduce();
  if (total > kMaxWheelSlots) {
    for (uint64_t& w : weights) w = std::max<uint64_t>(1, w * kMaxWheelSlots / total);
    total = reduce();
  }
  std::vector<int64_t> current(weights.size(), 0);
  std::vector<uint32_t> wheel;
  wheel.reserve(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      current[i] += static_cast<int64_t>(weights[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    wheel.push_back(static_cast<uint32_t>(best));
  }
  return wheel;
}

// ---------------------------------------------------------------------------------------------
// The model, checked and grouped by owner name.

struct StaticSet {
  uint32_t ttl = 0;
  std::vector<WireRdata> rdatas;  // configured order, duplicates merged
};

struct NodeInfo {
  uint32_t zone = kNone;
  std::map<uint16_t, StaticSet> statics;  // by type
  std::map<uint16_t, uint32_t> services;  // type -> ServiceModel index
};

class Builder {
 public:
  explicit Builder(const SnapshotModel& model) : model_(model) {}

  std::vector<uint8_t> build() {
    check_zones();
    add_records();
    add_services();
    check_nodes();
    add_empty_non_terminals();
    emit();
    return layout();
  }

 private:
  // The deepest zone containing `name`, or kNone.
  uint32_t deepest_zone(const WireName& name) const {
    uint32_t best = kNone;
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const WireName& apex = model_.zones[z].apex;
      if (within(name, apex) && (best == kNone || apex.size() > model_.zones[best].apex.size())) {
        best = z;
      }
    }
    return best;
  }

  void check_zones() {
    std::map<WireName, uint32_t, WireNameLess> seen;
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zone = model_.zones[z];
      check_canonical(zone.apex, "zone #" + std::to_string(z) + " apex");
      std::string where = "zone " + text(zone.apex);
      if (!seen.emplace(zone.apex, z).second) fail(where + ": duplicate zone");
      if (!soa_shape_ok(zone.soa_rdata)) fail(where + ": malformed SOA rdata");
      if (zone.soa_rdata.size() > 0xFFFF) fail(where + ": SOA rdata too long");
      nodes_[zone.apex].zone = z;
    }
  }

  void add_records() {
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zone = model_.zones[z];
      for (const StaticRecord& rec : zone.records) {
        std::string where = "zone " + text(zone.apex) + ": record ";
        check_canonical(rec.owner, where + "owner");
        where += text(rec.owner) + " " + type_text(rec.type);
        if (!within(rec.owner, zone.apex)) fail(where + ": outside the zone");
        uint32_t deepest = deepest_zone(rec.owner);
        if (deepest != z) {
          fail(where + ": belongs to the child zone " + text(model_.zones[deepest].apex));
        }
        if (rec.type == dns::kTypeSOA) fail(where + ": SOA is set by the zone's soa, not a record");
        if (rec.type == 0 || rec.type == dns::kTypeOPT || (rec.type >= 128 && rec.type <= 255)) {
          fail(where + ": not a data type");
        }
        if (rec.type == dns::kTypeNS && rec.owner != zone.apex) {
          fail(where + ": NS records are only allowed at the zone apex");
        }
        if (rec.rdata.size() > 0xFFFF) fail(where + ": rdata longer than 65535 octets");
        if (!rdata_shape_ok(rec.type, rec.rdata)) fail(where + ": malformed rdata");

        NodeInfo& node = nodes_[rec.owner];
        node.zone = z;
        auto [it, inserted] = node.statics.try_emplace(rec.type);
        StaticSet& set = it->second;
        set.ttl = inserted ? rec.ttl : std::min(set.ttl, rec.ttl);
        if (std::find(set.rdatas.begin(), set.rdatas.end(), rec.rdata) == set.rdatas.end()) {
          set.rdatas.push_back(rec.rdata);
        }
      }
    }
  }

  void check_member_rdata(uint16_t rtype, const WireRdata& r, const std::string& where) {
    bool ok = rtype == dns::kTypeCNAME ? is_exact_name(r) : rdata_shape_ok(rtype, r);
    if (!ok) fail(where + ": rdata does not fit a " + type_text(rtype) + " answer");
  }

  void add_services() {
    for (uint32_t s = 0; s < model_.services.size(); ++s) {
      const ServiceModel& svc = model_.services[s];
      check_canonical(svc.name, "service #" + std::to_string(s));
      std::string where = "service " + text(svc.name) + " " + type_text(svc.rtype);
      if (svc.rtype != dns::kTypeA && svc.rtype != dns::kTypeAAAA && svc.rtype != dns::kTypeCNAME) {
        fail(where + ": a service answers only A, AAAA or CNAME");
      }
      uint32_t z = deepest_zone(svc.name);
      if (z == kNone) fail(where + ": not inside any zone");
      if (static_cast<uint8_t>(svc.empty_action) >
          static_cast<uint8_t>(snap::EmptyAction::kServfail)) {
        fail(where + ": unknown empty action");
      }
      if (svc.fallback) check_member_rdata(svc.rtype, *svc.fallback, where + ": fallback");
      for (const PoolModel& pool : svc.pools) check_pool(svc.rtype, pool, where);
      if (svc.pools.size() > UINT32_MAX / 2) fail(where + ": too many pools");

      NodeInfo& node = nodes_[svc.name];
      node.zone = z;
      if (!node.services.emplace(svc.rtype, s).second) fail(where + ": duplicate service");
    }
  }

  void check_pool(uint16_t rtype, const PoolModel& pool, const std::string& service) {
    std::string where = service + ": pool " + pool.name;
    if (static_cast<uint8_t>(pool.method) > static_cast<uint8_t>(snap::PoolMethod::kReturnN)) {
      fail(where + ": unknown method");
    }
    if (pool.method == snap::PoolMethod::kReturnN && pool.return_n == 0) {
      fail(where + ": return-n needs a count >= 1");
    }
    if (pool.members.size() > kMaxPoolMembers) {
      fail(where + ": more than " + std::to_string(kMaxPoolMembers) + " members");
    }
    for (const MemberModel& m : pool.members) {
      std::string mwhere = where + ": member " + m.name;
      if (m.weight == 0) fail(mwhere + ": weight must be >= 1");
      if (static_cast<uint8_t>(m.mode) > static_cast<uint8_t>(snap::MemberMode::kAlwaysDown)) {
        fail(mwhere + ": unknown mode");
      }
      if (static_cast<uint8_t>(m.health) > static_cast<uint8_t>(snap::MemberHealth::kDown)) {
        fail(mwhere + ": unknown health");
      }
      check_member_rdata(rtype, m.rdata, mwhere);
    }
  }

  // Rules that involve everything living at one owner name.
  void check_nodes() {
    for (const auto& [name, node] : nodes_) {
      bool apex = model_.zones[node.zone].apex == name;
      bool static_cname = node.statics.count(dns::kTypeCNAME) != 0;
      bool service_cname = node.services.count(dns::kTypeCNAME) != 0;
      for (const auto& [type, s] : node.services) {
        std::string where = "service " + text(name) + " " + type_text(type);
        if (node.statics.count(type) != 0) {
          fail(where + ": clashes with a static " + type_text(type) + " record at the same name");
        }
        if (type == dns::kTypeCNAME && !node.statics.empty()) {
          fail(where + ": a CNAME service cannot coexist with static records at the same name");
        }
        if (static_cname) fail(where + ": the name has a static CNAME record");
        if (service_cname && type != dns::kTypeCNAME) {
          fail(where + ": the name also has a CNAME service");
        }
      }
      if (static_cname && node.statics.size() > 1) {
        fail("name " + text(name) + ": a CNAME record cannot coexist with other records");
      }
      if ((static_cname || service_cname) && apex) {
        fail("name " + text(name) + ": CNAME at a zone apex");
      }
      if (node.statics.size() + node.services.size() > 0xFFFF) {
        fail("name " + text(name) + ": more than 65535 RRsets");
      }
    }
  }

  // Every name between an owner and its zone apex exists as a node (RFC 4592 / NODATA answers).
  void add_empty_non_terminals() {
    std::vector<std::pair<WireName, uint32_t>> owners;
    for (const auto& [name, node] : nodes_) owners.emplace_back(name, node.zone);
    for (const auto& [name, zone] : owners) {
      const WireName& apex = model_.zones[zone].apex;
      for (WireName up = name; up != apex;) {
        up = parent(up);
        nodes_[up].zone = zone;  // the deepest zone: no other apex lies between name and apex
      }
    }
  }

  uint32_t intern(const uint8_t* data, size_t len) {
    std::string key(reinterpret_cast<const char*>(data), len);
    auto it = interned_.find(key);
    if (it != interned_.end()) return it->second;
    if (blob_.size() + len > UINT32_MAX) fail("snapshot blob exceeds 4 GiB");
    uint32_t off = static_cast<uint32_t>(blob_.size());
    blob_.insert(blob_.end(), data, data + len);
    interned_.emplace(std::move(key), off);
    return off;
  }
  snap::BlobRef blob_ref(const std::vector<uint8_t>& bytes) {
    return {intern(bytes.data(), bytes.size()), static_cast<uint32_t>(bytes.size())};
  }
  snap::BlobRef blob_ref(const std::string& s) {
    return {intern(reinterpret_cast<const uint8_t*>(s.data()), s.size()),
            static_cast<uint32_t>(s.size())};
  }

  uint32_t add_rdata(uint16_t type, const WireRdata& wire) {
    snap::Rdata r{};
    r.wire = blob_ref(wire);
    std::tie(r.name1_off, r.name2_off) = name_offsets(type, wire);
    rdatas_.push_back(r);
    return static_cast<uint32_t>(rdatas_.size() - 1);
  }

  void emit() {
    std::map<WireName, uint32_t, WireNameLess> node_index;
    for (const auto& [name, node] : nodes_) {
      node_index.emplace(name, static_cast<uint32_t>(node_index.size()));
    }
    zones_.resize(model_.zones.size());
    for (uint32_t z = 0; z < model_.zones.size(); ++z) {
      const ZoneModel& zm = model_.zones[z];
      snap::Zone& zone = zones_[z];
      zone.apex = blob_ref(zm.apex);
      zone.apex_node = node_index.at(zm.apex);
      zone.soa_rdata = add_rdata(dns::kTypeSOA, zm.soa_rdata);
      zone.soa_ttl = zm.soa_ttl;
      zone.negative_ttl = std::min(zm.soa_ttl, soa_minimum(zm.soa_rdata));
      zone.ns_rrset = kNone;
    }
    for (uint32_t s = 0; s < model_.services.size(); ++s) {
      emit_service(model_.services[s], node_index.at(model_.services[s].name));
    }
    for (const auto& [name, info] : nodes_) emit_node(name, info);
  }

  void emit_node(const WireName& name, const NodeInfo& info) {
    snap::Node node{};
    node.name = blob_ref(name);
    node.zone = info.zone;
    node.rrset_first = static_cast<uint32_t>(rrsets_.size());
    bool apex = model_.zones[info.zone].apex == name;
    node.flags = (apex ? snap::kNodeApex : 0) | (is_wildcard(name) ? snap::kNodeWildcard : 0);
    // Static and GSLB types never coincide (check_nodes), so a merge by type gives sorted RRsets.
    auto st = info.statics.begin();
    auto sv = info.services.begin();
    while (st != info.statics.end() || sv != info.services.end()) {
      snap::RRset rs{};
      if (sv == info.services.end() || (st != info.statics.end() && st->first < sv->first)) {
        rs.type = st->first;
        rs.kind = snap::kRRsetStatic;
        rs.ttl = st->second.ttl;
        rs.rdata_first = static_cast<uint32_t>(rdatas_.size());
        rs.rdata_count = static_cast<uint32_t>(st->second.rdatas.size());
        for (const WireRdata& r : st->second.rdatas) add_rdata(rs.type, r);
        if (apex && rs.type == dns::kTypeNS) {
          zones_[info.zone].ns_rrset = static_cast<uint32_t>(rrsets_.size());
        }
        ++st;
      } else {
        rs.type = sv->first;
        rs.kind = snap::kRRsetGslb;
        rs.ttl = model_.services[sv->second].ttl;
        rs.rdata_first = sv->second;
        rs.rdata_count = 0;
        ++sv;
      }
      if (rs.type == dns::kTypeCNAME) node.flags |= snap::kNodeHasCname;
      rrsets_.push_back(rs);
      ++node.rrset_count;
    }
    nodes_out_.push_back(node);
  }

  void emit_service(const ServiceModel& sm, uint32_t node) {
    snap::Service svc{};
    svc.name = blob_ref(sm.name);
    svc.node = node;
    svc.rtype = sm.rtype;
    svc.empty_action = static_cast<uint8_t>(sm.empty_action);
    svc.ttl = sm.ttl;
    svc.pool_first = static_cast<uint32_t>(pools_.size());
    svc.pool_count = static_cast<uint32_t>(sm.pools.size());
    svc.fallback_rdata = sm.fallback ? add_rdata(sm.rtype, *sm.fallback) : kNone;
    for (const PoolModel& pm : sm.pools) emit_pool(sm.rtype, pm);
    services_.push_back(svc);
  }

  void emit_pool(uint16_t rtype, const PoolModel& pm) {
    snap::Pool pool{};
    pool.name = blob_ref(pm.name);
    pool.method = static_cast<uint8_t>(pm.method);
    pool.return_n = pm.return_n;
    pool.member_first = static_cast<uint32_t>(members_.size());
    pool.member_count = static_cast<uint32_t>(pm.members.size());
    std::vector<uint32_t> usable;
    std::vector<uint64_t> usable_weights;
    for (const MemberModel& mm : pm.members) {
      snap::Member m{};
      m.name = blob_ref(mm.name);
      m.rdata = add_rdata(rtype, mm.rdata);
      m.weight = mm.weight;
      m.mode = static_cast<uint8_t>(mm.mode);
      m.health = static_cast<uint8_t>(mm.health);
      m.enabled = mm.enabled ? 1 : 0;
      m.usable = member_usable(mm, model_.unknown_health_is_up) ? 1 : 0;
      if (m.usable) {
        usable.push_back(static_cast<uint32_t>(members_.size()));
        usable_weights.push_back(mm.weight);
      }
      members_.push_back(m);
    }
    pool.usable_first = static_cast<uint32_t>(slots_.size());
    pool.usable_count = static_cast<uint32_t>(usable.size());
    slots_.insert(slots_.end(), usable.begin(), usable.end());
    pool.wheel_first = static_cast<uint32_t>(slots_.size());
    if (pm.method == snap::PoolMethod::kRatio) {
      for (uint32_t pos : smooth_wheel(usable_weights)) slots_.push_back(usable[pos]);
    }
    pool.wheel_count = static_cast<uint32_t>(slots_.size()) - pool.wheel_first;
    pools_.push_back(pool);
  }

  std::vector<uint32_t> name_index() const {
    uint64_t buckets = 1;
    while (buckets < 2 * static_cast<uint64_t>(nodes_out_.size())) buckets <<= 1;
    if (buckets > (1ull << 31)) fail("too many names");
    std::vector<uint32_t> index(buckets, 0);
    uint32_t mask = static_cast<uint32_t>(buckets - 1);
    for (uint32_t n = 0; n < nodes_out_.size(); ++n) {
      const uint8_t* name = blob_.data() + nodes_out_[n].name.off;
      uint32_t b = snap::name_hash(name, nodes_out_[n].name.len) & mask;
      while (index[b] != 0) b = (b + 1) & mask;
      index[b] = n + 1;
    }
    return index;
  }

  template <typename T>
  static void add_section(std::vector<uint8_t>& image, snap::Header& h, uint32_t id,
                          const std::vector<T>& items) {
    while (image.size() % 8 != 0) image.push_back(0);
    snap::SectionEntry& e = h.sections[h.section_count++];
    e.id = id;
    e.elem_size = sizeof(T);
    e.offset = image.size();
    e.size = items.size() * sizeof(T);
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(items.data());
    image.insert(image.end(), bytes, bytes + e.size);
  }

  std::vector<uint8_t> layout() const {
    for (size_t count : {nodes_out_.size(), rrsets_.size(), rdatas_.size(), members_.size(),
                         pools_.size(), slots_.size()}) {
      if (count >= UINT32_MAX) fail("snapshot has too many entries");
    }
    snap::Header h{};
    std::memcpy(h.magic, snap::kMagic, sizeof(h.magic));
    h.format_version = snap::kFormatVersion;
    h.header_size = sizeof(snap::Header);
    h.generation = model_.generation;
    h.created_unix_ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    std::vector<uint8_t> image(sizeof(snap::Header), 0);
    add_section(image, h, snap::kSecBlob, blob_);
    add_section(image, h, snap::kSecZones, zones_);
    add_section(image, h, snap::kSecNodes, nodes_out_);
    add_section(image, h, snap::kSecNameIndex, name_index());
    add_section(image, h, snap::kSecRRsets, rrsets_);
    add_section(image, h, snap::kSecRdatas, rdatas_);
    add_section(image, h, snap::kSecServices, services_);
    add_section(image, h, snap::kSecPools, pools_);
    add_section(image, h, snap::kSecMembers, members_);
    add_section(image, h, snap::kSecPoolSlots, slots_);
    while (image.size() % 8 != 0) image.push_back(0);
    h.total_size = image.size();
    h.checksum = snap::image_checksum(image.data() + sizeof(h), image.size() - sizeof(h));
    std::memcpy(image.data(), &h, sizeof(h));
    return image;
  }

  const SnapshotModel& model_;
  std::map<WireName, NodeInfo, WireNameLess> nodes_;  // byte order of wire names: deterministic node order

  std::vector<uint8_t> blob_;
  std::map<std::string, uint32_t> interned_;
  std::vector<snap::Zone> zones_;
  std::vector<snap::Node> nodes_out_;
  std::vector<snap::RRset> rrsets_;
  std::vector<snap::Rdata> rdatas_;
  std::vector<snap::Service> services_;
  std::vector<snap::Pool> pools_;
  std::vector<snap::Member> members_;
  std::vector<uint32_t> slots_;
};

}  // namespace

bool member_usable(const MemberModel& m, bool unknown_health_is_up) {
  if (!m.enabled) return false;
  switch (m.mode) {
    case snap::MemberMode::kAlwaysUp:
      return true;
    case snap::MemberMode::kAuto:
      return m.health == snap::MemberHealth::kUp ||
             (m.health == snap::MemberHealth::kUnknown && unknown_health_is_up);
    default:
      return false;
  }
}

bool build_snapshot(const SnapshotModel& model, std::vector<uint8_t>* image, std::string* error) {
  try {
    *image = Builder(model).build();
    return true;
  } catch (const BuildError& e) {
    if (error != nullptr) *error = e.what();
  } catch (const std::bad_alloc&) {
    if (error != nullptr) *error = "out of memory while building the snapshot";
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("snapshot build failed: ") + e.what();
  }
  return false;
}

}  // namespace gtm::control
