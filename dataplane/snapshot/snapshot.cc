#include "dataplane/snapshot/snapshot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "dataplane/dns/name.h"
#include "dataplane/dns/wire.h"
#include "dataplane/snapshot/pick_table.h"

namespace gtm::snap {

namespace {

using dns::wire_name_length;

// ---------------------------------------------------------------------------------------------
// Small helpers shared by validation and lookup.

bool fail(std::string* error, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
bool fail(std::string* error, const char* fmt, ...) {
  if (error != nullptr) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    *error = buf;
  }
  return false;
}

// [first, first + count) lies inside [0, total), computed without overflow.
bool range_ok(uint64_t first, uint64_t count, uint64_t total) {
  return first <= total && count <= total - first;
}

bool has_uppercase(const uint8_t* p, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (p[i] >= 'A' && p[i] <= 'Z') return true;
  }
  return false;
}

// Whether `name` equals `apex` or lies below it (label-aligned suffix). Both are well-formed.
bool name_within(const uint8_t* name, size_t len, const uint8_t* apex, size_t apex_len) {
  if (apex_len > len) return false;
  size_t suffix = len - apex_len;
  size_t pos = 0;
  while (pos < suffix) pos += 1 + static_cast<size_t>(name[pos]);
  return pos == suffix && std::memcmp(name + suffix, apex, apex_len) == 0;
}

// ---------------------------------------------------------------------------------------------
// Header and section table.

struct SectionSpec {
  uint32_t id;
  const char* name;
  uint32_t elem_size;
  bool required;
};

constexpr SectionSpec kSectionSpecs[] = {
    {kSecBlob, "blob", 1, true},
    {kSecZones, "zones", sizeof(Zone), true},
    {kSecNodes, "nodes", sizeof(Node), true},
    {kSecNameIndex, "name_index", sizeof(uint32_t), true},
    {kSecRRsets, "rrsets", sizeof(RRset), true},
    {kSecRdatas, "rdatas", sizeof(Rdata), true},
    {kSecServices, "services", sizeof(Service), true},
    {kSecPools, "pools", sizeof(Pool), true},
    {kSecMembers, "members", sizeof(Member), true},
    {kSecPoolSlots, "pool_slots", sizeof(uint32_t), true},
    {kSecLpm4, "lpm4", 1, true},
    {kSecLpm6, "lpm6", 1, true},
    {kSecClientSets, "client_sets", sizeof(ClientSet), true},
    {kSecClasses, "classes", sizeof(ClientClass), true},
    {kSecClassSets, "class_sets", sizeof(uint32_t), true},
    {kSecDatacenters, "datacenters", sizeof(Datacenter), true},
    {kSecTopoScores, "topo_scores", sizeof(uint16_t), true},
    {kSecPoolSets, "pool_sets", sizeof(PoolSet), true},
    {kSecSetPools, "set_pools", sizeof(uint32_t), true},
    {kSecRules, "rules", sizeof(Rule), true},
    {kSecClassRules, "class_rules", sizeof(uint16_t), true},
    {kSecTopoMaps, "topo_maps", sizeof(uint16_t), true},
    {kSecTopoPicks, "topo_picks", sizeof(TopoPick), true},
    {kSecRuleSets, "rule_sets", sizeof(uint32_t), true},
    {kSecAnswerRecords, "answer_records", 1, true},
    {kSecRRsetAnswers, "rrset_answers", sizeof(AnswerRef), true},
    {kSecMemberAnswers, "member_answers", sizeof(AnswerRef), true},
    {kSecPickTable, "pick_table", sizeof(PickEntry), true},
};

const SectionSpec* find_spec(uint32_t id) {
  for (const SectionSpec& s : kSectionSpecs) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

// Validates a section table of `count` entries in a container of `len` bytes whose header is
// `header_size` bytes; on success `found[id]` points at each present entry. `all_required`: an
// image (every section present); an overlay carries only some.
bool check_section_table(const SectionEntry* entries, uint32_t count, uint32_t header_size,
                         size_t len, bool all_required, const SectionEntry* found[kMaxSections],
                         std::string* error) {
  for (uint32_t i = 0; i < kMaxSections; ++i) found[i] = nullptr;
  for (uint32_t i = 0; i < count; ++i) {
    const SectionEntry& e = entries[i];
    const SectionSpec* spec = find_spec(e.id);
    if (spec == nullptr || e.id >= kMaxSections) {
      return fail(error, "section entry %u: unknown id %u", i, e.id);
    }
    if (found[e.id] != nullptr) return fail(error, "section %s: duplicate", spec->name);
    if (e.elem_size != spec->elem_size) {
      return fail(error, "section %s: elem_size %u, expected %u", spec->name, e.elem_size,
                  spec->elem_size);
    }
    if (e.offset % 8 != 0) return fail(error, "section %s: offset not 8-byte aligned", spec->name);
    if (e.offset < header_size) return fail(error, "section %s: overlaps the header", spec->name);
    if (!range_ok(e.offset, e.size, len)) {
      return fail(error, "section %s: out of bounds", spec->name);
    }
    if (e.size % e.elem_size != 0) {
      return fail(error, "section %s: size not a multiple of elem_size", spec->name);
    }
    if (e.size / e.elem_size > UINT32_MAX) {
      return fail(error, "section %s: too many elements", spec->name);
    }
    found[e.id] = &e;
  }
  for (const SectionSpec& s : kSectionSpecs) {
    if (all_required && s.required && found[s.id] == nullptr) {
      return fail(error, "section %s: missing", s.name);
    }
  }
  // Non-empty sections must not share bytes: each byte has one meaning.
  const SectionEntry* sorted[kMaxSections];
  uint32_t n = 0;
  for (uint32_t id = 0; id < kMaxSections; ++id) {
    if (found[id] != nullptr && found[id]->size != 0) sorted[n++] = found[id];
  }
  for (uint32_t i = 1; i < n; ++i) {  // insertion sort: stable, at most 32 entries
    for (uint32_t j = i; j > 0 && sorted[j - 1]->offset > sorted[j]->offset; --j) {
      std::swap(sorted[j - 1], sorted[j]);
    }
  }
  for (uint32_t i = 1; i < n; ++i) {
    if (sorted[i - 1]->offset + sorted[i - 1]->size > sorted[i]->offset) {
      return fail(error, "sections %s and %s overlap", find_spec(sorted[i - 1]->id)->name,
                  find_spec(sorted[i]->id)->name);
    }
  }
  return true;
}

bool check_sections(const Header& h, size_t len, const SectionEntry* found[kMaxSections],
                    std::string* error) {
  return check_section_table(h.sections, h.section_count, h.header_size, len, true, found, error);
}

// The fixed fields of an image's Header or an overlay's OverlayHeader (their section tables are
// checked by check_section_table). Errors about an overlay start with "overlay: ".
template <typename H>
bool check_container_header(const uint8_t* data, size_t len, const char (&magic)[8],
                            const char* what, const char* prefix, std::string* error) {
  if (data == nullptr || len < sizeof(H)) {
    return fail(error, "%s too short (%zu bytes, header is %zu)", what, len, sizeof(H));
  }
  if (reinterpret_cast<uintptr_t>(data) % alignof(H) != 0) {
    return fail(error, "%s not 8-byte aligned in memory", what);
  }
  const H& h = *reinterpret_cast<const H*>(data);
  if (std::memcmp(h.magic, magic, sizeof(magic)) != 0) return fail(error, "%sbad magic", prefix);
  if (h.format_version != kFormatVersion) {
    return fail(error, "%sunsupported format version %u", prefix, h.format_version);
  }
  if (h.header_size != sizeof(H)) return fail(error, "%sbad header_size %u", prefix, h.header_size);
  if (h.total_size != len) {
    return fail(error, "%stotal_size %llu does not match %s length %zu", prefix,
                static_cast<unsigned long long>(h.total_size), what, len);
  }
  if (h.section_count > kMaxSections) {
    return fail(error, "%stoo many sections (%u)", prefix, h.section_count);
  }
  if (h.reserved0 != 0) return fail(error, "%sheader reserved0 not zero", prefix);
  static constexpr SectionEntry kZeroEntry = {};
  for (uint32_t i = h.section_count; i < kMaxSections; ++i) {
    if (std::memcmp(&h.sections[i], &kZeroEntry, sizeof(kZeroEntry)) != 0) {
      return fail(error, "%ssection entry %u: unused but not zero", prefix, i);
    }
  }
  return true;
}

bool check_header(const uint8_t* data, size_t len, std::string* error) {
  return check_container_header<Header>(data, len, kMagic, "image", "", error);
}

bool check_overlay_header(const uint8_t* data, size_t len, std::string* error) {
  return check_container_header<OverlayHeader>(data, len, kOverlayMagic, "overlay",
                                               "overlay: ", error);
}

// ---------------------------------------------------------------------------------------------
// Cross references.

struct Tables {
  const uint8_t* blob = nullptr;
  uint32_t blob_size = 0;
  const Zone* zones = nullptr;
  uint32_t zone_count = 0;
  const Node* nodes = nullptr;
  uint32_t node_count = 0;
  const uint32_t* name_index = nullptr;
  uint32_t bucket_count = 0;
  const RRset* rrsets = nullptr;
  uint32_t rrset_count = 0;
  const Rdata* rdatas = nullptr;
  uint32_t rdata_count = 0;
  const Service* services = nullptr;
  uint32_t service_count = 0;
  const Pool* pools = nullptr;
  uint32_t pool_count = 0;
  const Member* members = nullptr;
  uint32_t member_count = 0;
  const uint32_t* pool_slots = nullptr;
  uint32_t pool_slot_count = 0;
  const ClientSet* client_sets = nullptr;
  uint32_t client_set_count = 0;
  const ClientClass* classes = nullptr;
  uint32_t class_count = 0;
  const uint32_t* class_sets = nullptr;
  uint32_t class_set_count = 0;
  const Datacenter* datacenters = nullptr;
  uint32_t datacenter_count = 0;
  const uint16_t* topo_scores = nullptr;
  uint32_t topo_score_count = 0;
  const PoolSet* pool_sets = nullptr;
  uint32_t pool_set_count = 0;
  const uint32_t* set_pools = nullptr;
  uint32_t set_pool_count = 0;
  const Rule* rules = nullptr;
  uint32_t rule_count = 0;
  const uint32_t* rule_sets = nullptr;
  uint32_t rule_set_count = 0;
  const uint16_t* class_rules = nullptr;
  uint32_t class_rule_count = 0;
  const uint16_t* topo_maps = nullptr;
  uint32_t topo_map_count = 0;
  const TopoPick* topo_picks = nullptr;
  uint32_t topo_pick_count = 0;
  const uint8_t* lpm4 = nullptr;
  uint32_t lpm4_size = 0;
  const uint8_t* lpm6 = nullptr;
  uint32_t lpm6_size = 0;
  geo::Lpm4View lpm4_view;  // set by check_lpm4
  geo::Lpm6View lpm6_view;  // set by check_lpm6
  const uint8_t* answer_records = nullptr;
  uint32_t answer_record_size = 0;
  const AnswerRef* rrset_answers = nullptr;
  uint32_t rrset_answer_count = 0;
  const AnswerRef* member_answers = nullptr;
  uint32_t member_answer_count = 0;
  const PickEntry* pick_table = nullptr;
  uint32_t pick_entry_count = 0;

  bool blob_ok(BlobRef r) const { return range_ok(r.off, r.len, blob_size); }
  const uint8_t* at(BlobRef r) const { return blob + r.off; }
  bool same_bytes(BlobRef a, BlobRef b) const {
    return a.len == b.len && std::memcmp(at(a), at(b), a.len) == 0;
  }
  // Why `r` is not a canonical wire name, or nullptr if it is one.
  const char* name_problem(BlobRef r) const {
    if (!blob_ok(r)) return "out of bounds";
    if (r.len == 0 || wire_name_length(at(r), r.len) != r.len) return "malformed wire name";
    if (has_uppercase(at(r), r.len)) return "not lowercase";
    return nullptr;
  }
};

// nullptr `b`: an empty section that is not there.
template <typename T>
const T* section_array(const SectionBytes* b, uint32_t* count) {
  *count = b != nullptr ? static_cast<uint32_t>(b->size / sizeof(T)) : 0;
  return b != nullptr ? reinterpret_cast<const T*>(b->data) : nullptr;
}

bool check_rdatas(const Tables& t, std::string* error) {
  for (uint32_t i = 0; i < t.rdata_count; ++i) {
    const Rdata& r = t.rdatas[i];
    if (!t.blob_ok(r.wire)) return fail(error, "rdata %u: wire out of bounds", i);
    if (r.wire.len > 0xFFFF) return fail(error, "rdata %u: wire longer than 65535 octets", i);
    if (r.name1_off == kNoNameInRdata && r.name2_off != kNoNameInRdata) {
      return fail(error, "rdata %u: name2_off set without name1_off", i);
    }
    for (uint16_t off : {r.name1_off, r.name2_off}) {
      if (off == kNoNameInRdata) continue;
      if (off >= r.wire.len || wire_name_length(t.at(r.wire) + off, r.wire.len - off) == 0) {
        return fail(error, "rdata %u: name offset %u is not a well-formed name inside the wire", i,
                    off);
      }
    }
  }
  return true;
}

bool soa_well_formed(const Tables& t, const Rdata& r) {
  if (r.name1_off != 0 || r.name2_off == kNoNameInRdata) return false;
  const uint8_t* w = t.at(r.wire);
  size_t mname = wire_name_length(w, r.wire.len);
  if (mname == 0 || r.name2_off != mname) return false;
  size_t rname = wire_name_length(w + mname, r.wire.len - mname);
  return rname != 0 && mname + rname + 20 == r.wire.len;
}

// Zone fields that need only counts; cross checks against nodes come in check_zone_nodes.
bool check_zones(const Tables& t, std::string* error) {
  for (uint32_t z = 0; z < t.zone_count; ++z) {
    const Zone& zone = t.zones[z];
    if (const char* p = t.name_problem(zone.apex)) return fail(error, "zone %u: apex: %s", z, p);
    if (zone.apex_node >= t.node_count) return fail(error, "zone %u: apex_node out of bounds", z);
    if (zone.soa_rdata >= t.rdata_count) return fail(error, "zone %u: soa_rdata out of bounds", z);
    if (!soa_well_formed(t, t.rdatas[zone.soa_rdata])) {
      return fail(error, "zone %u: soa_rdata is not a well-formed SOA", z);
    }
    if (zone.ns_rrset != kNone && zone.ns_rrset >= t.rrset_count) {
      return fail(error, "zone %u: ns_rrset out of bounds", z);
    }
  }
  return true;
}

bool check_rrsets(const Tables& t, std::string* error) {
  for (uint32_t i = 0; i < t.rrset_count; ++i) {
    const RRset& rs = t.rrsets[i];
    if (rs.kind == kRRsetStatic) {
      if (rs.rdata_count == 0) return fail(error, "rrset %u: static rrset without rdata", i);
      if (!range_ok(rs.rdata_first, rs.rdata_count, t.rdata_count)) {
        return fail(error, "rrset %u: rdata range out of bounds", i);
      }
    } else if (rs.kind == kRRsetGslb) {
      if (rs.rdata_first >= t.service_count) {
        return fail(error, "rrset %u: service index out of bounds", i);
      }
      if (rs.rdata_count != 0) return fail(error, "rrset %u: GSLB rrset with rdata_count", i);
      if (t.services[rs.rdata_first].rtype != rs.type) {
        return fail(error, "rrset %u: type differs from its service's rtype", i);
      }
    } else {
      return fail(error, "rrset %u: unknown kind %u", i, rs.kind);
    }
  }
  return true;
}

bool check_nodes(const Tables& t, std::string* error) {
  constexpr uint16_t kKnownFlags = kNodeApex | kNodeWildcard | kNodeHasCname;
  for (uint32_t n = 0; n < t.node_count; ++n) {
    const Node& node = t.nodes[n];
    if (const char* p = t.name_problem(node.name)) return fail(error, "node %u: name: %s", n, p);
    if (node.zone >= t.zone_count) return fail(error, "node %u: zone out of bounds", n);
    const Zone& zone = t.zones[node.zone];
    if (!name_within(t.at(node.name), node.name.len, t.at(zone.apex), zone.apex.len)) {
      return fail(error, "node %u: name outside its zone", n);
    }
    if (!range_ok(node.rrset_first, node.rrset_count, t.rrset_count)) {
      return fail(error, "node %u: rrset range out of bounds", n);
    }
    if ((node.flags & ~kKnownFlags) != 0) return fail(error, "node %u: unknown flags", n);
    bool is_apex = zone.apex_node == n;
    if (((node.flags & kNodeApex) != 0) != is_apex) {
      return fail(error, "node %u: apex flag inconsistent with its zone", n);
    }
    const uint8_t* name = t.at(node.name);
    bool wildcard = name[0] == 1 && name[1] == '*';
    if (((node.flags & kNodeWildcard) != 0) != wildcard) {
      return fail(error, "node %u: wildcard flag inconsistent with its name", n);
    }
    bool has_cname = false;
    for (uint32_t k = 0; k < node.rrset_count; ++k) {
      uint32_t r = node.rrset_first + k;
      const RRset& rs = t.rrsets[r];
      if (k > 0 && rs.type <= t.rrsets[r - 1].type) {
        return fail(error, "node %u: rrsets not sorted by type", n);
      }
      if (rs.type == dns::kTypeCNAME) has_cname = true;
      if (rs.kind == kRRsetGslb) {
        const Service& svc = t.services[rs.rdata_first];
        if (svc.node != n) {
          return fail(error, "node %u: rrset %u: its service belongs to another node", n, r);
        }
        if (!t.same_bytes(svc.name, node.name)) {
          return fail(error, "node %u: rrset %u: its service's name differs from the node's", n, r);
        }
      }
    }
    if (((node.flags & kNodeHasCname) != 0) != has_cname) {
      return fail(error, "node %u: cname flag inconsistent with its rrsets", n);
    }
    if (has_cname && node.rrset_count != 1) {
      return fail(error, "node %u: CNAME alongside other data", n);
    }
    if (has_cname && is_apex) return fail(error, "node %u: CNAME at a zone apex", n);
  }
  return true;
}

bool check_zone_nodes(const Tables& t, std::string* error) {
  for (uint32_t z = 0; z < t.zone_count; ++z) {
    const Zone& zone = t.zones[z];
    const Node& apex = t.nodes[zone.apex_node];
    if (apex.zone != z) return fail(error, "zone %u: apex node belongs to another zone", z);
    if (!t.same_bytes(apex.name, zone.apex)) {
      return fail(error, "zone %u: apex node name differs from the apex", z);
    }
    if (zone.ns_rrset != kNone) {
      const RRset& ns = t.rrsets[zone.ns_rrset];
      bool at_apex =
          zone.ns_rrset >= apex.rrset_first && zone.ns_rrset - apex.rrset_first < apex.rrset_count;
      if (!at_apex || ns.type != dns::kTypeNS || ns.kind != kRRsetStatic) {
        return fail(error, "zone %u: ns_rrset is not the apex node's static NS rrset", z);
      }
    }
  }
  return true;
}

bool check_members(const Tables& t, std::string* error) {
  for (uint32_t m = 0; m < t.member_count; ++m) {
    const Member& mem = t.members[m];
    if (!t.blob_ok(mem.name)) return fail(error, "member %u: name out of bounds", m);
    if (mem.rdata >= t.rdata_count) return fail(error, "member %u: rdata out of bounds", m);
    if (mem.weight == 0) return fail(error, "member %u: zero weight", m);
    if (mem.mode > static_cast<uint8_t>(MemberMode::kAlwaysDown)) {
      return fail(error, "member %u: mode %u out of range", m, mem.mode);
    }
    if (mem.health > static_cast<uint8_t>(MemberHealth::kDown)) {
      return fail(error, "member %u: health %u out of range", m, mem.health);
    }
    if (mem.enabled > 1) return fail(error, "member %u: enabled %u out of range", m, mem.enabled);
    if (mem.usable > 1) return fail(error, "member %u: usable %u out of range", m, mem.usable);
    if (mem.datacenter != kNoDatacenter && mem.datacenter >= t.datacenter_count) {
      return fail(error, "member %u: datacenter out of bounds", m);
    }
  }
  return true;
}

// Slots [first, first + count) of pool_slots must name usable members of the pool.
bool check_slots(const Tables& t, uint32_t p, const char* what, uint32_t first, uint32_t count,
                 std::string* error) {
  const Pool& pool = t.pools[p];
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t m = t.pool_slots[first + k];
    if (m >= t.member_count || m < pool.member_first ||
        m - pool.member_first >= pool.member_count) {
      return fail(error, "pool %u: %s slot %u: member index outside the pool", p, what, k);
    }
    if (t.members[m].usable == 0) {
      return fail(error, "pool %u: %s slot %u: member not usable", p, what, k);
    }
  }
  return true;
}

bool chain_has(const Pool& pool, PoolMethod m) {
  const uint8_t v = static_cast<uint8_t>(m);
  return pool.method == v || pool.alternate == v || pool.fallback == v;
}

bool check_method_chain(const Pool& pool, uint32_t p, std::string* error) {
  if (pool.method > kMaxPoolMethod) {
    return fail(error, "pool %u: method %u out of range", p, pool.method);
  }
  for (uint8_t m : {pool.alternate, pool.fallback}) {
    if (m != kNoMethod && m > kMaxPoolMethod) {
      return fail(error, "pool %u: method %u out of range", p, m);
    }
  }
  if (pool.alternate == kNoMethod && pool.fallback != kNoMethod) {
    return fail(error, "pool %u: fallback method without an alternate", p);
  }
  if (chain_has(pool, PoolMethod::kReturnN) && pool.return_n == 0) {
    return fail(error, "pool %u: return_n is zero", p);
  }
  if (pool.persist_v4 == 0 || pool.persist_v4 > 32 || pool.persist_v6 == 0 ||
      pool.persist_v6 > 128 || pool.persist_weighted > 1 || pool.topo_varies > 1) {
    return fail(error, "pool %u: persistence parameters out of range", p);
  }
  return true;
}

// The topology data of a pool: a class -> pick map and the picks, each a non-empty slice of the
// pool's usable members.
bool check_topology(const Tables& t, uint32_t p, std::string* error) {
  const Pool& pool = t.pools[p];
  if (!chain_has(pool, PoolMethod::kTopology)) {
    if (pool.topo_map != kNone || pool.topo_pick_count != 0 || pool.topo_varies != 0) {
      return fail(error, "pool %u: topology data without a topology method", p);
    }
    return true;
  }
  if (pool.topo_map == kNone || !range_ok(pool.topo_map, t.class_count, t.topo_map_count)) {
    return fail(error, "pool %u: topology map out of bounds", p);
  }
  if (!range_ok(pool.topo_pick_first, pool.topo_pick_count, t.topo_pick_count) ||
      pool.topo_pick_count >= kNoPick) {
    return fail(error, "pool %u: topology picks out of bounds", p);
  }
  for (uint32_t c = 0; c < t.class_count; ++c) {
    const uint16_t v = t.topo_maps[pool.topo_map + c];
    if (v != kNoPick && v >= pool.topo_pick_count) {
      return fail(error, "pool %u: topology map entry %u out of bounds", p, c);
    }
  }
  for (uint32_t k = 0; k < pool.topo_pick_count; ++k) {
    const TopoPick& pick = t.topo_picks[pool.topo_pick_first + k];
    if (pick.slot_count == 0 || !range_ok(pick.slot_first, pick.slot_count, t.pool_slot_count)) {
      return fail(error, "pool %u: topology pick %u: slots out of bounds", p, k);
    }
    if (pick.datacenter >= t.datacenter_count || pick.score == 0) {
      return fail(error, "pool %u: topology pick %u: bad datacenter or score", p, k);
    }
    if (!check_slots(t, p, "topology", pick.slot_first, pick.slot_count, error)) return false;
  }
  return true;
}

bool check_pools(const Tables& t, std::string* error) {
  for (uint32_t p = 0; p < t.pool_count; ++p) {
    const Pool& pool = t.pools[p];
    if (!t.blob_ok(pool.name)) return fail(error, "pool %u: name out of bounds", p);
    if (!check_method_chain(pool, p, error)) return false;
    if (!range_ok(pool.member_first, pool.member_count, t.member_count)) {
      return fail(error, "pool %u: member range out of bounds", p);
    }
    if (!range_ok(pool.usable_first, pool.usable_count, t.pool_slot_count)) {
      return fail(error, "pool %u: usable range out of bounds", p);
    }
    if (!range_ok(pool.wheel_first, pool.wheel_count, t.pool_slot_count)) {
      return fail(error, "pool %u: wheel range out of bounds", p);
    }
    if (pool.usable_count > pool.member_count) {
      return fail(error, "pool %u: more usable members than members", p);
    }
    if (chain_has(pool, PoolMethod::kRatio) &&
        (pool.usable_count == 0) != (pool.wheel_count == 0)) {
      return fail(error, "pool %u: ratio wheel empty while members are usable", p);
    }
    if (!check_slots(t, p, "usable", pool.usable_first, pool.usable_count, error)) return false;
    if (!check_slots(t, p, "wheel", pool.wheel_first, pool.wheel_count, error)) return false;
    if (!check_topology(t, p, error)) return false;
  }
  return true;
}

// Sets, classes, datacenters and topology scores: the client side of steering.
bool check_clients(const Tables& t, std::string* error) {
  for (uint32_t i = 0; i < t.client_set_count; ++i) {
    const ClientSet& cs = t.client_sets[i];
    if (!t.blob_ok(cs.name) || cs.name.len == 0) return fail(error, "client set %u: bad name", i);
    if (cs.is_isp_line > 1) return fail(error, "client set %u: kind out of range", i);
  }
  for (uint32_t d = 0; d < t.datacenter_count; ++d) {
    if (!t.blob_ok(t.datacenters[d].name) || t.datacenters[d].name.len == 0) {
      return fail(error, "datacenter %u: bad name", d);
    }
  }
  if (t.class_count == 0) return fail(error, "classes: none (class 0 must exist)");
  for (uint32_t c = 0; c < t.class_count; ++c) {
    const ClientClass& cl = t.classes[c];
    if (!range_ok(cl.set_first, cl.set_count, t.class_set_count)) {
      return fail(error, "class %u: set range out of bounds", c);
    }
    for (uint32_t k = 0; k < cl.set_count; ++k) {
      const uint32_t set = t.class_sets[cl.set_first + k];
      if (set >= t.client_set_count) return fail(error, "class %u: set id out of bounds", c);
      if (k > 0 && set <= t.class_sets[cl.set_first + k - 1]) {
        return fail(error, "class %u: set ids not ascending", c);
      }
    }
  }
  if (static_cast<uint64_t>(t.class_count) * t.datacenter_count != t.topo_score_count) {
    return fail(error, "topology scores: %u entries, expected classes x datacenters",
                t.topo_score_count);
  }
  return true;
}

bool check_pool_sets(const Tables& t, std::string* error) {
  for (uint32_t i = 0; i < t.pool_set_count; ++i) {
    const PoolSet& ps = t.pool_sets[i];
    if (!t.blob_ok(ps.name)) return fail(error, "pool set %u: name out of bounds", i);
    if (!range_ok(ps.pool_first, ps.pool_count, t.set_pool_count)) {
      return fail(error, "pool set %u: pool range out of bounds", i);
    }
    for (uint32_t k = 0; k < ps.pool_count; ++k) {
      if (t.set_pools[ps.pool_first + k] >= t.pool_count) {
        return fail(error, "pool set %u: pool index out of bounds", i);
      }
    }
  }
  return true;
}

bool check_rules(const Tables& t, std::string* error) {
  for (uint32_t r = 0; r < t.rule_count; ++r) {
    const Rule& rule = t.rules[r];
    if (rule.primary >= t.pool_set_count) return fail(error, "rule %u: primary out of bounds", r);
    if (rule.secondary != kNone && rule.secondary >= t.pool_set_count) {
      return fail(error, "rule %u: secondary out of bounds", r);
    }
    if (rule.active > 1 || (rule.active == 1 && rule.secondary == kNone)) {
      return fail(error, "rule %u: active set %u does not exist", r, rule.active);
    }
    if (rule.switch_reason > static_cast<uint8_t>(SwitchReason::kNoSecondary)) {
      return fail(error, "rule %u: switch reason out of range", r);
    }
    if (!range_ok(rule.set_first, rule.set_count, t.rule_set_count)) {
      return fail(error, "rule %u: set range out of bounds", r);
    }
    for (uint32_t k = 0; k < rule.set_count; ++k) {
      if (t.rule_sets[rule.set_first + k] >= t.client_set_count) {
        return fail(error, "rule %u: set id out of bounds", r);
      }
    }
  }
  return true;
}

// An answer RDATA of a GSLB service must have the service type's shape.
bool rdata_fits_rtype(const Tables& t, uint32_t rdata, uint16_t rtype) {
  const Rdata& r = t.rdatas[rdata];
  switch (rtype) {
    case dns::kTypeA:
      return r.wire.len == 4;
    case dns::kTypeAAAA:
      return r.wire.len == 16;
    case dns::kTypeCNAME:
      return r.name1_off == 0 && r.name2_off == kNoNameInRdata &&
             wire_name_length(t.at(r.wire), r.wire.len) == r.wire.len;
    default:
      return false;
  }
}

// A service's rules, their pool sets and its class -> rule map stay inside the service; the flags
// that tell the engine what to look up agree with what the rules and pools need.
bool check_service_steering(const Tables& t, uint32_t s, std::string* error) {
  const Service& svc = t.services[s];
  if (svc.rule_count == 0 || !range_ok(svc.rule_first, svc.rule_count, t.rule_count) ||
      svc.rule_count >= kNoPick) {
    return fail(error, "service %u: rule range out of bounds", s);
  }
  for (uint32_t r = 0; r < svc.rule_count; ++r) {
    const Rule& rule = t.rules[svc.rule_first + r];
    for (uint32_t set : {rule.primary, rule.secondary}) {
      if (set == kNone) continue;
      const PoolSet& ps = t.pool_sets[set];
      for (uint32_t k = 0; k < ps.pool_count; ++k) {
        const uint32_t pool = t.set_pools[ps.pool_first + k];
        if (pool < svc.pool_first || pool - svc.pool_first >= svc.pool_count) {
          return fail(error, "service %u: rule %u: pool set names a pool of another service", s, r);
        }
      }
    }
  }
  if (svc.fixed_rule >= svc.rule_count)
    return fail(error, "service %u: fixed rule out of bounds", s);
  if (svc.class_rules != kNone) {
    if (!range_ok(svc.class_rules, t.class_count, t.class_rule_count)) {
      return fail(error, "service %u: class rules out of bounds", s);
    }
    for (uint32_t c = 0; c < t.class_count; ++c) {
      if (t.class_rules[svc.class_rules + c] >= svc.rule_count) {
        return fail(error, "service %u: class %u: rule out of bounds", s, c);
      }
    }
  }
  bool topology = false;
  bool persistence = false;
  for (uint32_t k = 0; k < svc.pool_count; ++k) {
    topology |= chain_has(t.pools[svc.pool_first + k], PoolMethod::kTopology);
    persistence |= chain_has(t.pools[svc.pool_first + k], PoolMethod::kPersistence);
  }
  const bool needs_class = svc.class_rules != kNone || topology;
  if ((svc.flags & kSvcRulesVary) != 0 && svc.class_rules == kNone) {
    return fail(error, "service %u: rules vary without a class map", s);
  }
  if (((svc.flags & kSvcNeedsClass) != 0) != needs_class ||
      ((svc.flags & kSvcNeedsAddress) != 0) != persistence) {
    return fail(error, "service %u: flags disagree with its rules and methods", s);
  }
  return true;
}

bool check_services(const Tables& t, std::string* error) {
  for (uint32_t s = 0; s < t.service_count; ++s) {
    const Service& svc = t.services[s];
    if (const char* p = t.name_problem(svc.name)) {
      return fail(error, "service %u: name: %s", s, p);
    }
    if (svc.node >= t.node_count) return fail(error, "service %u: node out of bounds", s);
    if (svc.rtype != dns::kTypeA && svc.rtype != dns::kTypeAAAA && svc.rtype != dns::kTypeCNAME) {
      return fail(error, "service %u: unsupported rtype %u", s, svc.rtype);
    }
    if (svc.empty_action > static_cast<uint8_t>(EmptyAction::kDrop)) {
      return fail(error, "service %u: empty_action %u out of range", s, svc.empty_action);
    }
    if ((svc.flags & ~(kSvcUseEcs | kSvcNeedsClass | kSvcNeedsAddress | kSvcRulesVary)) != 0) {
      return fail(error, "service %u: unknown flags", s);
    }
    if (svc.ecs_max_v4 == 0 || svc.ecs_max_v4 > 32 || svc.ecs_max_v6 == 0 || svc.ecs_max_v6 > 128) {
      return fail(error, "service %u: ECS prefix limits out of range", s);
    }
    if (!range_ok(svc.pool_first, svc.pool_count, t.pool_count)) {
      return fail(error, "service %u: pool range out of bounds", s);
    }
    if (svc.fallback_rdata != kNone) {
      if (svc.fallback_rdata >= t.rdata_count) {
        return fail(error, "service %u: fallback_rdata out of bounds", s);
      }
      if (!rdata_fits_rtype(t, svc.fallback_rdata, svc.rtype)) {
        return fail(error, "service %u: fallback_rdata does not fit rtype %u", s, svc.rtype);
      }
    }
    if (!check_service_steering(t, s, error)) return false;
    for (uint32_t k = 0; k < svc.pool_count; ++k) {
      const Pool& pool = t.pools[svc.pool_first + k];
      for (uint32_t j = 0; j < pool.member_count; ++j) {
        if (!rdata_fits_rtype(t, t.members[pool.member_first + j].rdata, svc.rtype)) {
          return fail(error, "service %u: pool %u: member %u: rdata does not fit rtype %u", s,
                      svc.pool_first + k, pool.member_first + j, svc.rtype);
        }
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Answer records rendered at publish time (format.h AnswerRef). Each one must be exactly what the
// response writer would write for its RRset or member: the engine copies them unchecked, and its
// fast path must answer byte for byte like the general path.

// Whether ref's bytes are the records of rdatas[first, first + count) with `type` and `ttl`.
bool answer_bytes_match(const Tables& t, const AnswerRef& ref, uint16_t type, uint32_t ttl,
                        uint32_t first, uint32_t count) {
  if (ref.count != count || !range_ok(ref.off, ref.len, t.answer_record_size)) return false;
  const uint8_t* p = t.answer_records + ref.off;
  size_t left = ref.len;
  for (uint32_t i = 0; i < count; ++i) {
    const Rdata& rd = t.rdatas[first + i];
    // Names inside RDATA are compressed against the response: those records are never rendered.
    if (rd.name1_off != kNoNameInRdata) return false;
    if (left < kAnswerRecordFixed + rd.wire.len) return false;
    uint8_t head[kAnswerRecordFixed];
    render_answer_header(head, type, ttl, static_cast<uint16_t>(rd.wire.len));
    if (std::memcmp(p, head, sizeof(head)) != 0 ||
        std::memcmp(p + kAnswerRecordFixed, t.at(rd.wire), rd.wire.len) != 0) {
      return false;
    }
    p += kAnswerRecordFixed + rd.wire.len;
    left -= kAnswerRecordFixed + rd.wire.len;
  }
  return left == 0;
}

bool check_answer_records(const Tables& t, std::string* error) {
  if (t.rrset_answer_count != t.rrset_count) {
    return fail(error, "rrset answers: %u entries for %u rrsets", t.rrset_answer_count,
                t.rrset_count);
  }
  if (t.member_answer_count != t.member_count) {
    return fail(error, "member answers: %u entries for %u members", t.member_answer_count,
                t.member_count);
  }
  auto empty = [](const AnswerRef& r) { return r.off == 0 && r.len == 0 && r.count == 0; };
  for (uint32_t i = 0; i < t.rrset_count; ++i) {
    const AnswerRef& ref = t.rrset_answers[i];
    if (ref.len == 0) {
      if (!empty(ref)) return fail(error, "rrset %u: answer records: empty but not zero", i);
      continue;
    }
    const RRset& rs = t.rrsets[i];
    if (rs.kind != kRRsetStatic ||
        !answer_bytes_match(t, ref, rs.type, rs.ttl, rs.rdata_first, rs.rdata_count)) {
      return fail(error, "rrset %u: answer records differ from its rdata", i);
    }
  }
  // A member's record carries its service's type and TTL. Members of A and AAAA services always
  // have one (the fast path relies on it); CNAME targets are names, never rendered.
  std::vector<bool> seen(t.member_count, false);
  for (uint32_t s = 0; s < t.service_count; ++s) {
    const Service& svc = t.services[s];
    for (uint32_t k = 0; k < svc.pool_count; ++k) {
      const Pool& pool = t.pools[svc.pool_first + k];
      for (uint32_t j = 0; j < pool.member_count; ++j) {
        const uint32_t m = pool.member_first + j;
        const AnswerRef& ref = t.member_answers[m];
        const bool rendered = svc.rtype != dns::kTypeCNAME;
        if (seen[m] && rendered) return fail(error, "member %u: in more than one service", m);
        seen[m] = true;
        if (rendered ? !answer_bytes_match(t, ref, svc.rtype, svc.ttl, t.members[m].rdata, 1)
                     : !empty(ref)) {
          return fail(error, "member %u: answer record differs from its rdata", m);
        }
      }
    }
  }
  for (uint32_t m = 0; m < t.member_count; ++m) {
    if (!seen[m] && !empty(t.member_answers[m])) {
      return fail(error, "member %u: answer record without a service", m);
    }
  }
  return true;
}

// The pick table (format.h PickEntry): the services that have one own consecutive runs of it in
// service order, and every entry is what the chain decides from the rules, pool sets, pools and
// topology tables (pick_table.h): an entry the engine would copy unchecked is derived again here,
// so a table that disagrees with the sections it stands for is refused.
bool check_pick_table(const Tables& t, std::string* error) {
  const PickSources src{.rules = t.rules,
                        .pool_sets = t.pool_sets,
                        .set_pools = t.set_pools,
                        .pools = t.pools,
                        .class_rules = t.class_rules,
                        .topo_maps = t.topo_maps,
                        .topo_picks = t.topo_picks};
  uint64_t next = 0;
  for (uint32_t s = 0; s < t.service_count; ++s) {
    const Service& svc = t.services[s];
    if (svc.pick_table == kNone) continue;
    const uint32_t wanted = pick_entries_wanted(svc, t.pools, t.class_count);
    if (wanted == 0) return fail(error, "service %u: a pick table for a service without one", s);
    if (svc.pick_table != next || !range_ok(svc.pick_table, wanted, t.pick_entry_count)) {
      return fail(error, "service %u: pick table out of place or out of bounds", s);
    }
    next += wanted;
    for (uint32_t c = 0; c < wanted; ++c) {
      const PickEntry want = derive_pick(src, svc, c);
      if (std::memcmp(&want, &t.pick_table[svc.pick_table + c], sizeof(want)) != 0) {
        return fail(error,
                    "service %u: pick table entry for class %u differs from its rules and pools", s,
                    c);
      }
    }
  }
  if (next != t.pick_entry_count) {
    return fail(error, "pick table: %u entries, the services own %llu", t.pick_entry_count,
                static_cast<unsigned long long>(next));
  }
  return true;
}

bool check_name_index(const Tables& t, std::string* error) {
  uint32_t empty = 0;
  for (uint32_t b = 0; b < t.bucket_count; ++b) {
    uint32_t v = t.name_index[b];
    if (v == 0) {
      ++empty;
    } else if (v > t.node_count) {
      return fail(error, "name index: bucket %u: node index out of bounds", b);
    }
  }
  // Lookups stop at an empty bucket; without one, a miss would scan the whole table.
  if (empty == 0) return fail(error, "name index: no empty bucket");
  uint32_t mask = t.bucket_count - 1;
  for (uint32_t n = 0; n < t.node_count; ++n) {
    const Node& node = t.nodes[n];
    const uint8_t* name = t.at(node.name);
    uint32_t found = probe_name_index(t.name_index, mask, t.nodes, t.blob, name, node.name.len,
                                      name_hash(name, node.name.len));
    if (found != n) return fail(error, "name index: node %u not findable", n);
  }
  return true;
}

bool check_lpm4(Tables& t, std::string* error) {
  std::string lpm_error;
  if (!t.lpm4_view.validate(t.lpm4, t.lpm4_size, t.class_count, &lpm_error)) {
    return fail(error, "lpm4: %s", lpm_error.c_str());
  }
  return true;
}

bool check_lpm6(Tables& t, std::string* error) {
  std::string lpm_error;
  if (!t.lpm6_view.validate(t.lpm6, t.lpm6_size, t.class_count, &lpm_error)) {
    return fail(error, "lpm6: %s", lpm_error.c_str());
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The checks and the sections each reads. A check reads nothing but its input sections (their
// bytes and sizes): check_declared_inputs() proves it on every test image. So a check whose inputs
// are byte-identical to those of an image that passed it passes again, and is skipped.

constexpr uint32_t bit(uint32_t id) {
  return 1u << id;
}

struct Step {
  const char* name;
  uint32_t inputs;
  bool (*check)(Tables& t, std::string* error);
};

template <bool (*F)(const Tables&, std::string*)>
bool pure(Tables& t, std::string* error) {
  return F(t, error);
}

constexpr Step kSteps[] = {
    {"rdatas", bit(kSecRdatas) | bit(kSecBlob), pure<check_rdatas>},
    {"zones", bit(kSecZones) | bit(kSecBlob) | bit(kSecNodes) | bit(kSecRdatas) | bit(kSecRRsets),
     pure<check_zones>},
    {"clients",
     bit(kSecClientSets) | bit(kSecDatacenters) | bit(kSecClasses) | bit(kSecClassSets) |
         bit(kSecTopoScores) | bit(kSecBlob),
     pure<check_clients>},
    {"members", bit(kSecMembers) | bit(kSecBlob) | bit(kSecRdatas) | bit(kSecDatacenters),
     pure<check_members>},
    {"pools",
     bit(kSecPools) | bit(kSecBlob) | bit(kSecMembers) | bit(kSecPoolSlots) | bit(kSecTopoMaps) |
         bit(kSecTopoPicks) | bit(kSecClasses) | bit(kSecDatacenters),
     pure<check_pools>},
    {"pool_sets", bit(kSecPoolSets) | bit(kSecSetPools) | bit(kSecPools) | bit(kSecBlob),
     pure<check_pool_sets>},
    {"rules", bit(kSecRules) | bit(kSecPoolSets) | bit(kSecRuleSets) | bit(kSecClientSets),
     pure<check_rules>},
    {"services",
     bit(kSecServices) | bit(kSecBlob) | bit(kSecNodes) | bit(kSecRdatas) | bit(kSecPools) |
         bit(kSecMembers) | bit(kSecRules) | bit(kSecPoolSets) | bit(kSecSetPools) |
         bit(kSecClassRules) | bit(kSecClasses),
     pure<check_services>},
    {"pick_table",
     bit(kSecPickTable) | bit(kSecServices) | bit(kSecRules) | bit(kSecPoolSets) |
         bit(kSecSetPools) | bit(kSecPools) | bit(kSecClassRules) | bit(kSecTopoMaps) |
         bit(kSecTopoPicks) | bit(kSecClasses),
     pure<check_pick_table>},
    {"rrsets", bit(kSecRRsets) | bit(kSecRdatas) | bit(kSecServices), pure<check_rrsets>},
    {"nodes", bit(kSecNodes) | bit(kSecBlob) | bit(kSecZones) | bit(kSecRRsets) | bit(kSecServices),
     pure<check_nodes>},
    {"zone_nodes", bit(kSecZones) | bit(kSecNodes) | bit(kSecRRsets) | bit(kSecBlob),
     pure<check_zone_nodes>},
    {"name_index", bit(kSecNameIndex) | bit(kSecNodes) | bit(kSecBlob), pure<check_name_index>},
    {"answer_records",
     bit(kSecAnswerRecords) | bit(kSecRRsetAnswers) | bit(kSecMemberAnswers) | bit(kSecRRsets) |
         bit(kSecRdatas) | bit(kSecBlob) | bit(kSecServices) | bit(kSecPools) | bit(kSecMembers),
     pure<check_answer_records>},
    {"lpm4", bit(kSecLpm4) | bit(kSecClasses), check_lpm4},
    {"lpm6", bit(kSecLpm6) | bit(kSecClasses), check_lpm6},
};

// The tables of checked sections. Sections outside `visible` are empty and at nullptr, so that
// reading one crashes instead of passing by chance (check_declared_inputs).
Tables tables_of(const SectionBytes bytes[kMaxSections], uint32_t visible) {
  auto e = [&](uint32_t id) { return (visible & bit(id)) != 0 ? &bytes[id] : nullptr; };
  Tables t;
  t.blob = section_array<uint8_t>(e(kSecBlob), &t.blob_size);
  t.zones = section_array<Zone>(e(kSecZones), &t.zone_count);
  t.nodes = section_array<Node>(e(kSecNodes), &t.node_count);
  t.name_index = section_array<uint32_t>(e(kSecNameIndex), &t.bucket_count);
  t.rrsets = section_array<RRset>(e(kSecRRsets), &t.rrset_count);
  t.rdatas = section_array<Rdata>(e(kSecRdatas), &t.rdata_count);
  t.services = section_array<Service>(e(kSecServices), &t.service_count);
  t.pools = section_array<Pool>(e(kSecPools), &t.pool_count);
  t.members = section_array<Member>(e(kSecMembers), &t.member_count);
  t.pool_slots = section_array<uint32_t>(e(kSecPoolSlots), &t.pool_slot_count);
  t.client_sets = section_array<ClientSet>(e(kSecClientSets), &t.client_set_count);
  t.classes = section_array<ClientClass>(e(kSecClasses), &t.class_count);
  t.class_sets = section_array<uint32_t>(e(kSecClassSets), &t.class_set_count);
  t.datacenters = section_array<Datacenter>(e(kSecDatacenters), &t.datacenter_count);
  t.topo_scores = section_array<uint16_t>(e(kSecTopoScores), &t.topo_score_count);
  t.pool_sets = section_array<PoolSet>(e(kSecPoolSets), &t.pool_set_count);
  t.set_pools = section_array<uint32_t>(e(kSecSetPools), &t.set_pool_count);
  t.rules = section_array<Rule>(e(kSecRules), &t.rule_count);
  t.rule_sets = section_array<uint32_t>(e(kSecRuleSets), &t.rule_set_count);
  t.class_rules = section_array<uint16_t>(e(kSecClassRules), &t.class_rule_count);
  t.topo_maps = section_array<uint16_t>(e(kSecTopoMaps), &t.topo_map_count);
  t.topo_picks = section_array<TopoPick>(e(kSecTopoPicks), &t.topo_pick_count);
  t.lpm4 = section_array<uint8_t>(e(kSecLpm4), &t.lpm4_size);
  t.lpm6 = section_array<uint8_t>(e(kSecLpm6), &t.lpm6_size);
  t.answer_records = section_array<uint8_t>(e(kSecAnswerRecords), &t.answer_record_size);
  t.rrset_answers = section_array<AnswerRef>(e(kSecRRsetAnswers), &t.rrset_answer_count);
  t.member_answers = section_array<AnswerRef>(e(kSecMemberAnswers), &t.member_answer_count);
  t.pick_table = section_array<PickEntry>(e(kSecPickTable), &t.pick_entry_count);
  return t;
}

// The bytes of each section of a checked image, by id (absent ones empty).
void image_sections(const uint8_t* data, const SectionEntry* const found[kMaxSections],
                    SectionBytes bytes[kMaxSections]) {
  for (uint32_t id = 0; id < kMaxSections; ++id) {
    bytes[id] = SectionBytes();
    bytes[id].id = id;
    if (found[id] == nullptr) continue;
    bytes[id].elem_size = found[id]->elem_size;
    bytes[id].data = data + found[id]->offset;
    bytes[id].size = found[id]->size;
  }
}

// Bits of the sections whose bytes equal the same section of the validated view whose sections
// are `previous`. The same bytes at the same address need no comparison: both views then read
// one sealed mapping (a base image that an overlay completes), which cannot change.
uint32_t same_sections(const SectionBytes now[kMaxSections],
                       const SectionBytes previous[kMaxSections], ValidationStats* stats) {
  uint32_t same = 0;
  for (uint32_t id = 0; id < kMaxSections; ++id) {
    const SectionBytes& a = now[id];
    const SectionBytes& b = previous[id];
    if (a.data == nullptr || b.data == nullptr || a.size != b.size) continue;
    if (a.data == b.data) {
      ++stats->sections_shared;
    } else if (std::memcmp(a.data, b.data, a.size) != 0) {
      continue;
    }
    same |= bit(id);
    ++stats->sections_same;
    stats->bytes_same += a.size;
  }
  return same;
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool SnapshotView::validate(const uint8_t* data, size_t len, std::string* error,
                            const ValidateOptions& options) {
  // A copy first: `options.previous` may be this very view.
  const SnapshotView previous = options.previous != nullptr ? *options.previous : SnapshotView();
  *this = SnapshotView();
  ValidationStats local_stats;
  ValidationStats& stats = options.stats != nullptr ? *options.stats : local_stats;
  stats = ValidationStats();
  if (!check_header(data, len, error)) return false;
  const Header& h = *reinterpret_cast<const Header*>(data);
  const SectionEntry* found[kMaxSections];
  if (!check_sections(h, len, found, error)) return false;
  if (options.verify_checksum) {
    const uint64_t start = now_ns();
    const bool ok = image_checksum(data + h.header_size, len - h.header_size) == h.checksum;
    stats.checksum_ns = now_ns() - start;
    if (!ok) return fail(error, "checksum mismatch");
  }
  SectionBytes bytes[kMaxSections];
  image_sections(data, found, bytes);
  return validate_sections(h, bytes, previous, stats, error);
}

bool SnapshotView::validate_overlay(const uint8_t* base, size_t base_len, const uint8_t* overlay,
                                    size_t overlay_len, std::string* error,
                                    const ValidateOptions& options) {
  const SnapshotView previous = options.previous != nullptr ? *options.previous : SnapshotView();
  *this = SnapshotView();
  ValidationStats local_stats;
  ValidationStats& stats = options.stats != nullptr ? *options.stats : local_stats;
  stats = ValidationStats();
  std::string why;
  const SectionEntry* base_found[kMaxSections];
  if (!check_header(base, base_len, &why) ||
      !check_sections(*reinterpret_cast<const Header*>(base), base_len, base_found, &why)) {
    return fail(error, "base image: %s", why.c_str());
  }
  const Header& bh = *reinterpret_cast<const Header*>(base);
  if (!check_overlay_header(overlay, overlay_len, error)) return false;
  const OverlayHeader& oh = *reinterpret_cast<const OverlayHeader*>(overlay);
  const SectionEntry* found[kMaxSections];
  if (!check_section_table(oh.sections, oh.section_count, oh.header_size, overlay_len, false, found,
                           &why)) {
    return fail(error, "overlay: %s", why.c_str());
  }
  if (oh.base_generation != bh.generation) {
    return fail(error, "overlay completes base generation %llu, the base image is generation %llu",
                static_cast<unsigned long long>(oh.base_generation),
                static_cast<unsigned long long>(bh.generation));
  }
  SectionBytes bytes[kMaxSections];
  image_sections(base, base_found, bytes);
  SectionBytes replaced[kMaxSections];
  image_sections(overlay, found, replaced);
  for (uint32_t id = 0; id < kMaxSections; ++id) {
    if (found[id] != nullptr) bytes[id] = replaced[id];
  }
  // The header of the flat image the two make (what snapshot.bin gets): the base's section
  // order, the overlay's generation and time.
  Header h = bh;
  h.generation = oh.generation;
  h.created_unix_ms = oh.created_unix_ms;
  h.checksum = 0;
  SectionBytes ordered[kMaxSections];
  for (uint32_t i = 0; i < bh.section_count; ++i) ordered[i] = bytes[bh.sections[i].id];
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  layout_sections(ordered, bh.section_count, &h, &parts);
  return validate_sections(h, bytes, previous, stats, error);
}

bool SnapshotView::validate_sections(const Header& h, const SectionBytes bytes[kMaxSections],
                                     const SnapshotView& previous, ValidationStats& stats,
                                     std::string* error) {
  if (bytes[kSecBlob].size > UINT32_MAX) return fail(error, "section blob: larger than 4 GiB");
  if (bytes[kSecAnswerRecords].size > UINT32_MAX) {
    return fail(error, "section answer_records: larger than 4 GiB");
  }
  Tables t = tables_of(bytes, ~0u);
  if (t.bucket_count == 0 || (t.bucket_count & (t.bucket_count - 1)) != 0) {
    return fail(error, "name index: bucket count %u is not a power of two", t.bucket_count);
  }

  uint32_t same = 0;  // bits of the sections identical to the previous image's
  const bool reuse = previous.validated_;
  if (reuse) {
    const uint64_t start = now_ns();
    same = same_sections(bytes, previous.sections_, &stats);
    stats.compare_ns = now_ns() - start;
  }
  for (const Step& step : kSteps) {
    if (reuse && (step.inputs & ~same) == 0) {
      ++stats.checks_skipped;
      if (step.inputs & bit(kSecLpm4)) {
        t.lpm4_view = previous.lpm4_;
        lpm4_from_previous_ = true;
      } else if (step.inputs & bit(kSecLpm6)) {
        t.lpm6_view = previous.lpm6_;
        lpm6_from_previous_ = true;
      }
      continue;
    }
    const uint64_t start = now_ns();
    const bool ok = step.check(t, error);
    (step.inputs & (bit(kSecLpm4) | bit(kSecLpm6)) ? stats.lpm_ns : stats.checks_ns) +=
        now_ns() - start;
    ++stats.checks_run;
    // Order matters: each step relies only on indexes the previous steps proved in bounds.
    if (!ok) return false;
  }

  validated_ = true;
  header_ = h;
  for (uint32_t id = 0; id < kMaxSections; ++id) sections_[id] = bytes[id];
  blob_ = t.blob;
  blob_size_ = t.blob_size;
  zones_ = t.zones;
  zone_count_ = t.zone_count;
  nodes_ = t.nodes;
  node_count_ = t.node_count;
  name_index_ = t.name_index;
  name_index_mask_ = t.bucket_count - 1;
  rrsets_ = t.rrsets;
  rrset_count_ = t.rrset_count;
  rdatas_ = t.rdatas;
  rdata_count_ = t.rdata_count;
  services_ = t.services;
  service_count_ = t.service_count;
  pools_ = t.pools;
  pool_count_ = t.pool_count;
  members_ = t.members;
  member_count_ = t.member_count;
  pool_slots_ = t.pool_slots;
  pool_slot_count_ = t.pool_slot_count;
  lpm4_ = t.lpm4_view;
  lpm6_ = t.lpm6_view;
  client_sets_ = t.client_sets;
  client_set_count_ = t.client_set_count;
  classes_ = t.classes;
  class_count_ = t.class_count;
  class_sets_ = t.class_sets;
  datacenters_ = t.datacenters;
  datacenter_count_ = t.datacenter_count;
  topo_scores_ = t.topo_scores;
  pool_sets_ = t.pool_sets;
  set_pools_ = t.set_pools;
  rules_ = t.rules;
  rule_sets_ = t.rule_sets;
  class_rules_ = t.class_rules;
  topo_maps_ = t.topo_maps;
  topo_picks_ = t.topo_picks;
  answer_records_ = t.answer_records;
  rrset_answers_ = t.rrset_answers;
  member_answers_ = t.member_answers;
  pick_table_ = t.pick_table;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Loading and saving.

std::shared_ptr<const LoadedSnapshot::Mapping> LoadedSnapshot::map_fd(int fd, std::string* error) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    fail(error, "fstat: %s", std::strerror(errno));
    return nullptr;
  }
  if (st.st_size <= 0) {
    fail(error, "snapshot is empty");
    return nullptr;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  // Populated at once: cheaper than a fault per page, and the workers that read the image after
  // the swap never take a page fault on it.
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (map == MAP_FAILED) {
    fail(error, "mmap: %s", std::strerror(errno));
    return nullptr;
  }
  std::shared_ptr<Mapping> mapping(new (std::nothrow) Mapping(), [](Mapping* m) { delete m; });
  if (mapping == nullptr) {
    munmap(map, size);
    fail(error, "out of memory");
    return nullptr;
  }
  mapping->data = static_cast<const uint8_t*>(map);
  mapping->size = size;
  mapping->dev = st.st_dev;
  mapping->ino = st.st_ino;
  const int seals = fcntl(fd, F_GET_SEALS);
  mapping->sealed =
      seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) == (F_SEAL_WRITE | F_SEAL_SHRINK);
  return mapping;
}

const std::shared_ptr<const LoadedSnapshot::Mapping>& LoadedSnapshot::holder_of(
    const uint8_t* data) const {
  const Mapping& m = *map_;
  return base_map_ && !(data >= m.data && data < m.data + m.size) ? base_map_ : map_;
}

void LoadedSnapshot::keep_lpm_maps(const LoadedSnapshot* previous) {
  lpm4_map_ =
      view_.lpm4_from_previous() ? previous->lpm4_map_ : holder_of(view_.section(kSecLpm4).data);
  lpm6_map_ =
      view_.lpm6_from_previous() ? previous->lpm6_map_ : holder_of(view_.section(kSecLpm6).data);
}

std::unique_ptr<LoadedSnapshot> LoadedSnapshot::mapped(int fd, std::string* error) {
  std::unique_ptr<LoadedSnapshot> loaded(new (std::nothrow) LoadedSnapshot());
  if (loaded == nullptr) {
    fail(error, "out of memory");
    return nullptr;
  }
  loaded->map_ = map_fd(fd, error);
  if (loaded->map_ == nullptr) return nullptr;
  return loaded;
}

LoadedSnapshot* LoadedSnapshot::from_fd(int fd, std::string* error, const LoadOptions& options) {
  std::unique_ptr<LoadedSnapshot> loaded = mapped(fd, error);
  if (loaded == nullptr) return nullptr;
  loaded->sealed_ = loaded->map_->sealed;
  ValidateOptions v;
  v.verify_checksum = options.verify_checksum || !loaded->sealed_;
  v.stats = options.stats;
  const LoadedSnapshot* previous = options.previous;
  if (previous != nullptr && previous->sealed_ && loaded->sealed_) v.previous = &previous->view_;
  if (!loaded->view_.validate(loaded->map_->data, loaded->map_->size, error, v)) return nullptr;
  loaded->keep_lpm_maps(previous);
  return loaded.release();
}

LoadedSnapshot* LoadedSnapshot::from_overlay(int overlay_fd, int base_fd, std::string* error,
                                             const LoadOptions& options) {
  std::unique_ptr<LoadedSnapshot> loaded = mapped(overlay_fd, error);
  if (loaded == nullptr) return nullptr;
  const LoadedSnapshot* previous = options.previous;
  if (previous != nullptr && !previous->sealed_) previous = nullptr;
  struct stat st;
  if (fstat(base_fd, &st) != 0) {
    fail(error, "base image: fstat: %s", std::strerror(errno));
    return nullptr;
  }
  // The file the image in service is or is built on: mapped already, and sealed, so the same
  // file has the same bytes (the mapping keeps the inode alive: its number cannot be reused).
  if (previous != nullptr && previous->image_map()->dev == st.st_dev &&
      previous->image_map()->ino == st.st_ino) {
    loaded->base_map_ = previous->image_map();
    loaded->base_shared_ = true;
  } else {
    std::string why;
    loaded->base_map_ = map_fd(base_fd, &why);
    if (loaded->base_map_ == nullptr) {
      fail(error, "base image: %s", why.c_str());
      return nullptr;
    }
  }
  if (!loaded->map_->sealed || !loaded->base_map_->sealed) {
    fail(error, "an overlay and its base must be memfds sealed against writing and shrinking");
    return nullptr;
  }
  loaded->sealed_ = true;
  ValidateOptions v;
  v.verify_checksum = false;
  v.stats = options.stats;
  if (previous != nullptr) v.previous = &previous->view_;
  if (!loaded->view_.validate_overlay(loaded->base_map_->data, loaded->base_map_->size,
                                      loaded->map_->data, loaded->map_->size, error, v)) {
    return nullptr;
  }
  loaded->keep_lpm_maps(previous);
  return loaded.release();
}

FlatImage LoadedSnapshot::flat_image() const {
  FlatImage out;
  out.header = view_.header();
  out.keep = {map_, base_map_};
  if (!base_map_) {
    out.parts.emplace_back(map_->data + sizeof(Header), map_->size - sizeof(Header));
    return out;
  }
  SectionBytes ordered[kMaxSections];
  const Header& h = view_.header();
  for (uint32_t i = 0; i < h.section_count; ++i) ordered[i] = view_.section(h.sections[i].id);
  layout_sections(ordered, h.section_count, &out.header, &out.parts);
  return out;
}

LoadedSnapshot* LoadedSnapshot::from_file(const std::string& path, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(error, "open %s: %s", path.c_str(), std::strerror(errno));
    return nullptr;
  }
  LoadedSnapshot* loaded = from_fd(fd, error);
  close(fd);  // the mapping stays valid after close
  if (loaded == nullptr && error != nullptr) *error = path + ": " + *error;
  return loaded;
}

LoadedSnapshot::~LoadedSnapshot() = default;

LoadedSnapshot::Mapping::~Mapping() {
  if (data != nullptr) munmap(const_cast<uint8_t*>(data), size);
}

bool check_declared_inputs(const uint8_t* data, size_t len, std::string* error) {
  SnapshotView full;
  if (!full.validate(data, len, error)) return false;
  const Header& h = *reinterpret_cast<const Header*>(data);
  const SectionEntry* found[kMaxSections];
  if (!check_sections(h, len, found, error)) return false;
  SectionBytes bytes[kMaxSections];
  image_sections(data, found, bytes);
  for (const Step& step : kSteps) {
    Tables t = tables_of(bytes, step.inputs);
    std::string why;
    if (!step.check(t, &why)) {
      return fail(error, "check %s reads more than its declared inputs: %s", step.name,
                  why.c_str());
    }
  }
  return true;
}

namespace {

bool write_all(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

namespace {

// Writes `head` then the `tail` pieces to `path` atomically (temp file + fsync + rename +
// directory fsync).
bool write_file_atomically(const std::string& path, const uint8_t* head, size_t head_len,
                           const std::vector<std::pair<const uint8_t*, size_t>>& tail,
                           std::string* error) {
  // The temp file lives in the target's directory so rename() is atomic (same filesystem).
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return fail(error, "create temp for %s: %s", path.c_str(), std::strerror(errno));
  bool ok = fchmod(fd, 0644) == 0 && write_all(fd, head, head_len);
  for (size_t i = 0; ok && i < tail.size(); ++i) ok = write_all(fd, tail[i].first, tail[i].second);
  ok = ok && fsync(fd) == 0;
  int saved_errno = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  if (!ok) {
    unlink(tmp.c_str());
    return fail(error, "write %s: %s", tmp.c_str(), std::strerror(saved_errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    saved_errno = errno;
    unlink(tmp.c_str());
    return fail(error, "rename %s: %s", path.c_str(), std::strerror(saved_errno));
  }
  // Make the rename itself durable.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(error, "open dir %s: %s", dir.c_str(), std::strerror(errno));
  bool synced = fsync(dfd) == 0;
  saved_errno = errno;
  close(dfd);
  if (!synced) return fail(error, "fsync dir %s: %s", dir.c_str(), std::strerror(saved_errno));
  return true;
}

}  // namespace

bool write_snapshot_file(const std::string& path, const uint8_t* data, size_t len,
                         std::string* error) {
  return write_file_atomically(path, data, len, {}, error);
}

bool write_snapshot_file(const std::string& path, const FlatImage& image, std::string* error) {
  ChecksumStream checksum;
  for (const auto& [data, len] : image.parts) checksum.add(data, len);
  Header h = image.header;
  h.checksum = checksum.finish();
  return write_file_atomically(path, reinterpret_cast<const uint8_t*>(&h), sizeof(h), image.parts,
                               error);
}

}  // namespace gtm::snap
