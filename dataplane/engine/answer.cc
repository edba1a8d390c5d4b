// The answer engine: parse, find the name, follow CNAMEs, choose GSLB members, write the response.
//
// Everything here runs per query: no allocation, no system calls, no locks; names live in stack
// buffers and the snapshot is indexed directly (SnapshotView validated it at load time). Explain
// output costs one predictable branch per decision when `explain` is nullptr.
#include "dataplane/engine/answer.h"

#include <arpa/inet.h>

#include <cstring>

#include "dataplane/dns/name.h"
#include "dataplane/dns/query_parser.h"
#include "dataplane/dns/query_parser_fast.h"
#include "dataplane/dns/response_writer.h"
#include "dataplane/dns/wire.h"
#include "dataplane/engine/rendezvous.h"

namespace gtm::engine {
namespace {

using dns::ParsedQuery;
using dns::ResponseWriter;
using dns::Section;
using snap::kNone;

// RFC 1034 leaves the chain length open; 8 covers every sane configuration and bounds the work a
// single query can cause (loops are also detected exactly, see resolve()).
constexpr int kMaxCnameHops = 8;
constexpr size_t kTcpLimit = 65535;

// Stands in for the snapshot when answering FORMERR/NOTIMP before one is loaded; never indexed.
const snap::SnapshotView kEmptyView;

// ---------------------------------------------------------------------------------------------
// Explain helpers (only ever called when explaining).

struct NameText {
  char s[dns::kMaxNameLen + 2];
};

// Presentation form of a wire name; bytes that would be ambiguous in text become '?'.
NameText name_text(const uint8_t* name, size_t len) {
  NameText t;
  size_t o = 0;
  size_t i = 0;
  while (i < len && name[i] != 0 && o + 1 < sizeof(t.s)) {
    const size_t label_len = name[i++];
    for (size_t k = 0; k < label_len && i < len && o + 2 < sizeof(t.s); ++k, ++i) {
      const uint8_t ch = name[i];
      t.s[o++] = (ch > 0x20 && ch < 0x7F && ch != '.') ? static_cast<char>(ch) : '?';
    }
    t.s[o++] = '.';
  }
  if (o == 0) t.s[o++] = '.';
  t.s[o] = '\0';
  return t;
}

const char* type_text(uint16_t type) {
  const char* name = dns::rr_type_name(type);
  return name != nullptr ? name : "TYPE";
}

const char* rcode_text(uint16_t rcode) {
  switch (rcode) {
    case dns::kRcodeNoError:
      return "NOERROR";
    case dns::kRcodeFormErr:
      return "FORMERR";
    case dns::kRcodeServFail:
      return "SERVFAIL";
    case dns::kRcodeNXDomain:
      return "NXDOMAIN";
    case dns::kRcodeNotImp:
      return "NOTIMP";
    case dns::kRcodeRefused:
      return "REFUSED";
    case dns::kRcodeBadVers:
      return "BADVERS";
    default:
      return "RCODE?";
  }
}

const char* method_text(uint8_t method) {
  switch (static_cast<snap::PoolMethod>(method)) {
    case snap::PoolMethod::kRoundRobin:
      return "round-robin";
    case snap::PoolMethod::kRatio:
      return "ratio";
    case snap::PoolMethod::kGlobalAvailability:
      return "global-availability";
    case snap::PoolMethod::kRandom:
      return "random";
    case snap::PoolMethod::kReturnAll:
      return "return-all";
    case snap::PoolMethod::kReturnN:
      return "return-n";
    case snap::PoolMethod::kTopology:
      return "topology";
    case snap::PoolMethod::kPersistence:
      return "persistence";
  }
  return "unknown";
}

// Why the builder judged a member unusable, for explain.
const char* unusable_reason(const snap::Member& m) {
  if (!m.enabled) return "disabled";
  if (m.mode == static_cast<uint8_t>(snap::MemberMode::kAlwaysDown)) return "always-down";
  if (m.health == static_cast<uint8_t>(snap::MemberHealth::kDown)) return "health down";
  if (m.health == static_cast<uint8_t>(snap::MemberHealth::kUnknown)) return "health unknown";
  return "not usable";
}

// Appends to a fixed line buffer, ignoring what does not fit.
struct LineBuf {
  char s[Explain::kLineLen];
  size_t len = 0;
  void put(const char* text, size_t n) {
    for (size_t i = 0; i < n && len + 1 < sizeof(s); ++i) s[len++] = text[i];
    s[len] = '\0';
  }
  void put(const char* text) { put(text, strlen(text)); }
};

// ---------------------------------------------------------------------------------------------
// Per-query state.

// Owner of the records being added: the question name itself (written as a pointer to the
// question, preserving the client's case) or a canonical name (CNAME targets, glue, apex).
struct Owner {
  const uint8_t* name;
  uint16_t len;
  bool is_qname;
};

// What a decision reads: the snapshot, the query, the client and the worker's rotation state (and
// the explain record). The fast path decides with this alone; Ctx adds the response being written.
struct Env {
  const snap::SnapshotView& s;
  const ParsedQuery& q;
  const ClientAddr& src;  // the packet's source address (the resolver)
  WorkerState& ws;
  Explain* explain;
};

struct Ctx : Env {
  Ctx(const snap::SnapshotView& view, const ParsedQuery& query, const ClientAddr& source,
      WorkerState& state, Explain* ex)
      : Env{view, query, source, state, ex} {}

  ResponseWriter w;
  uint16_t rcode = dns::kRcodeNoError;
  bool overflow = false;  // an RR did not fit: the response will be truncated
  // The ECS SCOPE PREFIX-LENGTH of the response: the one place it is decided. 0 (valid for every
  // client, RFC 7871 section 7.2.1) unless a decision used the ECS subnet; then the longest prefix
  // any such decision depended on (see Steer::scope).
  uint8_t ecs_scope = 0;
  bool drop = false;  // an all-down action said: no response at all
};

void add_rdata(Ctx& c, Section sec, const Owner& o, uint16_t type, uint32_t ttl,
               const snap::Rdata& rd) {
  if (c.overflow) return;
  const uint8_t* wire = c.s.blob(rd.wire);
  const bool ok = o.is_qname ? c.w.add_rr_qname(sec, type, dns::kClassIN, ttl, wire, rd.wire.len,
                                                rd.name1_off, rd.name2_off)
                             : c.w.add_rr(sec, o.name, o.len, type, dns::kClassIN, ttl, wire,
                                          rd.wire.len, rd.name1_off, rd.name2_off);
  if (GTM_UNLIKELY(!ok)) c.overflow = true;
}

// The zone SOA in authority: the proof of a negative answer (RFC 2308), TTL = negative TTL.
void add_negative_soa(Ctx& c, uint32_t zone_idx) {
  const snap::Zone& z = c.s.zones()[zone_idx];
  const Owner apex{c.s.blob(z.apex), static_cast<uint16_t>(z.apex.len), false};
  add_rdata(c, Section::kAuthority, apex, dns::kTypeSOA, z.negative_ttl, c.s.rdatas()[z.soa_rdata]);
}

const snap::RRset* find_rrset(const snap::SnapshotView& s, const snap::Node& n, uint16_t type) {
  const snap::RRset* rr = s.rrsets() + n.rrset_first;
  for (const snap::RRset* end = rr + n.rrset_count; rr != end; ++rr) {
    if (rr->type == type) return rr;
  }
  return nullptr;
}

// Copies a wire name from RDATA into `out` in canonical (lowercase) form. Returns its length, or
// 0 when it is not a well-formed uncompressed name.
size_t copy_name_lower(const uint8_t* name, size_t max_len, uint8_t* out) {
  if (max_len > dns::kMaxNameLen) max_len = dns::kMaxNameLen;
  size_t i = 0;
  while (i < max_len) {
    const uint8_t label_len = name[i];
    out[i++] = label_len;
    if (label_len == 0) return i;
    if (label_len > dns::kMaxLabelLen || i + label_len > max_len) return 0;
    for (size_t k = 0; k < label_len; ++k, ++i) out[i] = dns::ascii_lower(name[i]);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Name lookup.

enum class Match : uint8_t { kExact, kWildcard, kNxdomain, kOutOfZone };

struct Lookup {
  Match match;
  uint32_t node;  // the node answering (exact or wildcard), or the closest encloser (kNxdomain)
  uint32_t zone;
};

// Finds the node for a canonical name: the exact node, else the wildcard child of the closest
// encloser (RFC 4592), else NXDOMAIN in the closest encloser's zone, else not ours at all. Empty
// non-terminals are nodes, so the closest encloser is simply the longest existing suffix.
Lookup lookup(const snap::SnapshotView& s, const uint8_t* name, size_t len, uint32_t hash) {
  const uint32_t exact = s.find_node(name, len, hash);
  if (GTM_LIKELY(exact != kNone)) return {Match::kExact, exact, s.nodes()[exact].zone};
  size_t off = 0;
  while (off < len && name[off] != 0) {
    off += name[off] + 1;
    if (off >= len) break;
    const size_t ce_len = len - off;
    const uint32_t ce = s.find_node(name + off, ce_len);
    if (ce == kNone) continue;
    // A proper suffix is at least 2 octets shorter, so "*." + suffix fits in a name.
    uint8_t wildcard[dns::kMaxNameLen];
    wildcard[0] = 1;
    wildcard[1] = '*';
    memcpy(wildcard + 2, name + off, ce_len);
    const uint32_t wc = s.find_node(wildcard, ce_len + 2);
    if (wc != kNone) return {Match::kWildcard, wc, s.nodes()[wc].zone};
    return {Match::kNxdomain, ce, s.nodes()[ce].zone};
  }
  return {Match::kOutOfZone, kNone, kNone};
}

void explain_lookup(Ctx& c, const uint8_t* name, size_t len, const Lookup& lk) {
  const NameText n = name_text(name, len);
  if (lk.match == Match::kOutOfZone) {
    c.explain->add("name %s: not in any zone", n.s);
    return;
  }
  const snap::Zone& z = c.s.zones()[lk.zone];
  const NameText zone = name_text(c.s.blob(z.apex), z.apex.len);
  const snap::Node& node = c.s.nodes()[lk.node];
  const NameText node_name = name_text(c.s.blob(node.name), node.name.len);
  switch (lk.match) {
    case Match::kExact:
      c.explain->add("name %s: zone %s, node found (%u rrsets)", n.s, zone.s, node.rrset_count);
      break;
    case Match::kWildcard:
      c.explain->add("name %s: zone %s, no node, wildcard %s", n.s, zone.s, node_name.s);
      break;
    case Match::kNxdomain:
      c.explain->add("name %s: zone %s, no node and no wildcard under closest encloser %s", n.s,
                     zone.s, node_name.s);
      break;
    case Match::kOutOfZone:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Client identity.

// Who a service steers for. With the service's ECS switch on and an ECS option whose SOURCE
// PREFIX-LENGTH is not 0, the client is that subnet, cut to the service's longest honoured prefix;
// otherwise it is the packet's source address. SOURCE PREFIX-LENGTH 0 is a resolver asking for an
// answer not tailored to its clients (RFC 7871 section 7.1.2): it gets the answer for itself, with
// SCOPE 0.
struct Steer {
  uint8_t family = 0;        // 4 or 6; 0 = unknown (offline tools without --client)
  uint8_t bits = 0;          // address bits known: the ECS prefix used, or 32 / 128
  bool from_ecs = false;     // only then does a decision narrow the response's SCOPE
  uint8_t class_prefix = 0;  // the LPM entry's prefix length, at most `bits`
  uint8_t scope = 0;         // the longest prefix a decision so far depended on
  uint32_t cls = 0;          // client class (geo::kNoClass unless looked up)
  uint8_t addr[16];          // network order, zero past `bits`; valid when family != 0
};

// Zeroes the bits of `addr` (4 or 16 bytes) past `bits`.
void mask_address(uint8_t* addr, uint8_t family, uint8_t bits) {
  if (family == 4) {
    const uint32_t a = dns::load32(addr) & (bits == 0 ? 0u : ~0u << (32 - bits));
    dns::store32(addr, a);
    return;
  }
  for (size_t i = 0; i < 16; ++i) {
    const size_t lo = i * 8;
    if (bits >= lo + 8) continue;
    addr[i] = bits <= lo ? 0 : static_cast<uint8_t>(addr[i] & (0xFF00u >> (bits - lo)));
  }
}

GTM_ALWAYS_INLINE void identify_client(const Env& c, const snap::Service& svc, Steer* st) {
  const dns::EcsOption& e = c.q.ecs;
  if ((svc.flags & snap::kSvcUseEcs) && e.present && e.source_prefix > 0) {
    st->family = e.family == 1 ? 4 : 6;
    const uint8_t max = st->family == 4 ? svc.ecs_max_v4 : svc.ecs_max_v6;
    st->bits = e.source_prefix < max ? e.source_prefix : max;
    memcpy(st->addr, e.address, 16);
    // The parser zeroed the address past the source prefix; only a cut to `max` is left.
    if (st->bits < e.source_prefix) mask_address(st->addr, st->family, st->bits);
    st->from_ecs = true;
    return;
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (c.src.family == 4) {
    st->family = 4;
    st->bits = 32;
    memcpy(st->addr, c.src.addr, 4);
  } else if (c.src.family == 6 && memcmp(c.src.addr, kMapped, 12) == 0) {
    st->family = 4;  // an IPv4 client on a dual-stack socket
    st->bits = 32;
    memcpy(st->addr, c.src.addr + 12, 4);
  } else if (c.src.family == 6) {
    st->family = 6;
    st->bits = 128;
    memcpy(st->addr, c.src.addr, 16);
  } else {
    memset(st->addr, 0, sizeof(st->addr));  // unknown: persistence hashes "no address"
  }
}

// The one LPM lookup of a client-dependent query.
GTM_ALWAYS_INLINE void classify_client(const Env& c, Steer* st) {
  geo::LpmMatch m;
  if (st->family == 4) {
    m = c.s.lpm4().lookup(dns::load32(st->addr));
  } else if (st->family == 6) {
    m = c.s.lpm6().lookup(st->addr);
  }
  st->cls = m.value;
  st->class_prefix = m.prefix_len < st->bits ? m.prefix_len : st->bits;
}

// A decision that depended on the client's first `bits` bits.
void depends_on(Steer* st, uint8_t bits) {
  // Branch-free: which decisions depend on the client varies with the client in a steered mix.
  const uint8_t b = st->from_ecs ? bits : 0;
  st->scope = b > st->scope ? b : st->scope;
}

// ---------------------------------------------------------------------------------------------
// Explain helpers for steering.

void put_address(LineBuf* line, uint8_t family, const uint8_t* addr, uint8_t bits) {
  char text[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, text, sizeof(text));
  char out[INET6_ADDRSTRLEN + 8];
  snprintf(out, sizeof(out), "%s/%u", text, bits);
  line->put(out);
}

void put_blob(LineBuf* line, const snap::SnapshotView& s, snap::BlobRef r) {
  line->put(reinterpret_cast<const char*>(s.blob(r)), r.len);
}

void put_set_names(LineBuf* line, const snap::SnapshotView& s, const uint32_t* ids, uint32_t n) {
  for (uint32_t k = 0; k < n; ++k) {
    const snap::ClientSet& set = s.client_sets()[ids[k]];
    line->put(k == 0 ? "" : ", ");
    line->put(set.is_isp_line ? "isp-line " : "region ");
    put_blob(line, s, set.name);
  }
}

void explain_client(const Env& c, const Steer& st, bool classified) {
  LineBuf line;
  line.put("client ");
  if (st.family == 0) {
    line.put("unknown (no source address, no ECS)");
  } else {
    put_address(&line, st.family, st.addr, st.bits);
    line.put(st.from_ecs ? " (ECS)" : " (source address)");
  }
  if (classified) {
    char head[48];
    snprintf(head, sizeof(head), " -> class %u: ", st.cls);
    line.put(head);
    const snap::ClientClass& cl = c.s.classes()[st.cls];
    if (cl.set_count == 0) line.put("no region or ISP line");
    put_set_names(&line, c.s, c.s.class_sets() + cl.set_first, cl.set_count);
    line.put("; prefix ");
    if (st.family != 0) {
      uint8_t block[16];
      memcpy(block, st.addr, 16);
      mask_address(block, st.family, st.class_prefix);
      put_address(&line, st.family, block, st.class_prefix);
    }
  }
  c.explain->add("%s", line.s);
}

void explain_rule(const Env& c, const snap::Service& svc, uint32_t r) {
  const snap::Rule& rule = c.s.rules()[svc.rule_first + r];
  LineBuf line;
  char head[64];
  if (rule.set_count == 0) {
    snprintf(head, sizeof(head), "rule %u of %u: default", r + 1, svc.rule_count);
    line.put(head);
    if (svc.rule_count > 1) line.put(" (no earlier rule names the client's sets)");
  } else {
    snprintf(head, sizeof(head), "rule %u of %u: matches ", r + 1, svc.rule_count);
    line.put(head);
    put_set_names(&line, c.s, c.s.rule_sets() + rule.set_first, rule.set_count);
  }
  c.explain->add("%s", line.s);
  const snap::PoolSet& primary = c.s.pool_sets()[rule.primary];
  line = LineBuf();
  line.put(rule.active ? "secondary set " : "primary set ");
  put_blob(&line, c.s, rule.active ? c.s.pool_sets()[rule.secondary].name : primary.name);
  line.put(" active: ");
  char why[160];
  switch (static_cast<snap::SwitchReason>(rule.switch_reason)) {
    case snap::SwitchReason::kPrimaryGood:
      snprintf(why, sizeof(why), "primary has %u of %u members usable (needs %u and %u%%)",
               rule.primary_usable, rule.primary_total, rule.min_members, rule.min_percent);
      break;
    case snap::SwitchReason::kPrimaryBelowMin:
      snprintf(why, sizeof(why), "primary below its minimum (%u of %u usable, needs %u and %u%%)",
               rule.primary_usable, rule.primary_total, rule.min_members, rule.min_percent);
      break;
    case snap::SwitchReason::kHoldDown:
      snprintf(why, sizeof(why), "primary good again (%u of %u usable), hold-down: %u s left",
               rule.primary_usable, rule.primary_total, rule.hold_down_left_s);
      break;
    case snap::SwitchReason::kNoSecondary:
      snprintf(why, sizeof(why), "primary below its minimum (%u of %u usable) but no secondary",
               rule.primary_usable, rule.primary_total);
      break;
  }
  line.put(why);
  c.explain->add("%s", line.s);
}

// ---------------------------------------------------------------------------------------------
// GSLB selection.

// Members chosen for one answer: `count` entries of slots[], starting at `start` and wrapping at
// `n`. slots[] holds member indexes (a pool's usable list, its ratio wheel, a topology pick).
struct GslbPick {
  const uint32_t* slots = nullptr;
  uint32_t n = 0;
  uint32_t start = 0;
  uint32_t count = 0;
};

// xorshift64* (Vigna): fast, per worker, good enough to spread load; not for anything secret.
uint32_t random_below(WorkerState& ws, uint32_t n) {
  uint64_t x = ws.rng;
  if (GTM_UNLIKELY(x == 0)) x = 0x9E3779B97F4A7C15ull;  // the all-zero state is a fixed point
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ws.rng = x;
  const uint64_t r = (x * 0x2545F4914F6CDD1Dull) >> 32;
  return static_cast<uint32_t>((r * n) >> 32);  // Lemire's multiply-shift: no division
}

void explain_pool(const Env& c, const snap::Pool& pool, const char* verdict) {
  LineBuf line;
  char head[Explain::kLineLen];
  snprintf(head, sizeof(head), "pool %.*s (%s", static_cast<int>(pool.name.len),
           reinterpret_cast<const char*>(c.s.blob(pool.name)), method_text(pool.method));
  line.put(head);
  for (uint8_t m : {pool.alternate, pool.fallback}) {
    if (m == snap::kNoMethod) break;
    line.put(", then ");
    line.put(method_text(m));
  }
  snprintf(head, sizeof(head), "): %u of %u usable%s", pool.usable_count, pool.member_count,
           verdict);
  line.put(head);
  const char* sep = "; not usable: ";
  for (uint32_t i = 0; i < pool.member_count; ++i) {
    const snap::Member& m = c.s.members()[pool.member_first + i];
    if (m.usable) continue;
    line.put(sep);
    sep = ", ";
    put_blob(&line, c.s, m.name);
    line.put(" (");
    line.put(unusable_reason(m));
    line.put(")");
  }
  c.explain->add("%s", line.s);
}

// Rendezvous over the pool's usable members: the slot of the member with the highest score for
// this client prefix.
uint32_t persistence_slot(const Env& c, const snap::Pool& pool, uint64_t client_hash) {
  const uint32_t* slots = c.s.pool_slots() + pool.usable_first;
  const snap::Member* members = c.s.members();
  uint32_t best = 0;
  uint64_t best_score = rendezvous_score(members[slots[0]].persist_key, client_hash);
  if (!pool.persist_weighted) {
    for (uint32_t i = 1; i < pool.usable_count; ++i) {
      const uint64_t score = rendezvous_score(members[slots[i]].persist_key, client_hash);
      if (score > best_score) {
        best_score = score;
        best = i;
      }
    }
    return best;
  }
  uint32_t best_weight = members[slots[0]].weight;
  for (uint32_t i = 1; i < pool.usable_count; ++i) {
    const snap::Member& m = members[slots[i]];
    const uint64_t score = rendezvous_score(m.persist_key, client_hash);
    if (weighted_beats(score, m.weight, best_score, best_weight)) {
      best_score = score;
      best_weight = m.weight;
      best = i;
    }
  }
  return best;
}

// Classes share a pick when its members win for them, at whatever score: the score shown is this
// class's.
__attribute__((noinline, cold)) void explain_topology(const Env& c, const snap::TopoPick& pick,
                                                      uint32_t cls) {
  const snap::BlobRef dc = c.s.datacenters()[pick.datacenter].name;
  const uint16_t score =
      c.s.topo_scores()[static_cast<size_t>(cls) * c.s.datacenter_count() + pick.datacenter];
  c.explain->add("  topology: datacenter %.*s, score %u, %u usable member(s)%s",
                 static_cast<int>(dc.len), reinterpret_cast<const char*>(c.s.blob(dc)), score,
                 pick.slot_count, pick.slot_count > 1 ? " (rotating)" : "");
}

__attribute__((noinline, cold)) void explain_persistence(const Env& c, const snap::Pool& pool,
                                                         const Steer& st, uint8_t bits,
                                                         const GslbPick& p) {
  LineBuf line;
  line.put("  persistence: client prefix ");
  if (st.family != 0) {
    uint8_t block[16];
    memcpy(block, st.addr, 16);
    mask_address(block, st.family, bits);
    put_address(&line, st.family, block, bits);
  } else {
    line.put("(none)");
  }
  line.put(" -> ");
  put_blob(&line, c.s, c.s.members()[p.slots[p.start]].name);
  line.put(pool.persist_weighted ? " (weighted rendezvous)" : " (rendezvous)");
  c.explain->add("%s", line.s);
}

// One method of a pool's chain. Returns false when the method cannot pick: the pool has no usable
// member, or (topology) none of them is in a datacenter the client's class scores.
GTM_ALWAYS_INLINE bool try_method(const Env& c, const snap::Pool& pool, uint8_t method,
                                  uint32_t turn, Steer* st, GslbPick* p) {
  const uint32_t n = pool.usable_count;
  const uint32_t* slots = c.s.pool_slots();
  p->slots = slots + pool.usable_first;
  p->n = n;
  p->count = 1;
  switch (static_cast<snap::PoolMethod>(method)) {
    case snap::PoolMethod::kRoundRobin:
      if (n == 0) return false;
      p->start = turn % n;
      return true;
    case snap::PoolMethod::kRatio:
      if (n == 0) return false;
      // The wheel lists each usable member weight times, interleaved smoothly.
      if (GTM_LIKELY(pool.wheel_count > 0)) {
        p->slots = slots + pool.wheel_first;
        p->n = pool.wheel_count;
      }
      p->start = turn % p->n;
      return true;
    case snap::PoolMethod::kGlobalAvailability:
      p->start = 0;
      return n > 0;
    case snap::PoolMethod::kRandom:
      if (n == 0) return false;
      p->start = random_below(c.ws, n);
      return true;
    case snap::PoolMethod::kReturnAll:
      p->start = 0;
      p->count = n;
      return n > 0;
    case snap::PoolMethod::kReturnN:
      if (n == 0) return false;
      p->start = turn % n;
      p->count = pool.return_n < n ? pool.return_n : n;
      return true;
    case snap::PoolMethod::kTopology: {
      // Whether a scored datacenter has a usable member is itself a fact about the client.
      if (pool.topo_varies) depends_on(st, st->class_prefix);
      const uint16_t v = c.s.topo_maps()[pool.topo_map + st->cls];
      if (v == snap::kNoPick) {
        if (GTM_UNLIKELY(c.explain != nullptr)) {
          c.explain->add(
              "  topology cannot pick: no usable member in a datacenter scored for "
              "class %u",
              st->cls);
        }
        return false;
      }
      const snap::TopoPick& pick = c.s.topo_picks()[pool.topo_pick_first + v];
      p->slots = slots + pick.slot_first;
      p->n = pick.slot_count;
      p->start = turn % pick.slot_count;
      if (GTM_UNLIKELY(c.explain != nullptr)) explain_topology(c, pick, st->cls);
      return true;
    }
    case snap::PoolMethod::kPersistence: {
      if (n == 0) return false;
      const uint8_t mask = st->family == 6 ? pool.persist_v6 : pool.persist_v4;
      const uint8_t bits = mask < st->bits ? mask : st->bits;
      depends_on(st, bits);
      p->start = persistence_slot(c, pool, client_prefix_hash(st->family, st->addr, bits));
      if (GTM_UNLIKELY(c.explain != nullptr)) explain_persistence(c, pool, *st, bits, *p);
      return true;
    }
  }
  return false;  // unreachable: validate() accepts known methods only
}

// The pools of one set in order; the first pool whose method chain picks answers.
GTM_ALWAYS_INLINE bool pick_in_set(const Env& c, const snap::PoolSet& set, uint32_t turn, Steer* st,
                                   GslbPick* p) {
  const uint32_t* pools = c.s.set_pools() + set.pool_first;
  for (uint32_t i = 0; i < set.pool_count; ++i) {
    const snap::Pool& pool = c.s.pools()[pools[i]];
    if (pool.usable_count == 0) {
      if (GTM_UNLIKELY(c.explain != nullptr)) explain_pool(c, pool, ", skipped");
      continue;
    }
    if (GTM_UNLIKELY(c.explain != nullptr)) explain_pool(c, pool, "");
    const uint8_t chain[3] = {pool.method, pool.alternate, pool.fallback};
    for (int k = 0; k < 3 && chain[k] != snap::kNoMethod; ++k) {
      if (try_method(c, pool, chain[k], turn, st, p)) {
        if (GTM_UNLIKELY(c.explain != nullptr)) {
          c.explain->add("  answers by %s", method_text(chain[k]));
        }
        return true;
      }
    }
    if (GTM_UNLIKELY(c.explain != nullptr)) c.explain->add("  skipped: no method could pick");
  }
  return false;
}

__attribute__((noinline, cold)) void explain_chosen(const Env& c, const GslbPick& p,
                                                    uint32_t count) {
  LineBuf chosen;
  chosen.put("chosen:");
  uint32_t idx = p.start;
  for (uint32_t k = 0; k < count; ++k) {
    chosen.put(k == 0 ? " " : ", ");
    put_blob(&chosen, c.s, c.s.members()[p.slots[idx]].name);
    if (++idx == p.n) idx = 0;
  }
  c.explain->add("%s", chosen.s);
}

// Adds the chosen members; returns the first one's Rdata index.
inline __attribute__((always_inline)) uint32_t add_members(Ctx& c, const Owner& o,
                                                           const snap::Service& svc,
                                                           const GslbPick& p) {
  const uint32_t count = svc.rtype == dns::kTypeCNAME ? 1 : p.count;  // at most one CNAME
  const snap::Member* members = c.s.members();
  uint32_t idx = p.start;
  const uint32_t first_rdata = members[p.slots[idx]].rdata;
  for (uint32_t k = 0; k < count; ++k) {
    add_rdata(c, Section::kAnswer, o, svc.rtype, svc.ttl,
              c.s.rdatas()[members[p.slots[idx]].rdata]);
    if (++idx == p.n) idx = 0;
  }
  if (GTM_UNLIKELY(c.explain != nullptr)) explain_chosen(c, p, count);
  return first_rdata;
}

// Fail open: every configured member of the rule's primary set, whatever its health.
uint32_t add_all_members(Ctx& c, const Owner& o, const snap::Service& svc,
                         const snap::PoolSet& set) {
  uint32_t first_rdata = kNone;
  for (uint32_t i = 0; i < set.pool_count; ++i) {
    const snap::Pool& pool = c.s.pools()[c.s.set_pools()[set.pool_first + i]];
    for (uint32_t k = 0; k < pool.member_count; ++k) {
      const snap::Member& m = c.s.members()[pool.member_first + k];
      add_rdata(c, Section::kAnswer, o, svc.rtype, svc.ttl, c.s.rdatas()[m.rdata]);
      if (first_rdata == kNone) first_rdata = m.rdata;
      if (svc.rtype == dns::kTypeCNAME) return first_rdata;
    }
  }
  return first_rdata;
}

// The rare outcomes of answer_gslb, out of its way: the active set had nothing, so the other set,
// then the fallback address, then the empty action. Kept apart so the common path stays small.
__attribute__((noinline)) uint32_t answer_gslb_slow(Ctx& c, const Owner& o,
                                                    const snap::Service& svc, uint32_t zone,
                                                    const snap::Rule& rule, uint32_t turn,
                                                    Steer* st) {
  const uint32_t other = rule.active ? rule.primary : rule.secondary;
  if (other != kNone) {
    if (GTM_UNLIKELY(c.explain != nullptr)) {
      c.explain->add("active set has nothing usable: trying the %s set",
                     rule.active ? "primary" : "secondary");
    }
    GslbPick p;
    const bool picked = pick_in_set(c, c.s.pool_sets()[other], turn, st, &p);
    if (st->scope > c.ecs_scope) c.ecs_scope = st->scope;
    if (picked) {
      ++c.ws.counters.gslb_other_set;
      return add_members(c, o, svc, p);
    }
  }
  if (st->scope > c.ecs_scope) c.ecs_scope = st->scope;
  if (svc.fallback_rdata != kNone) {
    ++c.ws.counters.gslb_fallback;
    if (GTM_UNLIKELY(c.explain != nullptr)) c.explain->add("no usable pool: fallback answer");
    add_rdata(c, Section::kAnswer, o, svc.rtype, svc.ttl, c.s.rdatas()[svc.fallback_rdata]);
    return svc.fallback_rdata;
  }
  ++c.ws.counters.gslb_empty;
  switch (static_cast<snap::EmptyAction>(svc.empty_action)) {
    case snap::EmptyAction::kServfail:
      if (GTM_UNLIKELY(c.explain != nullptr)) {
        c.explain->add("no usable pool, no fallback: SERVFAIL");
      }
      // A server failure carries no records, not even a CNAME already added.
      c.w.reset_to_question();
      c.overflow = false;
      c.rcode = dns::kRcodeServFail;
      return kNone;
    case snap::EmptyAction::kReturnAll: {
      ++c.ws.counters.gslb_fail_open;
      if (GTM_UNLIKELY(c.explain != nullptr)) {
        c.explain->add("no usable pool, no fallback: fail open, every member of the primary set");
      }
      const uint32_t rd = add_all_members(c, o, svc, c.s.pool_sets()[rule.primary]);
      if (rd != kNone) return rd;
      add_negative_soa(c, zone);  // a set without members: nothing to open
      return kNone;
    }
    case snap::EmptyAction::kDrop:
      ++c.ws.counters.gslb_dropped;
      if (GTM_UNLIKELY(c.explain != nullptr)) {
        c.explain->add("no usable pool, no fallback: drop (no response)");
      }
      c.drop = true;
      return kNone;
    case snap::EmptyAction::kNodata:
      break;
  }
  if (GTM_UNLIKELY(c.explain != nullptr)) c.explain->add("no usable pool, no fallback: NODATA");
  add_negative_soa(c, zone);
  return kNone;
}

// Who the client is, for a service that depends on it: identity, then class.
GTM_ALWAYS_INLINE void steer_client(const Env& c, const snap::Service& svc, Steer* st) {
  identify_client(c, svc, st);
  if (svc.flags & snap::kSvcNeedsClass) classify_client(c, st);
}

// The decisions every GSLB answer starts with: who the client is (at most one LPM lookup), the
// rule for the client's class (an array index), and a pick from the rule's active pool set with
// rotation `turn`. Returns false when that set has nothing to pick (*rule is set either way).
// Changes no state but the random method's generator, so that the fast path can still leave the
// query to the general path after calling it (restoring the generator).
//
// pick_by_rules is that with the client already identified (*st), for the fast path, which
// identifies it first to read the pick table.
GTM_ALWAYS_INLINE bool pick_by_rules(const Env& c, const snap::Service& svc, uint32_t turn,
                                     Steer* st, const snap::Rule** rule_out, GslbPick* p) {
  uint32_t r = svc.fixed_rule;
  if (svc.class_rules != kNone) {
    r = c.s.class_rules()[svc.class_rules + st->cls];
    if (svc.flags & snap::kSvcRulesVary) depends_on(st, st->class_prefix);
  }
  const snap::Rule& rule = c.s.rules()[svc.rule_first + r];
  *rule_out = &rule;
  if (GTM_UNLIKELY(c.explain != nullptr)) {
    const NameText n = name_text(c.s.blob(svc.name), svc.name.len);
    c.explain->add("service %s %s: %u pool(s), ttl %u", n.s, type_text(svc.rtype), svc.pool_count,
                   svc.ttl);
    if (svc.flags & (snap::kSvcNeedsClass | snap::kSvcNeedsAddress)) {
      explain_client(c, *st, (svc.flags & snap::kSvcNeedsClass) != 0);
    }
    // A plain service (one rule, one set) has nothing to say about rules.
    if (svc.rule_count > 1 || rule.secondary != kNone) explain_rule(c, svc, r);
  }
  return pick_in_set(c, c.s.pool_sets()[rule.active ? rule.secondary : rule.primary], turn, st, p);
}

GTM_ALWAYS_INLINE bool pick_active(const Env& c, const snap::Service& svc, uint32_t turn, Steer* st,
                                   const snap::Rule** rule_out, GslbPick* p) {
  if (svc.flags & (snap::kSvcNeedsClass | snap::kSvcNeedsAddress)) steer_client(c, svc, st);
  return pick_by_rules(c, svc, turn, st, rule_out, p);
}

// What the chain would pick, read from the pick table (format.h PickEntry) for the client's
// class: one array index instead of rule, active set, pools, method chain and topology map.
// False when the service has no table or its entry is not flat; the chain decides then.
GTM_ALWAYS_INLINE bool pick_from_table(const Env& c, const snap::Service& svc, uint32_t turn,
                                       Steer* st, GslbPick* p) {
  if (GTM_UNLIKELY(svc.pick_table == kNone)) return false;
  const snap::PickEntry& e = c.s.pick_table()[svc.pick_table + st->cls];
  if (GTM_UNLIKELY(e.slot_count == 0)) return false;
  p->slots = c.s.pool_slots() + e.slot_first;
  p->n = e.slot_count;
  const uint32_t modulus = (e.meta & snap::kPickRotates) ? e.slot_count : 1;
  p->start = turn % modulus;
  p->count = e.meta & snap::kPickCountMask;
  if (e.meta & snap::kPickScopeClass) depends_on(st, st->class_prefix);
  return true;
}

// Answers one GSLB service at `o`: the heart of the traffic manager. Returns the Rdata index of the
// first record answered (the target, for CNAME services), or kNone when none was.
//
// Everything that can be decided without the client was decided by the snapshot builder (usable
// lists, wheels, per-class rule and topology tables) and by control's switch policy (which set of
// each rule is active). Per query that leaves: at most one LPM lookup (client -> class), an array
// index for the rule, the active set's pools in order, and in each pool its method chain. `turn`
// (the worker's rotation counter, advanced once per selection) picks the round-robin position, the
// wheel slot for ratio (exact proportions over a cycle) and the first of return-n's members.
uint32_t answer_gslb(Ctx& c, const Owner& o, const snap::Service& svc, uint32_t zone) {
  ++c.ws.counters.gslb_answers;
  // 32 bits of the rotation counter: a 32-bit division is several times cheaper than a 64-bit
  // one, and the rotation only skips a step once every 2^32 selections.
  const uint32_t turn = static_cast<uint32_t>(c.ws.rr_counter++);
  Steer st;
  const snap::Rule* rule;
  GslbPick p;
  if (GTM_LIKELY(pick_active(c, svc, turn, &st, &rule, &p))) {
    if (st.scope > c.ecs_scope) c.ecs_scope = st.scope;
    return add_members(c, o, svc, p);
  }
  return answer_gslb_slow(c, o, svc, zone, *rule, turn, &st);
}

// ---------------------------------------------------------------------------------------------
// Answers at a node.

// Answers an RRset; returns the first Rdata index answered (kNone if none).
uint32_t answer_rrset(Ctx& c, const Owner& o, const snap::RRset& rr, uint32_t zone) {
  if (rr.kind == snap::kRRsetGslb) return answer_gslb(c, o, c.s.services()[rr.rdata_first], zone);
  const snap::Rdata* rd = c.s.rdatas() + rr.rdata_first;
  for (uint32_t i = 0; i < rr.rdata_count; ++i)
    add_rdata(c, Section::kAnswer, o, rr.type, rr.ttl, rd[i]);
  return rr.rdata_count > 0 ? rr.rdata_first : kNone;
}

// Glue for an apex NS answer: the static addresses of every name server inside our zones.
void add_ns_glue(Ctx& c, const snap::RRset& ns) {
  for (uint32_t i = 0; i < ns.rdata_count; ++i) {
    const snap::Rdata& rd = c.s.rdatas()[ns.rdata_first + i];
    uint8_t target[dns::kMaxNameLen];
    const size_t len = copy_name_lower(c.s.blob(rd.wire), rd.wire.len, target);
    if (len == 0) continue;
    const uint32_t node_idx = c.s.find_node(target, len);
    if (node_idx == kNone) continue;  // out of our zones: the resolver looks it up itself
    const snap::Node& n = c.s.nodes()[node_idx];
    const Owner owner{c.s.blob(n.name), static_cast<uint16_t>(n.name.len), false};
    const snap::RRset* rr = c.s.rrsets() + n.rrset_first;
    for (uint32_t k = 0; k < n.rrset_count; ++k) {
      if ((rr[k].type != dns::kTypeA && rr[k].type != dns::kTypeAAAA) ||
          rr[k].kind != snap::kRRsetStatic) {
        continue;
      }
      for (uint32_t r = 0; r < rr[k].rdata_count; ++r) {
        add_rdata(c, Section::kAdditional, owner, rr[k].type, rr[k].ttl,
                  c.s.rdatas()[rr[k].rdata_first + r]);
      }
    }
  }
}

// Answers the question type at a node that is not (or not to be followed as) a CNAME.
void answer_at_node(Ctx& c, const Owner& o, uint32_t node_idx) {
  const snap::Node& n = c.s.nodes()[node_idx];
  const uint16_t qtype = c.q.qtype;
  const snap::RRset* rr = nullptr;
  if (qtype == dns::kTypeANY) {
    // RFC 8482: one RRset is a complete answer to ANY; the first is as good as any.
    if (n.rrset_count > 0) rr = c.s.rrsets() + n.rrset_first;
  } else {
    rr = find_rrset(c.s, n, qtype);
  }
  if (rr == nullptr) {
    if (qtype == dns::kTypeSOA && (n.flags & snap::kNodeApex)) {
      const snap::Zone& z = c.s.zones()[n.zone];
      if (GTM_UNLIKELY(c.explain != nullptr)) c.explain->add("answer: zone SOA");
      add_rdata(c, Section::kAnswer, o, dns::kTypeSOA, z.soa_ttl, c.s.rdatas()[z.soa_rdata]);
      return;
    }
    if (GTM_UNLIKELY(c.explain != nullptr)) c.explain->add("no %s RRset: NODATA", type_text(qtype));
    add_negative_soa(c, n.zone);
    return;
  }
  if (GTM_UNLIKELY(c.explain != nullptr) && rr->kind == snap::kRRsetStatic) {
    c.explain->add("answer: static %s RRset, %u record(s), ttl %u", type_text(rr->type),
                   rr->rdata_count, rr->ttl);
  }
  answer_rrset(c, o, *rr, n.zone);
  if (qtype == dns::kTypeNS && (n.flags & snap::kNodeApex) && rr->kind == snap::kRRsetStatic) {
    add_ns_glue(c, *rr);
  }
}

// Resolves the question: lookup, CNAME chain (inside our zones), final answer or negative answer.
// The rcode and the negative SOA come from the last name of the chain (RFC 6604).
void resolve(Ctx& c) {
  const ParsedQuery& q = c.q;
  Lookup lk = lookup(c.s, q.qname_lower, q.qname_len, q.qname_hash);
  if (GTM_UNLIKELY(c.explain != nullptr)) explain_lookup(c, q.qname_lower, q.qname_len, lk);
  if (lk.match == Match::kOutOfZone) {
    c.rcode = dns::kRcodeRefused;  // not authoritative for it, and no recursion
    c.w.clear_flag(dns::kFlagAA);
    return;
  }
  Owner owner{q.qname_lower, q.qname_len, true};
  uint8_t target[dns::kMaxNameLen];
  uint32_t visited[kMaxCnameHops];
  int hops = 0;
  for (;;) {
    if (lk.match == Match::kOutOfZone) return;  // the chain left our zones: the resolver goes on
    if (lk.match == Match::kNxdomain) {
      c.rcode = dns::kRcodeNXDomain;
      add_negative_soa(c, lk.zone);
      return;
    }
    const snap::Node& n = c.s.nodes()[lk.node];
    const snap::RRset* cname = nullptr;
    if ((n.flags & snap::kNodeHasCname) && q.qtype != dns::kTypeCNAME) {
      cname = find_rrset(c.s, n, dns::kTypeCNAME);
    }
    if (cname == nullptr) {
      answer_at_node(c, owner, lk.node);
      return;
    }
    // Each node is followed at most once, so a loop ends as soon as it closes; a wildcard CNAME
    // always points at the same target, so revisiting its node is a loop too.
    bool seen = false;
    for (int i = 0; i < hops; ++i) seen |= visited[i] == lk.node;
    if (seen || hops == kMaxCnameHops) {
      if (GTM_UNLIKELY(c.explain != nullptr)) {
        if (seen) {
          c.explain->add("CNAME loop: chain stopped");
        } else {
          c.explain->add("CNAME chain longer than %d hops: stopped", kMaxCnameHops);
        }
      }
      return;
    }
    visited[hops++] = lk.node;
    if (GTM_UNLIKELY(c.explain != nullptr) && cname->kind == snap::kRRsetStatic) {
      c.explain->add("static CNAME, ttl %u", cname->ttl);
    }
    const uint32_t rd_idx = answer_rrset(c, owner, *cname, n.zone);
    if (rd_idx == kNone || c.overflow || c.drop) return;
    const snap::Rdata& rd = c.s.rdatas()[rd_idx];
    const size_t len = copy_name_lower(c.s.blob(rd.wire), rd.wire.len, target);
    if (len == 0) return;
    owner = Owner{target, static_cast<uint16_t>(len), false};
    lk = lookup(c.s, target, len, dns::name_hash(target, len));
    if (GTM_UNLIKELY(c.explain != nullptr)) {
      c.explain->add("CNAME hop %d -> %s", hops, name_text(target, len).s);
      explain_lookup(c, target, len, lk);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Response assembly.

size_t response_limit(const ParsedQuery& q, Transport transport, size_t out_cap) {
  size_t limit = dns::kMinUdpPayload;
  if (transport == Transport::kTcp) {
    limit = kTcpLimit;
  } else if (q.has_edns) {
    // The parser reads an advertised payload < 512 as 512 (ParsedQuery::udp_payload).
    limit = q.udp_payload < dns::kOurUdpPayload ? q.udp_payload : dns::kOurUdpPayload;
  }
  return limit < out_cap ? limit : out_cap;
}

void count_rcode(WorkerCounters& k, uint16_t rcode) {
  switch (rcode) {
    case dns::kRcodeNoError:
      ++k.rcode_noerror;
      break;
    case dns::kRcodeFormErr:
      ++k.rcode_formerr;
      break;
    case dns::kRcodeServFail:
      ++k.rcode_servfail;
      break;
    case dns::kRcodeNXDomain:
      ++k.rcode_nxdomain;
      break;
    case dns::kRcodeNotImp:
      ++k.rcode_notimp;
      break;
    case dns::kRcodeRefused:
      ++k.rcode_refused;
      break;
    case dns::kRcodeBadVers:
      ++k.rcode_badvers;
      break;
    default:
      break;
  }
}

void truncate(Ctx& c) {
  c.w.reset_to_question();
  c.w.set_flag(dns::kFlagTC);
  ++c.ws.counters.truncated;
}

// Sets the rcode, truncates if something did not fit, adds the OPT last. Returns the length.
size_t finish(Ctx& c, bool with_opt, bool echo_ecs) {
  bool truncated = false;
  if (GTM_UNLIKELY(c.overflow)) {
    truncate(c);
    truncated = true;
  }
  c.w.set_rcode(c.rcode & 0xF);
  if (c.q.has_edns && with_opt) {
    const bool do_bit = (c.q.edns_flags & dns::kEdnsFlagDO) != 0;
    const dns::EcsOption* ecs = (echo_ecs && c.q.ecs.present) ? &c.q.ecs : nullptr;
    if (GTM_UNLIKELY(!c.w.add_opt(dns::kOurUdpPayload, c.rcode, do_bit, ecs, c.ecs_scope))) {
      // The answer fit but left no room for the OPT: the client must still learn our EDNS
      // parameters, so drop the answer instead.
      if (!truncated) {
        truncate(c);
        truncated = true;
      }
      c.w.add_opt(dns::kOurUdpPayload, c.rcode, do_bit, ecs, c.ecs_scope);
    }
  }
  if (GTM_UNLIKELY(c.explain != nullptr)) {
    if (c.q.ecs.present && echo_ecs) {
      c.explain->add("ECS: source prefix /%u, scope /%u%s", c.q.ecs.source_prefix, c.ecs_scope,
                     c.ecs_scope == 0 ? " (the answer does not depend on the client subnet)" : "");
    }
    c.explain->add("rcode %s, %u answer(s), %u authority, %u additional%s", rcode_text(c.rcode),
                   c.w.count(Section::kAnswer), c.w.count(Section::kAuthority),
                   c.w.count(Section::kAdditional), truncated ? ", truncated (TC)" : "");
  }
  ++c.ws.counters.responses;
  count_rcode(c.ws.counters, c.rcode);
  return c.w.size();
}

// ---------------------------------------------------------------------------------------------
// The fast path.
//
// Nearly every query asks a name that exists for a type it has: a static RRset rendered at
// publish time (format.h AnswerRef), or an A/AAAA service whose rule's active set picks (its
// members' records are rendered too). answer_fast() answers exactly those, writing the response
// directly (header, question, the rendered records, OPT), with the same bytes, counters and
// worker state as the general path (resolve + finish). For anything else it returns 0 before it
// has changed any state, and the general path answers. tests/fuzz/fuzz_answer.cc compares the
// two paths (bytes, counters, rotation state) on every input of its corpus.

// Copies the picked members' records (each `kLen` octets: the 12 before RDATA, then an A or AAAA
// address).
template <size_t kLen>
size_t copy_members(uint8_t* out, const snap::SnapshotView& s, const GslbPick& p) {
  const uint8_t* records = s.answer_records();
  const snap::AnswerRef* refs = s.member_answers();
  uint32_t idx = p.start;
  if (p.count == 1) {  // every method but return-all and return-n: no loop
    std::memcpy(out, records + refs[p.slots[idx]].off, kLen);
    return kLen;
  }
  for (uint32_t k = 0; k < p.count; ++k) {
    std::memcpy(out + k * kLen, records + refs[p.slots[idx]].off, kLen);
    if (++idx == p.n) idx = 0;
  }
  return p.count * kLen;
}

// The question, unless it is already there (answering in place); `out` may be `query`. A
// question of 8 to 32 octets (nearly all) is copied as two overlapping loads then two stores,
// which is memmove-safe and ~20 instructions cheaper than the call (the socket backend writes to
// a separate buffer).
void copy_question(uint8_t* out, const uint8_t* query, size_t question_end) {
  if (out == query) return;
  uint8_t* to = out + dns::kHeaderSize;
  const uint8_t* from = query + dns::kHeaderSize;
  const size_t n = question_end - dns::kHeaderSize;
  auto two = [&](auto head, auto tail) {  // head and tail: same-size scratch, each n/2..n octets
    std::memcpy(&head, from, sizeof(head));
    std::memcpy(&tail, from + n - sizeof(tail), sizeof(tail));
    std::memcpy(to, &head, sizeof(head));
    std::memcpy(to + n - sizeof(tail), &tail, sizeof(tail));
  };
  struct Block16 {
    uint8_t b[16];
  };
  if (n >= 16 && n <= 32) {
    two(Block16{}, Block16{});
  } else if (n >= 8 && n < 16) {
    two(uint64_t{}, uint64_t{});
  } else {
    std::memmove(to, from, n);
  }
}

// Per query, static A (callgrind): ~25 instructions to find the node and its RRset, ~30 to copy
// and frame the answer; GSLB adds the client (ECS, ~25, and for a steered service the LPM
// lookup, ~60 for IPv4), the pick table entry (~25: index, rotation, scope) and ~10 per member.
// A service or class the table leaves to the chain pays the chain as before (pick_by_rules).
size_t answer_fast(const snap::SnapshotView& s, const ParsedQuery& q, const uint8_t* query,
                   uint8_t* out, size_t limit, const ClientAddr& client, WorkerState& ws) {
  // What the general path treats specially: other classes, meta types and ANY (RFC 8482), EDNS
  // versions > 0 (BADVERS), the root name (its owner is the root octet, not the 0xC00C pointer).
  if (q.qclass != dns::kClassIN || (q.qtype >= 128 && q.qtype <= dns::kTypeANY) ||
      q.qname_len <= 1 || (q.has_edns && q.edns_version != 0)) {
    return 0;
  }
  // Wildcards, NXDOMAIN, NODATA and CNAME chains are the general path's.
  const uint32_t node_idx = s.find_node(q.qname_lower, q.qname_len, q.qname_hash);
  if (node_idx == kNone) return 0;
  const snap::Node& node = s.nodes()[node_idx];
  if (node.flags & snap::kNodeHasCname) return 0;
  const snap::RRset* rr = find_rrset(s, node, q.qtype);
  if (rr == nullptr) return 0;

  const size_t qend = q.question_end;
  const dns::EcsOption* ecs = q.ecs.present ? &q.ecs : nullptr;
  // Once here for the size check and the write (recomputed there, it is read again after stores).
  const size_t ecs_len = ecs != nullptr ? dns::ecs_address_length(*ecs) : 0;
  const size_t opt_len = q.has_edns ? dns::opt_rr_size(ecs, ecs_len) : 0;
  size_t pos = qend;
  uint32_t count;
  uint8_t scope = 0;
  if (rr->kind == snap::kRRsetStatic) {
    const snap::AnswerRef& ref = s.rrset_answers()[rr - s.rrsets()];
    // Not rendered (a name inside), or too big: the general path truncates.
    if (ref.len == 0 || qend + ref.len + opt_len > limit) return 0;
    copy_question(out, query, qend);
    std::memcpy(out + pos, s.answer_records() + ref.off, ref.len);
    pos += ref.len;
    count = ref.count;
  } else {
    const snap::Service& svc = s.services()[rr->rdata_first];
    if (svc.rtype == dns::kTypeCNAME) return 0;  // the chain goes on: the general path follows it
    const Env e{s, q, client, ws, nullptr};
    const uint64_t rng = ws.rng;
    Steer st;
    const snap::Rule* rule;
    GslbPick p;
    const size_t rr_len = snap::kAnswerRecordFixed + (svc.rtype == dns::kTypeA ? 4 : 16);
    const uint32_t turn = static_cast<uint32_t>(ws.rr_counter);
    // The client first (the table is per class), then the table, else the chain.
    if (svc.flags & (snap::kSvcNeedsClass | snap::kSvcNeedsAddress)) steer_client(e, svc, &st);
    if ((!pick_from_table(e, svc, turn, &st, &p) && !pick_by_rules(e, svc, turn, &st, &rule, &p)) ||
        qend + p.count * rr_len + opt_len > limit) {
      ws.rng = rng;  // as if never drawn: the general path draws the same number again
      return 0;
    }
    // Committed: what answer_gslb() counts and advances.
    ++ws.rr_counter;
    ++ws.counters.gslb_answers;
    copy_question(out, query, qend);
    pos += svc.rtype == dns::kTypeA ? copy_members<16>(out + pos, s, p)
                                    : copy_members<28>(out + pos, s, p);
    count = p.count;
    scope = st.scope;
  }
  dns::store16(out, q.id);
  dns::store16(out + 2, dns::response_flags(q));
  dns::store16(out + 4, 1);
  dns::store16(out + 6, static_cast<uint16_t>(count));
  dns::store16(out + 8, 0);
  dns::store16(out + 10, q.has_edns ? 1 : 0);
  if (q.has_edns) {
    dns::write_opt_rr_sized(out + pos, dns::kOurUdpPayload, dns::kRcodeNoError,
                            (q.edns_flags & dns::kEdnsFlagDO) != 0, ecs, ecs_len, scope,
                            pos + dns::kOptRrMaxSize <= limit);
    pos += opt_len;
  }
  ++ws.counters.responses;
  ++ws.counters.rcode_noerror;
  return pos;
}

}  // namespace

namespace {

// Everything but a parsed query the fast path answered: FORMERR/NOTIMP, no snapshot, explain, and
// what answer_fast() leaves. Out of line so that its Ctx (writer, compression table) does not
// widen answer_query's frame: answer_query's prologue and epilogue were ~24 instructions per
// query, paid by every query the fast path answers.
__attribute__((noinline)) size_t answer_general(const snap::SnapshotView* snap,
                                                const ParsedQuery& q, dns::ParseStatus status,
                                                const uint8_t* query, uint8_t* out, size_t limit,
                                                const ClientAddr& client, Transport transport,
                                                WorkerState& ws, Explain* explain) {
  WorkerCounters& k = ws.counters;
  if (GTM_UNLIKELY(status != dns::ParseStatus::kOk)) {
    // FORMERR / NOTIMP need no snapshot. The question is echoed only when it parsed; the parser
    // keeps has_edns only when the OPT header itself was sound, and never passes half-parsed
    // options, so the OPT we add is safe.
    Ctx c(snap != nullptr ? *snap : kEmptyView, q, client, ws, explain);
    if (!c.w.begin(out, limit, query, q, q.question_end != 0)) {
      ++k.malformed_dropped;
      return 0;
    }
    c.w.clear_flag(dns::kFlagAA);
    const bool formerr = status == dns::ParseStatus::kFormErr;
    c.rcode = formerr ? dns::kRcodeFormErr : dns::kRcodeNotImp;
    if (GTM_UNLIKELY(explain != nullptr)) {
      if (formerr) {
        explain->add("malformed query: FORMERR");
      } else {
        explain->add("opcode %u: NOTIMP", q.opcode);
      }
    }
    return finish(c, true, false);
  }

  if (GTM_UNLIKELY(snap == nullptr)) {
    ++k.no_snapshot;
    if (GTM_UNLIKELY(explain != nullptr)) explain->add("dropped: no snapshot loaded");
    return 0;
  }
  Ctx c(*snap, q, client, ws, explain);
  if (GTM_UNLIKELY(!c.w.begin(out, limit, query, q, true))) {
    ++k.malformed_dropped;
    return 0;
  }
  if (GTM_UNLIKELY(explain != nullptr)) {
    explain->add("query %s %s (type %u), %s, snapshot generation %llu",
                 name_text(q.qname_lower, q.qname_len).s, type_text(q.qtype), q.qtype,
                 transport == Transport::kTcp ? "tcp" : "udp",
                 static_cast<unsigned long long>(snap->generation()));
  }

  if (GTM_UNLIKELY(q.has_edns && q.edns_version > 0)) {
    // RFC 6891 section 6.1.3: answer in the version we speak, with nothing else.
    c.w.clear_flag(dns::kFlagAA);
    c.rcode = dns::kRcodeBadVers;
    if (GTM_UNLIKELY(explain != nullptr)) explain->add("EDNS version %u: BADVERS", q.edns_version);
    return finish(c, true, false);
  }
  if (GTM_UNLIKELY(q.qclass != dns::kClassIN)) {
    c.w.clear_flag(dns::kFlagAA);
    c.rcode = dns::kRcodeRefused;
    if (GTM_UNLIKELY(explain != nullptr)) explain->add("class %u: REFUSED", q.qclass);
    return finish(c, true, true);
  }
  if (GTM_UNLIKELY(q.qtype >= 128 && q.qtype <= 254)) {
    // Meta types: zone transfers are refused by policy, the others are not implemented.
    c.w.clear_flag(dns::kFlagAA);
    const bool xfr = q.qtype == dns::kTypeAXFR || q.qtype == dns::kTypeIXFR;
    c.rcode = xfr ? dns::kRcodeRefused : dns::kRcodeNotImp;
    if (GTM_UNLIKELY(explain != nullptr)) {
      explain->add(xfr ? "zone transfer (type %u): REFUSED" : "meta type %u: NOTIMP", q.qtype);
    }
    return finish(c, true, true);
  }
  resolve(c);
  if (GTM_UNLIKELY(c.drop)) return 0;  // counted in gslb_dropped, not as malformed
  return finish(c, true, true);
}

}  // namespace

size_t answer_query(const snap::SnapshotView* snap, const uint8_t* query, size_t query_len,
                    uint8_t* out, size_t out_cap, const ClientAddr& client, Transport transport,
                    WorkerState& ws, Explain* explain) {
  WorkerCounters& k = ws.counters;
  ParsedQuery q;
  const dns::ParseStatus status = dns::parse_query_inline(query, query_len, &q);
  if (GTM_UNLIKELY(status == dns::ParseStatus::kDrop)) {
    ++k.malformed_dropped;
    if (GTM_UNLIKELY(explain != nullptr)) explain->add("dropped: not a query");
    return 0;
  }
  ++k.queries;
  if (transport == Transport::kTcp) {
    ++k.tcp_queries;
  } else {
    ++k.udp_queries;
  }
  const size_t limit = response_limit(q, transport, out_cap);
  if (GTM_LIKELY(status == dns::ParseStatus::kOk && snap != nullptr)) {
    if (q.ecs.present) ++k.ecs_queries;
    if (GTM_LIKELY(explain == nullptr)) {
      const size_t n = answer_fast(*snap, q, query, out, limit, client, ws);
      if (GTM_LIKELY(n != 0)) return n;
    }
  }
  return answer_general(snap, q, status, query, out, limit, client, transport, ws, explain);
}

}  // namespace gtm::engine
