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

#include "dataplane/dns/name.h"

namespace gtm::snap {

inline constexpr char kMagic[8] = {'G', 'T', 'M', 'S', 'N', 'A', 'P', '1'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kNone = 0xFFFFFFFFu;  // "no index" for any uint32_t index field

// Section identifiers. A section appears at most once; all of them are required in version 1
// (possibly with size 0), except kLpm4/kLpm6 which are reserved for geo/topology tables.
enum SectionId : uint32_t {
  kSecBlob = 1,       // raw bytes: canonical names (wire form) and pre-rendered RDATA
  kSecZones = 2,      // Zone[]
  kSecNodes = 3,      // Node[]
  kSecNameIndex = 4,  // uint32_t[] open-addressing hash table: node index + 1, 0 = empty
  kSecRRsets = 5,     // RRset[]
  kSecRdatas = 6,     // Rdata[]
  kSecServices = 7,   // Service[]
  kSecPools = 8,      // Pool[]
  kSecMembers = 9,    // Member[]
  kSecPoolSlots = 10, // uint32_t[]: member indexes (usable lists and weighted wheels of pools)
  kSecLpm4 = 11,      // reserved (issue: traffic steering)
  kSecLpm6 = 12,      // reserved
};
inline constexpr uint32_t kMaxSections = 16;

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
  uint16_t flags;        // NodeFlags
  uint32_t reserved;
};

enum RRsetKind : uint16_t {
  kRRsetStatic = 0,  // rdata_first/count index Rdata[]
  kRRsetGslb = 1,    // rdata_first is a Service index, rdata_count is 0
};

struct RRset {
  uint16_t type;         // RR type (A = 1, ...)
  uint16_t kind;         // RRsetKind
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
  kRoundRobin = 0,           // one member, rotating over the usable list
  kRatio = 1,                // one member, by weight (smooth weighted wheel, exact over a cycle)
  kGlobalAvailability = 2,   // first usable member in configured order
  kRandom = 3,               // one usable member, uniformly
  kReturnAll = 4,            // every usable member
  kReturnN = 5,              // up to return_n usable members, rotating start
};

enum class EmptyAction : uint8_t {
  kNodata = 0,    // NOERROR, empty answer, SOA in authority
  kServfail = 1,  // SERVFAIL
};

enum class MemberMode : uint8_t { kAuto = 0, kAlwaysUp = 1, kAlwaysDown = 2 };
enum class MemberHealth : uint8_t { kUnknown = 0, kUp = 1, kDown = 2 };

// A GSLB service for one (name, record type): A services hold only IPv4 members, AAAA only IPv6,
// CNAME services hold target names.
struct Service {
  BlobRef name;            // canonical wire name (same as its node's)
  uint32_t node;           // node index
  uint16_t rtype;          // A, AAAA or CNAME
  uint8_t empty_action;    // EmptyAction
  uint8_t reserved0;
  uint32_t ttl;
  uint32_t pool_first;     // Pool index; pools are tried in order
  uint32_t pool_count;
  uint32_t fallback_rdata; // Rdata index answered when no pool has a usable member, or kNone
  uint32_t reserved1;
};

struct Pool {
  BlobRef name;            // configured pool name (text, for explain)
  uint8_t method;          // PoolMethod
  uint8_t return_n;        // for kReturnN
  uint16_t reserved0;
  uint32_t member_first;   // Member index; all configured members, in configured order
  uint32_t member_count;
  uint32_t usable_first;   // PoolSlots index: usable members in configured order
  uint32_t usable_count;
  uint32_t wheel_first;    // PoolSlots index: weighted wheel over usable members (kRatio)
  uint32_t wheel_count;
};

struct Member {
  BlobRef name;        // configured member name or address text (for explain)
  uint32_t rdata;      // Rdata index: 4 or 16 address bytes, or a target name for CNAME pools
  uint32_t weight;
  uint8_t mode;        // MemberMode
  uint8_t health;      // MemberHealth
  uint8_t enabled;     // 0 = administratively disabled
  uint8_t usable;      // the verdict the builder computed from mode, health and enabled
};

// The name index hashes canonical wire names with dns::name_hash (dataplane/dns/name.h). The table
// has a power-of-two number of buckets; a lookup probes linearly from hash & (buckets - 1) until an
// empty bucket. Changing the hash changes the image layout: bump kFormatVersion.
using dns::name_hash;

// Image checksum: FNV-1a 64, 8 bytes at a time for speed (tail bytewise).
uint64_t image_checksum(const uint8_t* data, size_t len);

}  // namespace gtm::snap
