// The snapshot: the one contract between gtm-control (writer) and gtm-dataplane (reader).
//
// A snapshot is a flat, position-independent byte image: every reference is an offset or an index,
// never a pointer, so the same bytes can be written by control, passed in a sealed memfd, mmapped
// read-only by the dataplane and saved to disk as "last good". All integers are little-endian
// (the product targets x86-64 and arm64 LE); every section starts 8-byte aligned.
//
// Heavy work happens at compile time (control/compiler/snapshot_builder.cc): names are canonical
// (lowercase wire form), empty non-terminals exist as nodes, each pool's usable members and its
// weighted wheel are precomputed from the health state, so answering a query is a hash lookup and
// a few array indexes. A health change therefore means a new snapshot, which is cheap to build.
//
// The reader (snapshot.h) validates every offset, index and count once at load time; after that the
// engine indexes without checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "dataplane/dns/name.h"

namespace gtm::snap {

inline constexpr char kMagic[8] = {'G', 'T', 'M', 'S', 'N', 'A', 'P', '1'};
// Version 2: traffic steering (client classes, access-policy rules, pool sets, method chains,
// topology and persistence data). Version 3: answer records rendered at publish time
// (kSecAnswerRecords, kSecRRsetAnswers, kSecMemberAnswers). Version 4: the per-(service, class)
// pick table (kSecPickTable, Service::pick_table). Older images are refused with "unsupported
// format version".
inline constexpr uint32_t kFormatVersion = 4;
inline constexpr uint32_t kNone = 0xFFFFFFFFu;  // "no index" for any uint32_t index field

// Section identifiers. A section appears at most once. Every section is required (possibly with
// size 0); kLpm4 and kLpm6 are LPM images (dataplane/geo/lpm.h) whose values are class ids.
enum SectionId : uint32_t {
  kSecBlob = 1,        // raw bytes: canonical names (wire form) and pre-rendered RDATA
  kSecZones = 2,       // Zone[]
  kSecNodes = 3,       // Node[]
  kSecNameIndex = 4,   // uint32_t[] open-addressing hash table: node index + 1, 0 = empty
  kSecRRsets = 5,      // RRset[]
  kSecRdatas = 6,      // Rdata[]
  kSecServices = 7,    // Service[]
  kSecPools = 8,       // Pool[]
  kSecMembers = 9,     // Member[]
  kSecPoolSlots = 10,  // uint32_t[]: member indexes (usable lists, weighted wheels, topology picks)
  kSecLpm4 = 11,       // bytes: IPv4 address -> client class (Lpm4View)
  kSecLpm6 = 12,       // bytes: IPv6 address -> client class (Lpm6View)
  kSecClientSets = 13,   // ClientSet[]: regions and ISP lines, by set id (names for explain)
  kSecClasses = 14,      // ClientClass[]: at least one (class 0: in no set)
  kSecClassSets = 15,    // uint32_t[]: set ids of the classes, ascending per class
  kSecDatacenters = 16,  // Datacenter[]
  kSecTopoScores = 17,   // uint16_t[class_count * datacenter_count]: 0 = no topology record
  kSecPoolSets = 18,     // PoolSet[]
  kSecSetPools = 19,     // uint32_t[]: pool indexes of the pool sets, in order
  kSecRules = 20,        // Rule[]
  kSecClassRules = 21,   // uint16_t[]: per service with rules, class_count entries: rule offset
  kSecTopoMaps = 22,   // uint16_t[]: per topology pool, class_count entries: pick offset or kNoPick
  kSecTopoPicks = 23,  // TopoPick[]
  kSecRuleSets = 24,   // uint32_t[]: set ids each rule names (explain)
  kSecAnswerRecords = 25,  // bytes: answer records ready to copy (AnswerRef)
  kSecRRsetAnswers = 26,   // AnswerRef[rrset_count]: a static RRset's records, or none
  kSecMemberAnswers = 27,  // AnswerRef[member_count]: a member's record (A, AAAA), or none
  kSecPickTable = 28,      // PickEntry[]: per A/AAAA service, its pick for each client class
};
inline constexpr uint32_t kMaxSections = 32;
struct SectionEntry {
  uint32_t id;         // SectionId
  uint32_t elem_size;  // sizeof the element type, checked by the reader (1 for kSecBlob)
  uint64_t offset;     // from the start of the image, 8-byte aligned, >= header size
  uint64_t size;       // bytes; a multiple of elem_size
};

struct Header {
  char magic[8];            // kMagic
  uint32_t format_version;  // kFormatVersion
  uint32_t header_size;     // sizeof(Header)
  uint64_t total_size;      // bytes of the whole image
  uint64_t generation;      // monotonically increasing, assigned by control
  uint64_t checksum;        // fnv1a64 over bytes [header_size, total_size)
  uint64_t created_unix_ms;
  uint32_t section_count;
  uint32_t reserved0;
  SectionEntry sections[kMaxSections];
};

// An overlay: the sections a health change recomputed, published together with the image they
// complete (the "base", a sealed memfd the dataplane usually has mapped already). The snapshot it
// makes is the base with each of its sections replaced by the overlay's section of the same id,
// laid out as one flat image in the base's section order (layout_sections): byte for byte what a
// full build of the same model makes, and what snapshot.bin holds. Sending a few hundred
// kilobytes of health sections instead of megabytes of names, zones and LPM tables keeps a health
// publish within milliseconds at scale (dataplane/io/control_protocol.h, PUBLISH with two fds).
inline constexpr char kOverlayMagic[8] = {'G', 'T', 'M', 'O', 'V', 'L', 'Y', '1'};
struct OverlayHeader {
  char magic[8];             // kOverlayMagic
  uint32_t format_version;   // kFormatVersion (of the image it completes)
  uint32_t header_size;      // sizeof(OverlayHeader)
  uint64_t total_size;       // bytes of the whole overlay
  uint64_t generation;       // of the snapshot it makes
  uint64_t base_generation;  // the generation in the header of the base image it completes
  uint64_t created_unix_ms;
  uint32_t section_count;  // sections carried (each id at most once, every one in the base)
  uint32_t reserved0;
  SectionEntry sections[kMaxSections];  // offsets from the start of the overlay
};

// One section's bytes, wherever they live.
struct SectionBytes {
  uint32_t id = 0;
  uint32_t elem_size = 0;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

// Lays `sections` (in this order) out after the header `*h` (a Header or an OverlayHeader): fills
// its section table, section count and total size, and appends to *parts the byte ranges that
// follow the header (each section, 8-byte aligned with zero padding). The caller sets the other
// header fields. Shared by control's builds and the dataplane's composition of base + overlay,
// which must agree byte for byte.
template <typename H>
void layout_sections(const SectionBytes* sections, uint32_t count, H* h,
                     std::vector<std::pair<const uint8_t*, size_t>>* parts) {
  static constexpr uint8_t kZeros[8] = {};
  std::memset(h->sections, 0, sizeof(h->sections));
  h->section_count = count;
  uint64_t offset = sizeof(H);
  auto pad = [&] {
    if (offset % 8 == 0) return;
    parts->emplace_back(kZeros, 8 - offset % 8);
    offset += 8 - offset % 8;
  };
  for (uint32_t i = 0; i < count; ++i) {
    pad();
    SectionEntry& e = h->sections[i];
    e.id = sections[i].id;
    e.elem_size = sections[i].elem_size;
    e.offset = offset;
    e.size = sections[i].size;
    if (e.size != 0) parts->emplace_back(sections[i].data, e.size);
    offset += e.size;
  }
  pad();
  h->total_size = offset;
}

// Image checksum over consecutive pieces, as image_checksum over their concatenation.
class ChecksumStream {
 public:
  void add(const uint8_t* data, size_t len);
  uint64_t finish();

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
  uint8_t pending_[8] = {};
  size_t pending_len_ = 0;
};

// A slice of the blob section.
struct BlobRef {
  uint32_t off;
  uint32_t len;
};

struct Zone {
  BlobRef apex;           // canonical wire name of the apex
  uint32_t apex_node;     // node index of the apex
  uint32_t soa_rdata;     // Rdata index of the SOA RDATA
  uint32_t soa_ttl;       // TTL of the SOA RRset
  uint32_t negative_ttl;  // min(SOA TTL, SOA MINIMUM): TTL of the SOA in negative answers
  uint32_t ns_rrset;      // RRset index of the apex NS RRset, or kNone
  uint32_t reserved;
};

enum NodeFlags : uint16_t {
  kNodeApex = 1u << 0,      // this node is a zone apex
  kNodeWildcard = 1u << 1,  // leftmost label is '*'
  kNodeHasCname = 1u << 2,  // an RRset of type CNAME (static or GSLB) lives here
};

// One owner name. Empty non-terminals are nodes with rrset_count == 0.
struct Node {
  BlobRef name;          // canonical (lowercase) wire form
  uint32_t zone;         // Zone index (the deepest zone containing the name)
  uint32_t rrset_first;  // RRset index; the node's RRsets are contiguous, sorted by type
  uint16_t rrset_count;
  uint16_t flags;  // NodeFlags
  uint32_t reserved;
};

enum RRsetKind : uint16_t {
  kRRsetStatic = 0,  // rdata_first/count index Rdata[]
  kRRsetGslb = 1,    // rdata_first is a Service index, rdata_count is 0
};

struct RRset {
  uint16_t type;  // RR type (A = 1, ...)
  uint16_t kind;  // RRsetKind
  uint32_t ttl;
  uint32_t rdata_first;  // see RRsetKind
  uint32_t rdata_count;
};

inline constexpr uint16_t kNoNameInRdata = 0xFFFF;

// Pre-rendered RDATA, uncompressed. Up to two domain names inside it may be compressed when written
// (RFC 3597 section 4: only NS, CNAME, PTR, MX and SOA); their positions are given here.
struct Rdata {
  BlobRef wire;
  uint16_t name1_off;  // offset within wire of a compressible name, or kNoNameInRdata
  uint16_t name2_off;  // second compressible name (SOA RNAME), or kNoNameInRdata
};

enum class PoolMethod : uint8_t {
  kRoundRobin = 0,          // one member, rotating over the usable list
  kRatio = 1,               // one member, by weight (smooth weighted wheel, exact over a cycle)
  kGlobalAvailability = 2,  // first usable member in configured order
  kRandom = 3,              // one usable member, uniformly
  kReturnAll = 4,           // every usable member
  kReturnN = 5,             // up to return_n usable members, rotating start
  kTopology = 6,            // one usable member of the best-scored datacenter for the client class
  kPersistence = 7,         // one usable member by rendezvous hashing of the client prefix
};
inline constexpr uint8_t kMaxPoolMethod = static_cast<uint8_t>(PoolMethod::kPersistence);
inline constexpr uint8_t kNoMethod = 0xFF;  // unused slot of a pool's method chain

// What a service answers when no pool of its sets can pick and there is no fallback address.
enum class EmptyAction : uint8_t {
  kNodata = 0,     // NOERROR, empty answer, SOA in authority
  kServfail = 1,   // SERVFAIL
  kReturnAll = 2,  // fail open: every configured member of the rule's primary set, health aside
  kDrop = 3,       // no response at all (counted in gslb_dropped)
};

enum class MemberMode : uint8_t { kAuto = 0, kAlwaysUp = 1, kAlwaysDown = 2 };
enum class MemberHealth : uint8_t { kUnknown = 0, kUp = 1, kDown = 2 };

enum ServiceFlags : uint8_t {
  kSvcUseEcs = 1u << 0,        // the client is the ECS subnet when the query has one
  kSvcNeedsClass = 1u << 1,    // rules or a topology method: one LPM lookup per query
  kSvcNeedsAddress = 1u << 2,  // a persistence method: the client prefix is hashed
  kSvcRulesVary = 1u << 3,     // classes lead to rules with different outcomes (pool sets or
                               // active set): the rule narrows the ECS scope
};

// A GSLB service for one (name, record type): A services hold only IPv4 members, AAAA only IPv6,
// CNAME services hold target names.
//
// Steering (docs/config.md): the client's class selects a rule (class_rules, or the only rule),
// the rule names a primary and a secondary pool set and which of them is active (decided by
// control's switch policy from health); the active set's pools are tried in order, then the other
// set's, then the fallback address, then the empty action.
struct Service {
  BlobRef name;          // canonical wire name (same as its node's)
  uint32_t node;         // node index
  uint16_t rtype;        // A, AAAA or CNAME
  uint8_t empty_action;  // EmptyAction
  uint8_t flags;         // ServiceFlags
  uint32_t ttl;
  uint32_t pool_first;  // Pool index: every pool of the service (pool sets index into these)
  uint32_t pool_count;
  uint32_t fallback_rdata;  // Rdata index answered when no pool has a usable member, or kNone
  uint32_t rule_first;      // Rule index; rule_count >= 1, the last one is the default rule
  uint32_t rule_count;
  uint32_t class_rules;  // ClassRules index of class_count entries (rule offsets), or kNone
                         // when the rule does not depend on the client: then fixed_rule
  uint8_t ecs_max_v4;    // longest ECS source prefix used to identify a client (1..32)
  uint8_t ecs_max_v6;    // (1..128)
  uint16_t fixed_rule;   // rule offset used when class_rules is kNone
  // PickTable index of the service's entries (class_count of them when it needs the class, else
  // one), or kNone: the service is answered by the chain (not A/AAAA, or beyond the table's cap).
  uint32_t pick_table;
};

struct Pool {
  BlobRef name;              // configured pool name (text, for explain)
  uint8_t method;            // PoolMethod: the preferred method
  uint8_t alternate;         // PoolMethod tried when the preferred cannot pick, or kNoMethod
  uint8_t fallback;          // then this one, or kNoMethod (set only after alternate)
  uint8_t return_n;          // for kReturnN
  uint8_t persist_v4;        // kPersistence: client prefix length hashed (IPv4, 1..32)
  uint8_t persist_v6;        // (IPv6, 1..128)
  uint8_t persist_weighted;  // 1: weights differ, weighted rendezvous
  uint8_t topo_varies;       // 1: the topology map differs between classes (the pick depends on
                             // the client, so it narrows the ECS scope)
  uint32_t member_first;     // Member index; all configured members, in configured order
  uint32_t member_count;
  uint32_t usable_first;  // PoolSlots index: usable members in configured order
  uint32_t usable_count;
  uint32_t wheel_first;  // PoolSlots index: weighted wheel over usable members (kRatio)
  uint32_t wheel_count;
  uint32_t topo_map;         // TopoMaps index of class_count entries (kTopology), or kNone
  uint32_t topo_pick_first;  // TopoPick index; the map's values are offsets from here
  uint32_t topo_pick_count;
  uint32_t reserved1;
};

inline constexpr uint32_t kNoDatacenter = kNone;

struct Member {
  BlobRef name;    // configured member name or address text (for explain)
  uint32_t rdata;  // Rdata index: 4 or 16 address bytes, or a target name for CNAME pools
  uint32_t weight;
  uint8_t mode;         // MemberMode
  uint8_t health;       // MemberHealth
  uint8_t enabled;      // 0 = administratively disabled
  uint8_t usable;       // the verdict the builder computed from mode, health and enabled
  uint32_t datacenter;  // Datacenter index, or kNoDatacenter
  // Rendezvous key: a hash of the member's identity (name and RDATA), never of its position, so a
  // client keeps its member across snapshots while that member stays usable.
  uint64_t persist_key;
};

// A region or an ISP line (control/geo/geo_model.h): only its name reaches the dataplane.
struct ClientSet {
  BlobRef name;
  uint8_t is_isp_line;
  uint8_t reserved[7];
};

// A client class: one combination of set memberships. Class 0 is in no set.
struct ClientClass {
  uint32_t set_first;  // ClassSets index
  uint32_t set_count;
};

struct Datacenter {
  BlobRef name;
};

// An ordered list of a service's pools.
struct PoolSet {
  BlobRef name;         // configured name, or the pool name(s) for sets written inline
  uint32_t pool_first;  // SetPools index; values are Pool indexes within the service's range
  uint32_t pool_count;
};

enum class SwitchReason : uint8_t {
  kPrimaryGood = 0,      // primary active: it has enough usable members
  kPrimaryBelowMin = 1,  // secondary active: the primary has too few usable members
  kHoldDown = 2,         // secondary active: the primary is good again but not yet for hold_down
  kNoSecondary = 3,      // primary active although below its minimum: no secondary set
};

// One access-policy rule of a service: clients in any of its sets (none: the default rule) are
// answered from its pool sets.
struct Rule {
  uint32_t primary;       // PoolSet index
  uint32_t secondary;     // PoolSet index, or kNone
  uint32_t set_first;     // RuleSets index: the set ids the rule names (explain)
  uint32_t set_count;     // 0 for the default rule
  uint8_t active;         // 0: primary first, 1: secondary first (control's switch policy)
  uint8_t switch_reason;  // SwitchReason
  uint16_t reserved0;
  uint32_t primary_usable;  // usable / configured members of the primary set when decided (explain)
  uint32_t primary_total;
  uint32_t min_members;  // the switch policy's thresholds (explain)
  uint32_t min_percent;
  uint32_t hold_down_left_s;  // kHoldDown: seconds until the primary is active again
};

inline constexpr uint16_t kNoPick =
    0xFFFF;  // topology map: no scored datacenter has a usable member

// The usable members of one pool in its best-scored datacenter(s) for some classes.
struct TopoPick {
  uint32_t slot_first;  // PoolSlots index
  uint32_t slot_count;  // >= 1
  uint32_t
      datacenter;  // one datacenter of the pick (explain); several tie when slot members differ
  uint16_t score;  // >= 1
  uint16_t reserved0;
};

// The pick table: what the chain (class -> rule -> active set -> pools -> method chain ->
// topology pick) decides for one service and one client class, flattened at publish time so
// that the engine's fast path does one array index instead (dataplane/engine/answer.cc). It is
// a health section: it follows usable lists, wheels, topology picks and each rule's active set,
// and is recomputed with them (control/compiler/snapshot_builder.cc). The validator derives
// every entry again from those sections (pick_table.h) and refuses an image whose entries differ.
//
// A flat entry answers `meta & kPickCountMask` members of PoolSlots[slot_first, slot_first +
// slot_count), starting at turn % slot_count for the rotating methods (kPickRotates) and at 0
// for global-availability and return-all, wrapping at slot_count. slot_count 0: the entry is not
// flat (the chain reaches random or persistence, or the active set picks nothing) and the
// general chain answers. 8 octets: the table is carried by every health publish that changes it.
enum PickMeta : uint16_t {
  kPickCountMask = 0x3FFF,     // members answered (1..16383)
  kPickRotates = 1u << 14,     // the start rotates with the worker's turn
  kPickScopeClass = 1u << 15,  // the outcome depends on the class: ECS scope = the class prefix
};
struct PickEntry {
  uint32_t slot_first;
  uint16_t slot_count;
  uint16_t meta;  // PickMeta
};

// Answer records rendered at publish time, byte for byte as the response writer would write them
// for the question name: owner = the pointer 0xC00C to the question, TYPE, CLASS IN, TTL,
// RDLENGTH, RDATA. The engine's fast path (dataplane/engine/answer.cc) copies them instead of
// writing each record field by field. Only records without a compressible name inside (A, AAAA,
// TXT, SRV, CAA, ...) are rendered: their bytes do not depend on the rest of the response.
// The validator re-renders every one and refuses an image whose bytes differ.
struct AnswerRef {
  uint32_t off;    // in kSecAnswerRecords
  uint16_t len;    // bytes; 0 = not rendered (then off and count are 0 too)
  uint16_t count;  // records
};

inline constexpr size_t kAnswerRecordFixed = 12;  // owner pointer, TYPE, CLASS, TTL, RDLENGTH

// The 12 octets before an answer record's RDATA.
inline void render_answer_header(uint8_t* out, uint16_t type, uint32_t ttl, uint16_t rdlength) {
  dns::store16(out, 0xC000 | dns::kHeaderSize);
  dns::store16(out + 2, type);
  dns::store16(out + 4, dns::kClassIN);
  dns::store32(out + 6, ttl);
  dns::store16(out + 10, rdlength);
}

// The name index hashes canonical wire names with dns::name_hash (dataplane/dns/name.h). The table
// has a power-of-two number of buckets; a lookup probes linearly from hash & (buckets - 1) until an
// empty bucket. Changing the hash changes the image layout: bump kFormatVersion.
using dns::name_hash;

// Image checksum: FNV-1a 64, 8 bytes at a time for speed (tail bytewise).
uint64_t image_checksum(const uint8_t* data, size_t len);

}  // namespace gtm::snap
