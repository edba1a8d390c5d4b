// GeoConfig -> CompiledGeo.
//
// 1. Every MaxMind database is walked once, node by node (MMDB_read_node), in parallel across
//    databases. Each data record is resolved once (cached by its data offset) into the list of
//    sets whose matchers it satisfies; each network whose record matches something becomes a
//    prefix item. The IPv4 subtree of an IPv6 database (at ::/96) yields items for both tables.
// 2. CIDR lists, CIDR files and CIDR topology records become prefix items too.
// 3. Per family, the items are sorted and flattened (lpm_builder.h): a nested prefix adds its sets
//    to those of the enclosing prefixes, and its topology scores replace theirs (it is longer, so
//    it wins), equal prefixes take the higher score. Each distinct result is a client class.
// 4. Classes are renumbered by first use and laid out as CSR lists and a score matrix.
#include "control/geo/geo_compiler.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <maxminddb.h>
#include <sys/stat.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>
#include <tbb/parallel_sort.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "control/geo/lpm_builder.h"

namespace gtm::control::geo {

namespace {

// Beyond this the class tables (classes x datacenters scores) stop being small enough to copy
// into every snapshot; real configurations have thousands.
constexpr uint32_t kMaxClasses = 1u << 20;

std::string errno_text(const std::string& path, int err) {
  return path + ": " + std::strerror(err);
}

// Stats `path` for change detection; regular files only.
bool stat_source(const std::string& path, SourceFile* out, std::string* error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    *error = errno_text(path, errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = path + ": not a regular file";
    return false;
  }
  out->path = path;
  out->device = st.st_dev;
  out->inode = st.st_ino;
  out->size = static_cast<uint64_t>(st.st_size);
  out->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Memberships. A client class and a prefix's contribution have the same shape: sorted set ids and
// (datacenter, score) pairs sorted by datacenter. Both are interned as flat uint32 vectors:
// [set_count, sets..., dc, score, dc, score, ...].

using Key = std::vector<uint32_t>;

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t v : k) h = (h ^ v) * 0x100000001b3ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

class Interner {
 public:
  uint32_t intern(Key&& key) {
    auto [it, inserted] = ids_.try_emplace(std::move(key), static_cast<uint32_t>(keys_.size()));
    if (inserted) keys_.push_back(&it->first);
    return it->second;
  }
  const Key& key(uint32_t id) const { return *keys_[id]; }
  uint32_t size() const { return static_cast<uint32_t>(keys_.size()); }

 private:
  std::unordered_map<Key, uint32_t, KeyHash> ids_;
  std::vector<const Key*> keys_;  // node-based map: element addresses are stable
};

struct KeyView {
  const uint32_t* sets;
  uint32_t set_count;
  const uint32_t* pairs;  // dc, score, dc, score...
  uint32_t pair_count;
};

KeyView view(const Key& k) {
  return {k.data() + 1, k[0], k.data() + 1 + k[0], static_cast<uint32_t>(k.size() - 1 - k[0]) / 2};
}

// Sets: union. Scores: for a datacenter in both, `deeper` replaces `outer` (combine a prefix with
// its enclosing one: the longer prefix wins) or the higher one is kept (equal prefixes).
Key merge_keys(const Key& outer, const Key& inner, bool inner_wins) {
  const KeyView a = view(outer), b = view(inner);
  Key out;
  out.reserve(outer.size() + inner.size());
  out.push_back(0);
  std::set_union(a.sets, a.sets + a.set_count, b.sets, b.sets + b.set_count,
                 std::back_inserter(out));
  out[0] = static_cast<uint32_t>(out.size() - 1);
  uint32_t i = 0, j = 0;
  while (i < a.pair_count || j < b.pair_count) {
    const uint32_t* pa = a.pairs + 2 * i;
    const uint32_t* pb = b.pairs + 2 * j;
    if (j == b.pair_count || (i < a.pair_count && pa[0] < pb[0])) {
      out.insert(out.end(), pa, pa + 2);
      ++i;
    } else if (i == a.pair_count || pb[0] < pa[0]) {
      out.insert(out.end(), pb, pb + 2);
      ++j;
    } else {
      out.push_back(pa[0]);
      out.push_back(inner_wins ? pb[1] : std::max(pa[1], pb[1]));
      ++i;
      ++j;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Configuration checks and per-set precomputation.

struct Prepared {
  std::vector<Key> set_keys;  // per set: {set} with the scores of its topology records
  std::vector<std::vector<uint32_t>> db_matchers;  // per database: (set, matcher) pairs, flattened
};

bool check_cidr(const Cidr& c, const std::string& what, std::string* error) {
  const int bits = c.family == 4 ? 32 : c.family == 6 ? 128 : 0;
  if (bits == 0 || c.prefix_len > bits) {
    *error = (c.where.empty() ? what : c.where) + ": bad CIDR (family " + std::to_string(c.family) +
             ", /" + std::to_string(c.prefix_len) + ")";
    return false;
  }
  return true;
}

bool prepare(const GeoConfig& cfg, Prepared* p, std::string* error) {
  auto where = [](const std::string& w) { return w.empty() ? std::string("geo") : w; };
  for (size_t i = 0; i < cfg.databases.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (cfg.databases[j].name == cfg.databases[i].name) {
        *error = where(cfg.databases[i].where) + ": duplicate database name '" +
                 cfg.databases[i].name + "'";
        return false;
      }
    }
  }
  std::vector<std::vector<std::pair<uint32_t, uint16_t>>> records(cfg.sets.size());
  for (const TopologyRecord& r : cfg.topology) {
    if (r.datacenter >= cfg.datacenters.size()) {
      *error = where(r.where) + ": topology record refers to unknown datacenter " +
               std::to_string(r.datacenter);
      return false;
    }
    if (r.score == 0) {
      *error = where(r.where) + ": topology score must be 1..65535";
      return false;
    }
    if (r.kind == TopologyRecord::Kind::kSet) {
      if (r.set >= cfg.sets.size()) {
        *error =
            where(r.where) + ": topology record refers to unknown set " + std::to_string(r.set);
        return false;
      }
      records[r.set].push_back({r.datacenter, r.score});
    } else if (!check_cidr(r.cidr, where(r.where), error)) {
      return false;
    }
  }
  p->set_keys.resize(cfg.sets.size());
  p->db_matchers.assign(cfg.databases.size(), {});
  for (uint32_t s = 0; s < cfg.sets.size(); ++s) {
    auto& recs = records[s];
    std::sort(recs.begin(), recs.end());
    Key k{1, s};
    for (size_t i = 0; i < recs.size(); ++i) {
      // Sorted by (dc, score): the last of each datacenter's run is its highest score.
      if (i + 1 < recs.size() && recs[i + 1].first == recs[i].first) continue;
      k.push_back(recs[i].first);
      k.push_back(recs[i].second);
    }
    p->set_keys[s] = std::move(k);
    const ClientSetDef& set = cfg.sets[s];
    for (uint32_t m = 0; m < set.mmdb.size(); ++m) {
      const MmdbMatch& match = set.mmdb[m];
      size_t db = 0;
      while (db < cfg.databases.size() && cfg.databases[db].name != match.database) ++db;
      if (db == cfg.databases.size()) {
        *error = where(match.where) + ": unknown geo database '" + match.database + "'";
        return false;
      }
      if (match.field_path.empty()) {
        *error = where(match.where) + ": empty field path";
        return false;
      }
      p->db_matchers[db].push_back(s);
      p->db_matchers[db].push_back(m);
    }
    for (const Cidr& c : set.cidrs) {
      if (!check_cidr(c, where(set.where), error)) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// MaxMind database walk.

std::string path_text(const std::vector<std::string>& path) {
  std::string s;
  for (const std::string& p : path) s += (s.empty() ? "" : ".") + p;
  return s;
}

std::string where_note(const MmdbMatch& m) {
  return m.where.empty() ? std::string() : " (" + m.where + ")";
}

bool equal_ascii_nocase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string u128_text(u128 v) {
  if (v == 0) return "0";
  char buf[40];
  int n = 0;
  while (v != 0) {
    buf[n++] = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  }
  std::reverse(buf, buf + n);
  return std::string(buf, static_cast<size_t>(n));
}

// One matcher as the walk uses it.
struct Matcher {
  uint32_t set;
  const MmdbMatch* def;
  std::vector<const char*> path;  // null-terminated, for MMDB_aget_value
  bool path_seen = false;
};

// What walking one database produced. Payloads index `combos`: the distinct sorted lists of
// set ids that some network's record matched.
struct DbResult {
  SourceFile file;
  std::vector<PrefixItem<uint32_t>> items4;
  std::vector<PrefixItem<u128>> items6;
  std::vector<std::vector<uint32_t>> combos;
  uint64_t networks = 0;
  std::string error;
};

class DbWalker {
 public:
  DbWalker(const GeoDatabase& db, std::vector<Matcher> matchers, DbResult* out)
      : db_(db), matchers_(std::move(matchers)), out_(out) {}
  ~DbWalker() {
    if (open_) MMDB_close(&mmdb_);
  }

  bool run() {
    if (!stat_source(db_.path, &out_->file, &out_->error)) return false;
    errno = 0;
    const int status = MMDB_open(db_.path.c_str(), MMDB_MODE_MMAP, &mmdb_);
    if (status != MMDB_SUCCESS) {
      if ((status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR) && errno != 0) {
        return fail(std::string(MMDB_strerror(status)) + ": " + std::strerror(errno));
      }
      return fail(std::string("not a valid MaxMind DB: ") + MMDB_strerror(status));
    }
    open_ = true;
    const MMDB_metadata_s& md = mmdb_.metadata;
    if (md.ip_version != 4 && md.ip_version != 6) {
      return fail("unsupported ip_version " + std::to_string(md.ip_version));
    }
    if (md.record_size != 24 && md.record_size != 28 && md.record_size != 32) {
      return fail("unsupported record_size " + std::to_string(md.record_size));
    }
    if (md.node_count == 0) return fail("empty search tree");
    bits_ = md.ip_version == 4 ? 32 : 128;
    // Far future build times are corrupt metadata (no clock is off by years).
    const uint64_t now = static_cast<uint64_t>(std::time(nullptr));
    if (md.build_epoch > now + 366ull * 86400) {
      return fail("metadata build_epoch " + std::to_string(md.build_epoch) + " lies in the future");
    }
    if (!walk()) return false;
    // A writer emits exactly the nodes its tree uses; unreachable ones are garbage.
    const uint64_t reached = static_cast<uint64_t>(std::count(visited_.begin(), visited_.end(), 1));
    if (reached != md.node_count) {
      return fail("corrupt search tree: " + std::to_string(md.node_count - reached) + " of " +
                  std::to_string(md.node_count) + " nodes are unreachable");
    }
    for (const Matcher& m : matchers_) {
      if (!m.path_seen) {
        return fail("field '" + path_text(m.def->field_path) + "'" + where_note(*m.def) +
                    " is in no record of the database");
      }
    }
    return true;
  }

 private:
  bool fail(const std::string& why) {
    out_->error = db_.path + ": " + why;
    return false;
  }

  bool walk() {
    visited_.assign(mmdb_.metadata.node_count, 0);
    visited_[0] = 1;
    return visit(0, 0, 0);
  }

  // Depth first, left before right: networks come out in address order (no sort needed), and
  // the IPv4 subtree at ::/96, on the all-zero path, is finished before any alias of it is met.
  // The recursion is at most 128 deep.
  bool visit(uint32_t n, u128 prefix, int depth) {
    if (depth >= bits_) {
      return fail("corrupt search tree: deeper than " + std::to_string(bits_) + " bits");
    }
    MMDB_search_node_s node;
    const int status = MMDB_read_node(&mmdb_, n, &node);
    if (status != MMDB_SUCCESS) return fail(MMDB_strerror(status));
    const int d = depth + 1;
    return record(node.left_record, node.left_record_type, node.left_record_entry, prefix, d) &&
           record(node.right_record, node.right_record_type, node.right_record_entry,
                  prefix | (u128{1} << (128 - d)), d);
  }

  bool record(uint64_t value, uint8_t type, MMDB_entry_s entry, u128 prefix, int depth) {
    const uint32_t node_count = mmdb_.metadata.node_count;
    switch (type) {
      case MMDB_RECORD_TYPE_EMPTY:
        return true;
      case MMDB_RECORD_TYPE_SEARCH_NODE: {
        const uint32_t n = static_cast<uint32_t>(value);
        if (visited_[n] != 0) {
          if (n == ipv4_node_ && depth <= 96) return replay_ipv4(prefix, depth);
          return fail("corrupt search tree: node " + std::to_string(n) +
                      " is reached twice (only the IPv4 subtree may be aliased)");
        }
        visited_[n] = 1;
        if (bits_ == 128 && depth == 96 && prefix == 0) ipv4_node_ = n;
        return visit(n, prefix, depth);
      }
      case MMDB_RECORD_TYPE_DATA: {
        if (value < uint64_t{node_count} + 16) {
          return fail("corrupt search tree: a record points into the data section separator");
        }
        ++out_->networks;
        int32_t combo = -1;
        if (!resolve(entry, &combo)) return false;
        if (combo >= 0) add_network(prefix, depth, static_cast<uint32_t>(combo));
        return true;
      }
      default:
        return fail("corrupt search tree: a record points outside the database");
    }
  }

  void add_network(u128 prefix, int depth, uint32_t combo) {
    if (bits_ == 32) {
      out_->items4.push_back(
          {static_cast<uint32_t>(prefix >> 96), static_cast<uint8_t>(depth), combo});
      return;
    }
    out_->items6.push_back({prefix, static_cast<uint8_t>(depth), combo});
    // What an IPv4 lookup sees: the ::/96 subtree, or a record that covers all of ::/96.
    if (depth >= 96 && (prefix >> 32) == 0) {
      out_->items4.push_back(
          {static_cast<uint32_t>(prefix), static_cast<uint8_t>(depth - 96), combo});
      ipv4_items_++;
    } else if (depth < 96 && prefix == 0) {
      out_->items4.push_back({0, 0, combo});
    }
  }

  // A record that points at the IPv4 subtree (::ffff:0:0/96, 2001::/32, 2002::/16 in MaxMind's
  // databases): MMDB_lookup_sockaddr continues into that subtree, so the IPv6 table repeats the
  // subtree's networks under this prefix.
  bool replay_ipv4(u128 prefix, int depth) {
    const size_t n = ipv4_items_;
    for (size_t i = 0; i < n; ++i) {
      const PrefixItem<uint32_t> it = out_->items4[i];
      out_->items6.push_back({prefix | (u128{it.addr} << (96 - depth)),
                              static_cast<uint8_t>(depth + it.len), it.payload});
    }
    return true;
  }

  // Which sets the data record at `entry` satisfies, as an index into out_->combos (-1: none).
  bool resolve(MMDB_entry_s entry, int32_t* combo) {
    if (entry.offset == last_offset_ && have_last_) {
      *combo = last_combo_;
      return true;
    }
    auto it = cache_.find(entry.offset);
    if (it != cache_.end()) {
      *combo = it->second;
    } else {
      // Decode the whole record once, so that a corrupt one is refused even where no matcher
      // looks (libmaxminddb bounds nesting depth and checks every offset).
      MMDB_entry_data_list_s* list = nullptr;
      const int status = MMDB_get_entry_data_list(&entry, &list);
      MMDB_free_entry_data_list(list);
      if (status != MMDB_SUCCESS) {
        return fail("data record at offset " + std::to_string(entry.offset) + ": " +
                    MMDB_strerror(status));
      }
      std::vector<uint32_t> sets;
      for (Matcher& m : matchers_) {
        bool match = false;
        if (!match_record(entry, &m, &match)) return false;
        if (match) sets.push_back(m.set);
      }
      std::sort(sets.begin(), sets.end());
      sets.erase(std::unique(sets.begin(), sets.end()), sets.end());
      *combo = -1;
      if (!sets.empty()) {
        auto [c, inserted] =
            combo_ids_.try_emplace(sets, static_cast<int32_t>(out_->combos.size()));
        if (inserted) out_->combos.push_back(sets);
        *combo = c->second;
      }
      cache_.emplace(entry.offset, *combo);
    }
    last_offset_ = entry.offset;
    last_combo_ = *combo;
    have_last_ = true;
    return true;
  }

  bool match_record(MMDB_entry_s entry, Matcher* m, bool* match) {
    MMDB_entry_data_s data;
    const int status = MMDB_aget_value(&entry, &data, m->path.data());
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR ||
        status == MMDB_INVALID_LOOKUP_PATH_ERROR) {
      return true;  // this record lacks the field (or the index is past its array)
    }
    if (status != MMDB_SUCCESS) {
      return fail("data record at offset " + std::to_string(entry.offset) + ": " +
                  MMDB_strerror(status));
    }
    if (!data.has_data) return true;
    m->path_seen = true;
    std::string text;
    switch (data.type) {
      case MMDB_DATA_TYPE_UTF8_STRING: {
        // libmaxminddb 1.7 checks strings only against the end of the file; the data section
        // ends where the metadata marker ("\xAB\xCD\xEFMaxMind.com", 14 bytes) begins.
        const auto* p = reinterpret_cast<const uint8_t*>(data.utf8_string);
        const uint8_t* end = mmdb_.data_section + mmdb_.data_section_size;
        if (mmdb_.metadata_section >= mmdb_.data_section + 14 &&
            mmdb_.metadata_section - 14 < end) {
          end = mmdb_.metadata_section - 14;
        }
        if (p < mmdb_.data_section || p > end || data.data_size > static_cast<size_t>(end - p)) {
          return fail("data record at offset " + std::to_string(entry.offset) +
                      ": a string runs past the data section");
        }
        text.assign(data.utf8_string, data.data_size);
        break;
      }
      case MMDB_DATA_TYPE_UINT16:
        text = std::to_string(data.uint16);
        break;
      case MMDB_DATA_TYPE_UINT32:
        text = std::to_string(data.uint32);
        break;
      case MMDB_DATA_TYPE_INT32:
        text = std::to_string(data.int32);
        break;
      case MMDB_DATA_TYPE_UINT64:
        text = std::to_string(data.uint64);
        break;
      case MMDB_DATA_TYPE_UINT128:
        text = u128_text(data.uint128);
        break;
      case MMDB_DATA_TYPE_BOOLEAN:
        text = data.boolean ? "true" : "false";
        break;
      case MMDB_DATA_TYPE_MAP:
      case MMDB_DATA_TYPE_ARRAY:
        return fail("field '" + path_text(m->def->field_path) + "'" + where_note(*m->def) + " is " +
                    (data.type == MMDB_DATA_TYPE_MAP ? "a map" : "an array") +
                    ", not a value; extend the path (e.g. " + path_text(m->def->field_path) +
                    (data.type == MMDB_DATA_TYPE_MAP ? ".iso_code)" : ".0)"));
      default:
        return fail("field '" + path_text(m->def->field_path) + "'" + where_note(*m->def) +
                    " is not a string, integer or boolean");
    }
    for (const std::string& v : m->def->values) {
      if (equal_ascii_nocase(text, v)) {
        *match = true;
        break;
      }
    }
    return true;
  }

  const GeoDatabase& db_;
  std::vector<Matcher> matchers_;
  DbResult* out_;
  MMDB_s mmdb_{};
  bool open_ = false;
  int bits_ = 128;
  std::vector<uint8_t> visited_;
  uint32_t ipv4_node_ = UINT32_MAX;
  size_t ipv4_items_ = 0;  // items4[0, ipv4_items_) came from the IPv4 subtree
  std::unordered_map<uint32_t, int32_t> cache_;
  std::unordered_map<std::vector<uint32_t>, int32_t, KeyHash> combo_ids_;
  uint32_t last_offset_ = 0;
  int32_t last_combo_ = -1;
  bool have_last_ = false;
};

// ---------------------------------------------------------------------------------------------
// CIDR files.

bool read_file(const std::string& path, std::string* text, SourceFile* file, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = errno_text(path, errno);
    return false;
  }
  struct stat st;
  bool ok = ::fstat(fd, &st) == 0;
  if (ok && !S_ISREG(st.st_mode)) {
    ::close(fd);
    *error = path + ": not a regular file";
    return false;
  }
  text->clear();
  char buf[65536];
  while (ok) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    text->append(buf, static_cast<size_t>(n));
  }
  const int err = errno;
  ::close(fd);
  if (!ok) {
    *error = errno_text(path, err);
    return false;
  }
  file->path = path;
  file->device = st.st_dev;
  file->inode = st.st_ino;
  file->size = static_cast<uint64_t>(st.st_size);
  file->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Flattening into classes.

class ClassBuilder {
 public:
  ClassBuilder() { classes_.intern(Key{0}); }  // class 0: no set, no score

  uint32_t contrib(Key&& k) { return contribs_.intern(std::move(k)); }
  const Key& contrib_key(uint32_t id) const { return contribs_.key(id); }
  const Interner& classes() const { return classes_; }
  bool overflow() const { return classes_.size() > kMaxClasses; }

  // flatten()'s combine: the enclosing prefix's class plus this prefix's contributions.
  template <class K>
  uint32_t operator()(uint32_t outer, const PrefixItem<K>* run, size_t count) {
    uint32_t c = run[0].payload;
    for (size_t i = 1; i < count; ++i) c = same_prefix(c, run[i].payload);
    const uint64_t memo = (uint64_t{outer} << 32) | c;
    if (memo == last_memo_) return last_class_;  // neighbouring networks usually repeat
    last_memo_ = memo;
    auto it = nested_.find(memo);
    if (it != nested_.end()) return last_class_ = it->second;
    const uint32_t cls = classes_.intern(merge_keys(classes_.key(outer), contribs_.key(c), true));
    nested_.emplace(memo, cls);
    return last_class_ = cls;
  }

 private:
  uint32_t same_prefix(uint32_t a, uint32_t b) {
    if (a == b) return a;
    const uint64_t memo = (uint64_t{std::min(a, b)} << 32) | std::max(a, b);
    auto it = same_.find(memo);
    if (it != same_.end()) return it->second;
    const uint32_t c = contribs_.intern(merge_keys(contribs_.key(a), contribs_.key(b), false));
    same_.emplace(memo, c);
    return c;
  }

  Interner classes_;
  Interner contribs_;
  std::unordered_map<uint64_t, uint32_t> nested_;
  std::unordered_map<uint64_t, uint32_t> same_;
  uint64_t last_memo_ = UINT64_MAX;
  uint32_t last_class_ = 0;
};

// Orders items that were appended in runs: each database's walk is already in address order (an
// unsorted run, impossible from a tree walk, is sorted anyway), CIDR items are sorted here; then
// the runs are merged. Linear for the millions of database items, unlike one big sort.
template <class K>
void order_runs(std::vector<PrefixItem<K>>* items, std::vector<size_t> ends) {
  ends.push_back(items->size());
  size_t begin = 0;
  for (size_t end : ends) {
    auto first = items->begin() + static_cast<std::ptrdiff_t>(begin);
    auto last = items->begin() + static_cast<std::ptrdiff_t>(end);
    if (!std::is_sorted(first, last, prefix_item_less<K>)) {
      tbb::parallel_sort(first, last, prefix_item_less<K>);
    }
    if (begin != 0) std::inplace_merge(items->begin(), first, last, prefix_item_less<K>);
    begin = end;
  }
}

void cidr_key(const Cidr& c, uint32_t* k4, u128* k6) {
  if (c.family == 4) {
    *k4 = (uint32_t{c.addr[0]} << 24) | (uint32_t{c.addr[1]} << 16) | (uint32_t{c.addr[2]} << 8) |
          c.addr[3];
    *k4 = prefix_mask(*k4, c.prefix_len);
  } else {
    *k6 = prefix_mask(key6_from_bytes(c.addr), c.prefix_len);
  }
}

struct Items {
  std::vector<PrefixItem<uint32_t>> v4;
  std::vector<PrefixItem<u128>> v6;
  std::vector<size_t> runs4, runs6;  // where each appended sorted run ends
  void add(const Cidr& c, uint32_t payload) {
    uint32_t k4 = 0;
    u128 k6 = 0;
    cidr_key(c, &k4, &k6);
    if (c.family == 4) {
      v4.push_back({k4, c.prefix_len, payload});
    } else {
      v6.push_back({k6, c.prefix_len, payload});
    }
  }
};

}  // namespace

namespace {

// `s` for a one-line message: control and non-ASCII bytes as \xNN, at most 64 of them shown.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const unsigned char ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0x20 && ch < 0x7F) {
      out += static_cast<char>(ch);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[ch >> 4], kHex[ch & 15]};
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace

bool parse_cidr(const std::string& text, Cidr* out, std::string* error) {
  const size_t slash = text.find('/');
  const std::string addr = text.substr(0, slash);
  if (addr.empty()) {
    *error = "empty address in '" + printable(text) + "'";
    return false;
  }
  Cidr c;
  c.where = out->where;
  const bool v6 = addr.find(':') != std::string::npos;
  c.family = v6 ? 6 : 4;
  const int bits = v6 ? 128 : 32;
  if (addr.find('\0') != std::string::npos ||
      inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), c.addr) != 1) {
    *error = std::string("bad IPv") + (v6 ? "6" : "4") + " address '" + printable(addr) + "'";
    return false;
  }
  int len = bits;
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
        (len = std::stoi(p)) > bits) {
      *error = "bad prefix length /" + printable(p);
      return false;
    }
  }
  c.prefix_len = static_cast<uint8_t>(len);
  for (int bit = len; bit < bits; ++bit) {
    if ((c.addr[bit / 8] >> (7 - bit % 8)) & 1) {
      Cidr masked = c;
      for (int b = len; b < bits; ++b)
        masked.addr[b / 8] &= static_cast<uint8_t>(~(1u << (7 - b % 8)));
      char buf[INET6_ADDRSTRLEN];
      inet_ntop(v6 ? AF_INET6 : AF_INET, masked.addr, buf, sizeof(buf));
      *error = "address bits past /" + std::to_string(len) + " are not zero in '" +
               printable(text) + "' (the network is " + buf + "/" + std::to_string(len) + ")";
      return false;
    }
  }
  *out = std::move(c);
  return true;
}

bool parse_cidr_lines(const std::string& text, const std::string& path, std::vector<Cidr>* out,
                      std::string* error) {
  size_t pos = 0;
  for (size_t line = 1; pos < text.size(); ++line) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view s(text.data() + pos, eol - pos);
    pos = eol + 1;
    const size_t hash = s.find('#');
    if (hash != std::string_view::npos) s = s.substr(0, hash);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
      s.remove_suffix(1);
    }
    if (s.empty()) continue;
    Cidr c;
    std::string why;
    if (!parse_cidr(std::string(s), &c, &why)) {
      *error = path + ":" + std::to_string(line) + ": " + why;
      return false;
    }
    c.where = path + ":" + std::to_string(line);
    out->push_back(std::move(c));
  }
  return true;
}

bool geo_sources_changed(const CompiledGeo& compiled) {
  for (const SourceFile& f : compiled.files) {
    SourceFile now;
    std::string error;
    if (!stat_source(f.path, &now, &error)) return true;
    if (now.device != f.device || now.inode != f.inode || now.size != f.size ||
        now.mtime_ns != f.mtime_ns) {
      return true;
    }
  }
  return false;
}

bool compile_geo(const GeoConfig& config, CompiledGeo* out, std::string* error) {
  const auto t0 = std::chrono::steady_clock::now();
  Prepared prep;
  if (!prepare(config, &prep, error)) return false;

  // Databases without matchers are not opened: nothing refers to them.
  std::vector<DbResult> dbs(config.databases.size());
  std::vector<size_t> used;
  for (size_t d = 0; d < config.databases.size(); ++d) {
    if (!prep.db_matchers[d].empty()) used.push_back(d);
  }
  tbb::parallel_for(size_t{0}, used.size(), [&](size_t u) {
    const size_t d = used[u];
    std::vector<Matcher> matchers;
    const std::vector<uint32_t>& pairs = prep.db_matchers[d];
    for (size_t i = 0; i < pairs.size(); i += 2) {
      Matcher m{pairs[i], &config.sets[pairs[i]].mmdb[pairs[i + 1]], {}};
      for (const std::string& p : m.def->field_path) m.path.push_back(p.c_str());
      m.path.push_back(nullptr);
      matchers.push_back(std::move(m));
    }
    DbWalker walker(config.databases[d], std::move(matchers), &dbs[d]);
    walker.run();
  });
  for (size_t d : used) {
    if (!dbs[d].error.empty()) {
      *error = dbs[d].error;
      return false;
    }
  }

  CompiledGeo geo;
  ClassBuilder classes;
  Items items;
  for (size_t d : used) {
    DbResult& r = dbs[d];
    geo.networks_read += r.networks;
    geo.files.push_back(r.file);
    std::vector<uint32_t> remap(r.combos.size());
    for (size_t c = 0; c < r.combos.size(); ++c) {
      Key k{0};
      for (uint32_t s : r.combos[c]) k = merge_keys(k, prep.set_keys[s], false);
      remap[c] = classes.contrib(std::move(k));
    }
    for (auto& it : r.items4) it.payload = remap[it.payload];
    for (auto& it : r.items6) it.payload = remap[it.payload];
    items.v4.insert(items.v4.end(), r.items4.begin(), r.items4.end());
    items.v6.insert(items.v6.end(), r.items6.begin(), r.items6.end());
    items.runs4.push_back(items.v4.size());
    items.runs6.push_back(items.v6.size());
    r = DbResult();
  }
  for (uint32_t s = 0; s < config.sets.size(); ++s) {
    const ClientSetDef& set = config.sets[s];
    const uint32_t contrib = classes.contrib(Key(prep.set_keys[s]));
    for (const Cidr& c : set.cidrs) items.add(c, contrib);
    for (const std::string& path : set.cidr_files) {
      std::string text;
      SourceFile file;
      std::vector<Cidr> cidrs;
      if (!read_file(path, &text, &file, error) || !parse_cidr_lines(text, path, &cidrs, error)) {
        return false;
      }
      geo.files.push_back(std::move(file));
      for (const Cidr& c : cidrs) items.add(c, contrib);
    }
  }
  for (const TopologyRecord& r : config.topology) {
    if (r.kind == TopologyRecord::Kind::kCidr) {
      items.add(r.cidr, classes.contrib(Key{0, r.datacenter, r.score}));
    }
  }

  tbb::parallel_invoke([&] { order_runs(&items.v4, items.runs4); },
                       [&] { order_runs(&items.v6, items.runs6); });
  const auto ranges4 = flatten<uint32_t>(items.v4.data(), items.v4.size(), 0, classes);
  const auto ranges6 = flatten<u128>(items.v6.data(), items.v6.size(), 0, classes);
  if (classes.overflow()) {
    *error = "geo: more than " + std::to_string(kMaxClasses) +
             " client classes (distinct combinations of regions, ISP lines and topology scores)";
    return false;
  }

  // Renumber the classes that some range uses, in order of first use; class 0 stays 0.
  std::vector<uint32_t> renum(classes.classes().size(), UINT32_MAX);
  std::vector<uint32_t> order{0};
  renum[0] = 0;
  auto use = [&](uint32_t c) {
    if (renum[c] == UINT32_MAX) {
      renum[c] = static_cast<uint32_t>(order.size());
      order.push_back(c);
    }
    return renum[c];
  };
  std::vector<LpmRange<uint32_t>> final4(ranges4.size());
  std::vector<LpmRange<u128>> final6(ranges6.size());
  for (size_t i = 0; i < ranges4.size(); ++i) final4[i] = {ranges4[i].start, use(ranges4[i].value)};
  for (size_t i = 0; i < ranges6.size(); ++i) final6[i] = {ranges6[i].start, use(ranges6[i].value)};

  const uint32_t dc_count = static_cast<uint32_t>(config.datacenters.size());
  geo.class_count = static_cast<uint32_t>(order.size());
  geo.class_set_first.assign(1, 0);
  geo.class_sets.clear();
  geo.topology_scores.assign(size_t{geo.class_count} * dc_count, 0);
  for (uint32_t c = 0; c < geo.class_count; ++c) {
    const KeyView k = view(classes.classes().key(order[c]));
    geo.class_sets.insert(geo.class_sets.end(), k.sets, k.sets + k.set_count);
    geo.class_set_first.push_back(static_cast<uint32_t>(geo.class_sets.size()));
    for (uint32_t p = 0; p < k.pair_count; ++p) {
      geo.topology_scores[size_t{c} * dc_count + k.pairs[2 * p]] =
          static_cast<uint16_t>(k.pairs[2 * p + 1]);
    }
  }
  // A table where every address is in no class is the empty image (lpm.h).
  const bool trivial4 = final4.size() == 1 && final4[0].value == 0;
  const bool trivial6 = final6.size() == 1 && final6[0].value == 0;
  if (!trivial4) geo.lpm4 = encode_lpm4(final4);
  if (!trivial6) geo.lpm6 = encode_lpm6(final6);
  if ((!trivial4 && geo.lpm4.empty()) || (!trivial6 && geo.lpm6.empty())) {
    *error = "geo: the address tables are too large (" + std::to_string(final4.size()) +
             " IPv4 and " + std::to_string(final6.size()) + " IPv6 ranges)";
    return false;
  }
  geo.lpm4_entries = geo.lpm4.empty() ? 0 : final4.size();
  geo.lpm6_entries = geo.lpm6.empty() ? 0 : final6.size();

  for (const ClientSetDef& s : config.sets) {
    geo.set_names.push_back(s.name);
    geo.set_is_isp_line.push_back(s.kind == ClientSetDef::Kind::kIspLine ? 1 : 0);
  }
  geo.datacenter_names = config.datacenters;
  geo.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  *out = std::move(geo);
  return true;
}

}  // namespace gtm::control::geo
