#include "control/config/config_loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string_view>
#include <utility>

#include "control/geo/geo_compiler.h"
#include "dataplane/dns/wire.h"

namespace gtm::control {
namespace {

constexpr uint32_t kMaxTtl = 0x7FFFFFFFu;  // RFC 2181 section 8
constexpr uint32_t kMaxU32 = 0xFFFFFFFFu;
constexpr uint32_t kMaxWeight = 1000000;
constexpr uint32_t kDefaultTtl = 3600;
constexpr size_t kMaxFileSize = 64u << 20;

// The loader works by exception internally (the schema walk is deep and every step can fail);
// load_config_string is the only place that catches, so nothing leaks to callers.
struct LoadError {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void fail(const YAML::Mark& mark, std::string message) {
  throw LoadError{mark, std::move(message)};
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Names

bool append_label(const std::string& label, WireName* out, std::string* error) {
  if (label.empty()) {
    *error = "empty label in name";
    return false;
  }
  if (label.size() > dns::kMaxLabelLen) {
    *error = "label " + quoted(label) + " is longer than 63 octets";
    return false;
  }
  out->push_back(static_cast<uint8_t>(label.size()));
  for (char c : label) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out->push_back(static_cast<uint8_t>(c));
  }
  return true;
}

// `origin` may be null: then the name must be absolute.
bool parse_name(std::string_view text, const WireName* origin, WireName* out, std::string* error) {
  out->clear();
  if (text.empty()) {
    *error = "empty name";
    return false;
  }
  if (text == "@" || text == ".") {
    if (text == ".") {
      out->push_back(0);
    } else if (origin != nullptr) {
      *out = *origin;
    } else {
      *error = "'@' is only meaningful inside a zone; use an absolute name ending in '.'";
      return false;
    }
    return true;
  }
  std::string label;
  bool absolute = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '.') {
      if (!append_label(label, out, error)) return false;
      label.clear();
      ++i;
      absolute = (i == text.size());
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= text.size()) {
        *error = "name ends with a lone backslash";
        return false;
      }
      auto is_digit = [&](size_t k) { return k < text.size() && text[k] >= '0' && text[k] <= '9'; };
      if (is_digit(i + 1) && is_digit(i + 2) && is_digit(i + 3)) {
        const int v = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
        if (v > 255) {
          *error = "escape \\" + std::string(text.substr(i + 1, 3)) + " is above 255";
          return false;
        }
        label.push_back(static_cast<char>(v));
        i += 4;
      } else {
        label.push_back(text[i + 1]);
        i += 2;
      }
      continue;
    }
    label.push_back(c);
    ++i;
  }
  if (!absolute) {
    if (!append_label(label, out, error)) return false;
    if (origin == nullptr) {
      *error = "name " + quoted(text) + " must be absolute (end with '.')";
      return false;
    }
    out->insert(out->end(), origin->begin(), origin->end());
  } else {
    out->push_back(0);
  }
  if (out->size() > dns::kMaxNameLen) {
    *error = "name " + quoted(text) + " is longer than 255 octets";
    return false;
  }
  return true;
}

// Presentation form with every unusual octet escaped, so ldns reads back exactly these labels.
std::string name_to_text(const WireName& name) {
  std::string text;
  size_t pos = 0;
  while (pos < name.size() && name[pos] != 0) {
    const size_t len = name[pos];
    for (size_t k = pos + 1; k <= pos + len && k < name.size(); ++k) {
      const uint8_t c = name[k];
      const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*';
      if (plain) {
        text.push_back(static_cast<char>(c));
      } else {
        char buf[5];
        snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(c));
        text += buf;
      }
    }
    text.push_back('.');
    pos += len + 1;
  }
  return text.empty() ? "." : text;
}

// Whether `name` equals `apex` or lies below it. Both canonical, so a byte compare at a label
// boundary decides.
bool is_within(const WireName& name, const WireName& apex) {
  size_t pos = 0;
  while (pos < name.size()) {
    if (name.size() - pos == apex.size() &&
        std::equal(apex.begin(), apex.end(), name.begin() + pos))
      return true;
    if (name[pos] == 0) break;
    pos += name[pos] + 1;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Typed access to YAML values, every failure pinned to the value's mark

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;

  std::string what() const { return quoted(key); }
};

// A YAML map checked against the keys its context allows: every key a known, unique scalar.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string context,
            std::initializer_list<std::string_view> allowed)
      : context_(std::move(context)), mark_(node.Mark()) {
    if (!node.IsMap()) fail(mark_, context_ + " must be a map");
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) fail(key.Mark(), "keys in " + context_ + " must be plain strings");
      const std::string& k = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        fail(key.Mark(), "unknown key " + quoted(k) + " in " + context_);
      for (const Entry& e : entries_) {
        if (e.key == k) fail(key.Mark(), "duplicate key " + quoted(k) + " in " + context_);
      }
      entries_.push_back({k, key, it->second});
    }
  }

  const YAML::Mark& mark() const { return mark_; }

  // The entry for `key`, or null when absent or given no value (both mean "use the default").
  const Entry* find(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return e.value.IsNull() ? nullptr : &e;
    }
    return nullptr;
  }

  // The entry for `key` even when it has no value, or null when absent.
  const Entry* find_key(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  const Entry& require(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key != key) continue;
      if (e.value.IsNull())
        fail(e.key_node.Mark(), "missing value for " + quoted(key) + " in " + context_);
      return e;
    }
    fail(mark_, "missing key " + quoted(key) + " in " + context_);
  }

 private:
  std::string context_;
  YAML::Mark mark_;
  std::vector<Entry> entries_;
};

const std::string& scalar(const YAML::Node& v, const std::string& what) {
  if (v.IsNull()) fail(v.Mark(), what + " has no value");
  if (!v.IsScalar()) fail(v.Mark(), what + " must be a single value, not a list or map");
  return v.Scalar();
}

uint32_t to_uint(const YAML::Node& v, const std::string& what, uint32_t lo, uint32_t hi) {
  const std::string& s = scalar(v, what);
  bool ok = !s.empty() && s.size() <= 10;
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || value < lo || value > hi) {
    fail(v.Mark(), what + " must be an integer in " + std::to_string(lo) + ".." +
                       std::to_string(hi) + ", got " + quoted(s));
  }
  return static_cast<uint32_t>(value);
}

uint32_t to_ttl(const Entry& e) {
  return to_uint(e.value, e.what(), 0, kMaxTtl);
}

bool to_bool(const Entry& e) {
  const std::string& s = scalar(e.value, e.what());
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  fail(e.value.Mark(), e.what() + " must be true or false, got " + quoted(s));
}

template <typename T>
T to_choice(const Entry& e, std::initializer_list<std::pair<std::string_view, T>> choices) {
  const std::string& s = scalar(e.value, e.what());
  std::string names;
  for (const auto& [name, value] : choices) {
    if (s == name) return value;
    names += names.empty() ? "" : ", ";
    names += name;
  }
  fail(e.value.Mark(), e.what() + " must be one of " + names + "; got " + quoted(s));
}

const YAML::Node& to_list(const Entry& e, bool non_empty) {
  if (!e.value.IsSequence()) fail(e.value.Mark(), e.what() + " must be a list");
  if (non_empty && e.value.size() == 0) fail(e.value.Mark(), e.what() + " must not be empty");
  return e.value;
}

WireName to_name(const YAML::Node& v, const std::string& what, const WireName* origin) {
  const std::string& s = scalar(v, what);
  WireName name;
  std::string error;
  if (!parse_name(s, origin, &name, &error)) fail(v.Mark(), what + ": " + error);
  return name;
}

struct Address {
  int family = 0;  // 4 or 6
  WireRdata bytes;
};

Address to_address(const YAML::Node& v, const std::string& what) {
  const std::string& s = scalar(v, what);
  Address a;
  uint8_t buf[16];
  if (s.find('\0') != std::string::npos) {
    // inet_pton would stop at the NUL and accept a prefix.
  } else if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
      a.family = 4;
      a.bytes.assign(buf, buf + 4);
      return a;
    }
  } else if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    a.family = 6;
    a.bytes.assign(buf, buf + 16);
    return a;
  }
  fail(v.Mark(), what + " must be an IPv4 or IPv6 address, got " + quoted(s));
}

// ---------------------------------------------------------------------------------------------
// Record data through ldns

struct RecordType {
  std::string_view name;
  uint16_t code;
};
constexpr RecordType kRecordTypes[] = {
    {"A", dns::kTypeA},         {"AAAA", dns::kTypeAAAA}, {"NS", dns::kTypeNS},
    {"CNAME", dns::kTypeCNAME}, {"MX", dns::kTypeMX},     {"TXT", dns::kTypeTXT},
    {"SRV", dns::kTypeSRV},     {"PTR", dns::kTypePTR},   {"CAA", dns::kTypeCAA},
};

// ldns truncates out-of-range integers silently (an SRV port of 99999 becomes 34463), so the
// leading integer fields of these types are range-checked here first.
void check_leading_integers(std::string_view type, const std::string& data,
                            const YAML::Node& mark_node) {
  std::vector<uint32_t> maxima;
  if (type == "MX") {
    maxima = {0xFFFF};
  } else if (type == "SRV") {
    maxima = {0xFFFF, 0xFFFF, 0xFFFF};
  } else if (type == "CAA") {
    maxima = {0xFF};
  } else {
    return;
  }
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < data.size() && tokens.size() < maxima.size()) {
    while (i < data.size() && (data[i] == ' ' || data[i] == '\t')) ++i;
    const size_t start = i;
    while (i < data.size() && data[i] != ' ' && data[i] != '\t') ++i;
    std::string token = data.substr(start, i - start);
    if (token == "\\#") return;  // RFC 3597 generic form: ldns checks its length
    if (!token.empty() && token != "(" && token != ")") tokens.push_back(std::move(token));
  }
  size_t field = 0;
  for (uint32_t max : maxima) {
    if (field >= tokens.size()) return;  // too few fields: ldns reports it
    const std::string& t = tokens[field++];
    bool ok = t.size() <= 10;
    uint64_t value = 0;
    for (char c : t) {
      if (c < '0' || c > '9') ok = false;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || value > max) {
      fail(mark_node.Mark(), "invalid " + std::string(type) + " data: field " +
                                 std::to_string(field) + " must be an integer in 0.." +
                                 std::to_string(max) + ", got " + quoted(t));
    }
  }
}

struct LdnsRdfDeleter {
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct LdnsRrDeleter {
  void operator()(ldns_rr* r) const { ldns_rr_free(r); }
};

WireRdata rdata_from_text(const WireName& owner, std::string_view type, uint16_t code, uint32_t ttl,
                          const WireName& origin, const YAML::Node& data_node) {
  const std::string& data = scalar(data_node, "'data'");
  if (data.find_first_not_of(" \t") == std::string::npos)
    fail(data_node.Mark(), "'data' must not be empty");
  for (char c : data) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
      fail(data_node.Mark(), "'data' contains a control character (line break?)");
  }
  check_leading_integers(type, data, data_node);

  const std::string text =
      name_to_text(owner) + " " + std::to_string(ttl) + " IN " + std::string(type) + " " + data;
  std::unique_ptr<ldns_rdf, LdnsRdfDeleter> ldns_origin(
      ldns_dname_new_frm_data(static_cast<uint16_t>(origin.size()), origin.data()));
  if (!ldns_origin) fail(data_node.Mark(), "out of memory");
  ldns_rr* raw = nullptr;
  const ldns_status status =
      ldns_rr_new_frm_str(&raw, text.c_str(), ttl, ldns_origin.get(), nullptr);
  std::unique_ptr<ldns_rr, LdnsRrDeleter> rr(raw);
  if (status != LDNS_STATUS_OK || !rr) {
    fail(data_node.Mark(), "invalid " + std::string(type) + " data " + quoted(data) + ": " +
                               ldns_get_errorstr_by_id(status));
  }
  const ldns_rr_descriptor* desc = ldns_rr_descript(code);
  const size_t count = ldns_rr_rd_count(rr.get());
  if (ldns_rr_get_type(rr.get()) != code || count == 0 ||
      (desc != nullptr && count < ldns_rr_descriptor_minimum(desc))) {
    fail(data_node.Mark(),
         "invalid " + std::string(type) + " data " + quoted(data) + ": missing fields");
  }
  // Each rdf's data is already its uncompressed wire form (what ldns_rdf2buffer_wire writes).
  WireRdata rdata;
  for (size_t i = 0; i < count; ++i) {
    const ldns_rdf* rdf = ldns_rr_rdf(rr.get(), i);
    // Canonical (lowercase) names everywhere, so the image is independent of how names were typed.
    if (ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_DNAME) ldns_dname2canonical(rdf);
    const uint8_t* bytes = ldns_rdf_data(rdf);
    rdata.insert(rdata.end(), bytes, bytes + ldns_rdf_size(rdf));
  }
  if (rdata.size() > 0xFFFF) fail(data_node.Mark(), "record data is longer than 65535 octets");
  return rdata;
}

void put_u32(WireRdata* out, uint32_t v) {
  out->push_back(static_cast<uint8_t>(v >> 24));
  out->push_back(static_cast<uint8_t>(v >> 16));
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

// ---------------------------------------------------------------------------------------------
// The schema

uint32_t optional_uint(const MapReader& m, std::string_view key, uint32_t lo, uint32_t hi,
                       uint32_t fallback) {
  const Entry* e = m.find(key);
  return e ? to_uint(e->value, e->what(), lo, hi) : fallback;
}

void load_soa(const MapReader& zone, ZoneModel* z, uint32_t default_ttl) {
  const MapReader soa(zone.require("soa").value, "soa",
                      {"mname", "rname", "serial", "refresh", "retry", "expire", "minimum", "ttl"});
  const Entry& mname = soa.require("mname");
  const Entry& rname = soa.require("rname");
  const WireName mname_wire = to_name(mname.value, mname.what(), &z->apex);
  const WireName rname_wire = to_name(rname.value, rname.what(), &z->apex);
  const Entry& serial = soa.require("serial");
  z->soa_rdata = mname_wire;
  z->soa_rdata.insert(z->soa_rdata.end(), rname_wire.begin(), rname_wire.end());
  put_u32(&z->soa_rdata, to_uint(serial.value, serial.what(), 0, kMaxU32));
  put_u32(&z->soa_rdata, optional_uint(soa, "refresh", 0, kMaxU32, 3600));
  put_u32(&z->soa_rdata, optional_uint(soa, "retry", 0, kMaxU32, 600));
  put_u32(&z->soa_rdata, optional_uint(soa, "expire", 0, kMaxU32, 1209600));
  put_u32(&z->soa_rdata, optional_uint(soa, "minimum", 0, kMaxU32, 300));
  z->soa_ttl = optional_uint(soa, "ttl", 0, kMaxTtl, default_ttl);
}

StaticRecord load_record(const YAML::Node& node, const ZoneModel& z, uint32_t default_ttl) {
  const MapReader m(node, "record", {"name", "type", "ttl", "data"});
  const Entry& name = m.require("name");
  StaticRecord r;
  r.owner = to_name(name.value, name.what(), &z.apex);
  if (!is_within(r.owner, z.apex)) {
    fail(name.value.Mark(), "record name " + quoted(name.value.Scalar()) + " is outside zone " +
                                quoted(name_to_text(z.apex)));
  }
  const Entry& type = m.require("type");
  const std::string type_name = upper(scalar(type.value, type.what()));
  const RecordType* found = nullptr;
  for (const RecordType& t : kRecordTypes) {
    if (t.name == type_name) found = &t;
  }
  if (type_name == "SOA")
    fail(type.value.Mark(), "SOA is configured by the zone's 'soa' map, not as a record");
  if (found == nullptr) {
    fail(type.value.Mark(), "unsupported record type " + quoted(type.value.Scalar()) +
                                " (supported: A, AAAA, NS, CNAME, MX, TXT, SRV, PTR, CAA)");
  }
  if (found->code == dns::kTypeNS && r.owner != z.apex)
    fail(name.value.Mark(), "NS records are only allowed at the zone apex");
  r.type = found->code;
  const Entry* ttl = m.find("ttl");
  r.ttl = ttl ? to_ttl(*ttl) : default_ttl;
  r.rdata =
      rdata_from_text(r.owner, found->name, found->code, r.ttl, z.apex, m.require("data").value);
  return r;
}

ZoneModel load_zone(const YAML::Node& node, const std::vector<ZoneModel>& earlier) {
  const MapReader m(node, "zone", {"name", "default_ttl", "soa", "ns", "ns_ttl", "records"});
  const Entry& name = m.require("name");
  ZoneModel z;
  z.apex = to_name(name.value, "zone name", nullptr);
  for (const ZoneModel& other : earlier) {
    if (other.apex == z.apex)
      fail(name.value.Mark(), "duplicate zone " + quoted(name.value.Scalar()));
  }
  const Entry* default_ttl_entry = m.find("default_ttl");
  const uint32_t default_ttl = default_ttl_entry ? to_ttl(*default_ttl_entry) : kDefaultTtl;
  load_soa(m, &z, default_ttl);

  const Entry& ns = m.require("ns");
  const Entry* ns_ttl_entry = m.find("ns_ttl");
  const uint32_t ns_ttl = ns_ttl_entry ? to_ttl(*ns_ttl_entry) : z.soa_ttl;
  for (const YAML::Node& item : to_list(ns, true)) {
    z.records.push_back({z.apex, dns::kTypeNS, ns_ttl, to_name(item, "name server", &z.apex)});
  }
  if (const Entry* records = m.find("records")) {
    for (const YAML::Node& item : to_list(*records, false)) {
      z.records.push_back(load_record(item, z, default_ttl));
    }
  }
  return z;
}

// ---------------------------------------------------------------------------------------------
// Clients: geo databases, regions, ISP lines, datacenters and the topology table
// (control/geo/geo_model.h). Services refer to them by name.

// Where the file being loaded lives: `where` strings and relative geo paths.
struct Source {
  std::string file;      // as given, for messages
  std::string base_dir;  // relative geo paths resolve against it

  std::string where(const YAML::Mark& m) const {
    return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  std::string path(const std::string& p) const {
    if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
    return base_dir + "/" + p;
  }
};

std::string directory_of(const std::string& file) {
  const size_t slash = file.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : file.substr(0, slash);
}

struct Clients {
  geo::GeoConfig geo;

  // Index of a region or ISP line, or kNone.
  uint32_t set(const std::string& name) const {
    for (uint32_t i = 0; i < geo.sets.size(); ++i) {
      if (geo.sets[i].name == name) return i;
    }
    return snap::kNone;
  }
  uint32_t datacenter(const std::string& name) const {
    for (uint32_t i = 0; i < geo.datacenters.size(); ++i) {
      if (geo.datacenters[i] == name) return i;
    }
    return snap::kNone;
  }
};

// Names of sets and datacenters appear in explain output and logs: keep them plain.
std::string plain_name(const YAML::Node& v, const std::string& what) {
  const std::string& s = scalar(v, what);
  bool ok = !s.empty() && s.size() <= 63;
  for (char c : s) {
    ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.';
  }
  if (!ok) {
    fail(v.Mark(),
         what + " must be 1..63 characters of letters, digits, '-', '_' and '.', got " + quoted(s));
  }
  return s;
}

// A scalar or a list of scalars, as a list of nodes.
std::vector<YAML::Node> one_or_list(const Entry& e) {
  std::vector<YAML::Node> items;
  if (e.value.IsSequence()) {
    for (const YAML::Node& n : e.value) items.push_back(n);
    if (items.empty()) fail(e.value.Mark(), e.what() + " must not be empty");
  } else {
    items.push_back(e.value);
  }
  return items;
}

geo::Cidr to_cidr(const YAML::Node& v, const std::string& what, const Source& src) {
  const std::string& text = scalar(v, what);
  geo::Cidr c;
  std::string error;
  if (!geo::parse_cidr(text, &c, &error)) fail(v.Mark(), what + ": " + error);
  c.where = src.where(v.Mark());
  return c;
}

void load_geo_databases(const Entry& e, const Source& src, geo::GeoConfig* geo) {
  const MapReader g(e.value, "geo", {"databases"});
  for (const YAML::Node& item : to_list(g.require("databases"), true)) {
    const MapReader d(item, "geo database", {"name", "path"});
    const Entry& name = d.require("name");
    geo::GeoDatabase db;
    db.name = plain_name(name.value, "database name");
    for (const geo::GeoDatabase& other : geo->databases) {
      if (other.name == db.name) fail(name.value.Mark(), "duplicate database " + quoted(db.name));
    }
    const Entry& path = d.require("path");
    db.path = src.path(scalar(path.value, path.what()));
    if (db.path.empty()) fail(path.value.Mark(), "'path' must not be empty");
    db.where = src.where(item.Mark());
    geo->databases.push_back(std::move(db));
  }
}

geo::MmdbMatch load_mmdb_match(const YAML::Node& node, const Source& src,
                               const geo::GeoConfig& geo) {
  const MapReader m(node, "mmdb match", {"database", "field", "values"});
  geo::MmdbMatch match;
  if (const Entry* db = m.find("database")) {
    match.database = scalar(db->value, db->what());
    bool known = false;
    for (const geo::GeoDatabase& d : geo.databases) known |= d.name == match.database;
    if (!known) fail(db->value.Mark(), "unknown geo database " + quoted(match.database));
  } else if (geo.databases.size() == 1) {
    match.database = geo.databases[0].name;
  } else {
    fail(m.mark(), geo.databases.empty()
                       ? std::string("an mmdb match needs a database under 'geo: databases'")
                       : std::string("'database' is required when several are configured"));
  }
  const Entry& field = m.require("field");
  const std::string& path = scalar(field.value, field.what());
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (part.empty()) {
      fail(field.value.Mark(),
           "field path " + quoted(path) + " has an empty component (write e.g. country.iso_code)");
    }
    match.field_path.push_back(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const YAML::Node& v : one_or_list(m.require("values"))) {
    const std::string& value = scalar(v, "mmdb value");
    if (value.empty()) fail(v.Mark(), "mmdb values must not be empty");
    match.values.push_back(value);
  }
  match.where = src.where(node.Mark());
  return match;
}

// A region or an ISP line: the same keys, one name space.
void load_client_set(const YAML::Node& node, geo::ClientSetDef::Kind kind, const Source& src,
                     Clients* clients) {
  const bool isp = kind == geo::ClientSetDef::Kind::kIspLine;
  const char* what = isp ? "ISP line" : "region";
  const MapReader m(node, what, {"name", "mmdb", "cidr", "cidr_files"});
  geo::ClientSetDef set;
  set.kind = kind;
  const Entry& name = m.require("name");
  set.name = plain_name(name.value, std::string(what) + " name");
  if (clients->set(set.name) != snap::kNone) {
    fail(name.value.Mark(), "duplicate region or ISP line " + quoted(set.name) +
                                " (regions and ISP lines share one name space)");
  }
  if (const Entry* e = m.find("mmdb")) {
    if (e->value.IsSequence()) {
      for (const YAML::Node& item : to_list(*e, true)) {
        set.mmdb.push_back(load_mmdb_match(item, src, clients->geo));
      }
    } else {
      set.mmdb.push_back(load_mmdb_match(e->value, src, clients->geo));
    }
  }
  if (const Entry* e = m.find("cidr")) {
    for (const YAML::Node& item : one_or_list(*e)) set.cidrs.push_back(to_cidr(item, "cidr", src));
  }
  if (const Entry* e = m.find("cidr_files")) {
    for (const YAML::Node& item : one_or_list(*e)) {
      const std::string& file = scalar(item, "cidr file");
      if (file.empty()) fail(item.Mark(), "cidr file name must not be empty");
      set.cidr_files.push_back(src.path(file));
    }
  }
  if (set.mmdb.empty() && set.cidrs.empty() && set.cidr_files.empty()) {
    fail(m.mark(), std::string(what) + " " + quoted(set.name) +
                       " needs at least one of 'mmdb', 'cidr', 'cidr_files'");
  }
  set.where = src.where(node.Mark());
  clients->geo.sets.push_back(std::move(set));
}

// A `datacenter:` value: the index of a configured datacenter.
uint32_t to_datacenter(const Entry& e, const Clients& clients) {
  const std::string& name = scalar(e.value, e.what());
  const uint32_t dc = clients.datacenter(name);
  if (dc == snap::kNone) fail(e.value.Mark(), "unknown datacenter " + quoted(name));
  return dc;
}

void load_topology(const Entry& e, const Source& src, Clients* clients) {
  for (const YAML::Node& item : to_list(e, false)) {
    const MapReader m(item, "topology record", {"client", "datacenter", "score"});
    geo::TopologyRecord rec;
    const Entry& client = m.require("client");
    const std::string& text = scalar(client.value, client.what());
    const uint32_t set = clients->set(text);
    if (set != snap::kNone) {
      rec.kind = geo::TopologyRecord::Kind::kSet;
      rec.set = set;
    } else if (text.find('/') != std::string::npos || text.find(':') != std::string::npos ||
               (!text.empty() && text[0] >= '0' && text[0] <= '9')) {
      rec.kind = geo::TopologyRecord::Kind::kCidr;
      rec.cidr = to_cidr(client.value, client.what(), src);
    } else {
      fail(client.value.Mark(), "'client' must be a region, an ISP line or a CIDR block; " +
                                    quoted(text) + " is none of them");
    }
    rec.datacenter = to_datacenter(m.require("datacenter"), *clients);
    const Entry& score = m.require("score");
    rec.score = static_cast<uint16_t>(to_uint(score.value, score.what(), 1, 65535));
    rec.where = src.where(item.Mark());
    clients->geo.topology.push_back(std::move(rec));
  }
}

// The top-level keys about clients. Order in the file does not matter; dependencies do: databases,
// then regions and ISP lines, then datacenters, then the topology table.
Clients load_clients(const MapReader& top, const Source& src) {
  Clients clients;
  if (const Entry* g = top.find("geo")) load_geo_databases(*g, src, &clients.geo);
  if (const Entry* list = top.find("regions")) {
    for (const YAML::Node& item : to_list(*list, false)) {
      load_client_set(item, geo::ClientSetDef::Kind::kRegion, src, &clients);
    }
  }
  if (const Entry* list = top.find("isp_lines")) {
    for (const YAML::Node& item : to_list(*list, false)) {
      load_client_set(item, geo::ClientSetDef::Kind::kIspLine, src, &clients);
    }
  }
  if (const Entry* list = top.find("datacenters")) {
    for (const YAML::Node& item : to_list(*list, false)) {
      const std::string name = plain_name(item, "datacenter name");
      if (clients.datacenter(name) != snap::kNone) {
        fail(item.Mark(), "duplicate datacenter " + quoted(name));
      }
      clients.geo.datacenters.push_back(name);
    }
  }
  if (const Entry* list = top.find("topology")) load_topology(*list, src, &clients);
  return clients;
}

// Steering settings a service passes down to its pools.
struct PoolDefaults {
  const Entry* method = nullptr;       // the service's `method:`, for pools without one
  const Entry* persistence = nullptr;  // the service's `persistence:`
};

const std::initializer_list<std::pair<std::string_view, snap::PoolMethod>> kMethods = {
    {"round-robin", snap::PoolMethod::kRoundRobin},
    {"ratio", snap::PoolMethod::kRatio},
    {"global-availability", snap::PoolMethod::kGlobalAvailability},
    {"random", snap::PoolMethod::kRandom},
    {"return-all", snap::PoolMethod::kReturnAll},
    {"return-n", snap::PoolMethod::kReturnN},
    {"topology", snap::PoolMethod::kTopology},
    {"persistence", snap::PoolMethod::kPersistence},
};

// `method: NAME` or `method: [PREFERRED, ALTERNATE, FALLBACK]` (one to three, no repeats).
void load_method_chain(const Entry& e, PoolModel* pool) {
  const std::vector<YAML::Node> items = one_or_list(e);
  if (items.size() > 3) {
    fail(e.value.Mark(), e.what() + " lists at most three methods: preferred, alternate, fallback");
  }
  std::vector<snap::PoolMethod> chain;
  for (const YAML::Node& item : items) {
    const snap::PoolMethod m =
        to_choice<snap::PoolMethod>(Entry{e.key, e.key_node, item}, kMethods);
    if (std::find(chain.begin(), chain.end(), m) != chain.end()) {
      fail(item.Mark(), "method " + quoted(item.Scalar()) + " appears twice in the chain");
    }
    chain.push_back(m);
  }
  pool->method = chain[0];
  if (chain.size() > 1) pool->alternate = chain[1];
  if (chain.size() > 2) pool->fallback_method = chain[2];
}

void load_persistence(const Entry& e, PoolModel* pool) {
  const MapReader m(e.value, "persistence", {"mask_v4", "mask_v6"});
  pool->persist_v4 = static_cast<uint8_t>(optional_uint(m, "mask_v4", 1, 32, pool->persist_v4));
  pool->persist_v6 = static_cast<uint8_t>(optional_uint(m, "mask_v6", 1, 128, pool->persist_v6));
}

// One configured member before an address service is split by family.
struct ParsedMember {
  int family = 0;  // 4 or 6 for address services, 0 for CNAME targets
  MemberModel model;
};

struct ParsedPool {
  PoolModel pool;  // members are filled per family when the service is split
  std::vector<ParsedMember> members;
};

// `family` is 0 for "either" (an address service without a type), 4, 6, or -1 for CNAME.
// `monitors: [name, ...]` of a pool or member: every name must be a configured monitor.
std::vector<std::string> load_monitor_refs(const Entry& e, const std::vector<MonitorSpec>& known) {
  std::vector<std::string> names;
  for (const YAML::Node& item : to_list(e, false)) {
    const std::string& name = scalar(item, "monitor name");
    bool found = false;
    for (const MonitorSpec& m : known) found |= m.name == name;
    if (!found) fail(item.Mark(), "unknown monitor " + quoted(name));
    names.push_back(name);
  }
  return names;
}

// `monitor_rule: all | any | N`: how many of a member's monitors must be up. 0 means all.
uint32_t load_monitor_rule(const Entry& e) {
  const std::string& text = scalar(e.value, e.what());
  if (text == "all") return 0;
  if (text == "any") return 1;
  return to_uint(e.value, e.what() + " (all, any or a count)", 1, 64);
}

ParsedMember load_member(const YAML::Node& node, int family, const WireName& zone_apex,
                         const std::vector<MonitorSpec>& monitors,
                         const std::vector<std::string>& pool_monitors, uint32_t pool_rule,
                         const Clients& clients, uint32_t pool_datacenter) {
  const MapReader m(node, "member",
                    {"name", "address", "target", "weight", "mode", "enabled", "monitors",
                     "monitor_rule", "datacenter"});
  ParsedMember pm;
  const bool is_cname = family < 0;
  const char* value_key = is_cname ? "target" : "address";
  const char* wrong_key = is_cname ? "address" : "target";
  if (const Entry* e = m.find_key(wrong_key)) {
    fail(e->key_node.Mark(), quoted(wrong_key) + (is_cname ? " is only valid in address services"
                                                           : " is only valid in CNAME services"));
  }
  const Entry& value = m.require(value_key);
  const std::string& value_text = scalar(value.value, value.what());
  if (is_cname) {
    pm.model.rdata = to_name(value.value, value.what(), &zone_apex);
  } else {
    Address a = to_address(value.value, value.what());
    if (family != 0 && a.family != family) {
      fail(value.value.Mark(), "address " + quoted(value_text) + " is IPv" +
                                   std::to_string(a.family) + " but the service type is " +
                                   (family == 4 ? "A" : "AAAA"));
    }
    pm.family = a.family;
    pm.model.rdata = std::move(a.bytes);
  }
  if (const Entry* name = m.find("name")) {
    pm.model.name = scalar(name->value, name->what());
    if (pm.model.name.empty()) fail(name->value.Mark(), "member name must not be empty");
  } else {
    pm.model.name = value_text;
  }
  pm.model.weight = optional_uint(m, "weight", 1, kMaxWeight, 1);
  if (const Entry* mode = m.find("mode")) {
    pm.model.mode =
        to_choice<snap::MemberMode>(*mode, {{"auto", snap::MemberMode::kAuto},
                                            {"always-up", snap::MemberMode::kAlwaysUp},
                                            {"always-down", snap::MemberMode::kAlwaysDown}});
  }
  if (const Entry* enabled = m.find("enabled")) pm.model.enabled = to_bool(*enabled);
  pm.model.monitors = pool_monitors;
  if (const Entry* refs = m.find_key("monitors")) {
    pm.model.monitors = refs->value.IsNull() ? std::vector<std::string>{}
                                             : load_monitor_refs(*refs, monitors);
  }
  pm.model.monitors_needed = pool_rule;
  if (const Entry* rule = m.find("monitor_rule")) pm.model.monitors_needed = load_monitor_rule(*rule);
  if (pm.model.monitors_needed > pm.model.monitors.size()) {
    fail(node.Mark(), "monitor_rule needs " + std::to_string(pm.model.monitors_needed) +
                          " monitors up but the member has " +
                          std::to_string(pm.model.monitors.size()));
  }
  if (is_cname && !pm.model.monitors.empty()) {
    fail(node.Mark(), "monitors probe addresses; CNAME members have none");
  }
  pm.model.datacenter = pool_datacenter;
  if (const Entry* dc = m.find("datacenter")) pm.model.datacenter = to_datacenter(*dc, clients);
  return pm;
}

ParsedPool load_pool(const YAML::Node& node, int family, const WireName& zone_apex,
                     const std::vector<MonitorSpec>& monitors, const Clients& clients,
                     const PoolDefaults& defaults) {
  const MapReader m(node, "pool",
                    {"name", "method", "count", "members", "monitors", "monitor_rule", "datacenter",
                     "persistence"});
  std::vector<std::string> pool_monitors;
  if (const Entry* refs = m.find("monitors")) pool_monitors = load_monitor_refs(*refs, monitors);
  uint32_t pool_rule = 0;
  if (const Entry* rule = m.find("monitor_rule")) pool_rule = load_monitor_rule(*rule);
  ParsedPool p;
  const Entry& name = m.require("name");
  p.pool.name = scalar(name.value, name.what());
  if (p.pool.name.empty()) fail(name.value.Mark(), "pool name must not be empty");
  const Entry* method = m.find("method");
  if (method == nullptr) method = defaults.method;
  if (method != nullptr) load_method_chain(*method, &p.pool);
  const Entry* count = m.find("count");
  if (p.pool.uses(snap::PoolMethod::kReturnN)) {
    if (count == nullptr) fail(m.mark(), "method return-n needs 'count' (1..255)");
    p.pool.return_n = static_cast<uint8_t>(to_uint(count->value, count->what(), 1, 255));
  } else if (count != nullptr) {
    fail(count->key_node.Mark(), "'count' is only valid with method return-n");
  }
  const Entry* persistence = m.find("persistence");
  if (persistence != nullptr && !p.pool.uses(snap::PoolMethod::kPersistence)) {
    fail(persistence->key_node.Mark(), "'persistence' is only valid with method persistence");
  }
  if (persistence == nullptr) persistence = defaults.persistence;
  if (persistence != nullptr) load_persistence(*persistence, &p.pool);
  uint32_t datacenter = snap::kNoDatacenter;
  if (const Entry* dc = m.find("datacenter")) datacenter = to_datacenter(*dc, clients);
  for (const YAML::Node& item : to_list(m.require("members"), true)) {
    ParsedMember member = load_member(item, family, zone_apex, monitors, pool_monitors, pool_rule,
                                      clients, datacenter);
    for (const ParsedMember& other : p.members) {
      if (other.model.name == member.model.name) {
        fail(item.Mark(),
             "duplicate member " + quoted(member.model.name) + " in pool " + quoted(p.pool.name));
      }
    }
    p.members.push_back(std::move(member));
  }
  if (p.pool.uses(snap::PoolMethod::kTopology)) {
    const YAML::Mark at = method != nullptr ? method->value.Mark() : m.mark();
    if (clients.geo.topology.empty()) {
      fail(at, "method topology needs a 'topology' table (records client -> datacenter, score)");
    }
    bool placed = false;
    for (const ParsedMember& pm : p.members) placed |= pm.model.datacenter != snap::kNoDatacenter;
    if (!placed) {
      fail(at, "method topology needs members with a 'datacenter' (on the pool or the members)");
    }
  }
  return p;
}

// The deepest configured zone containing `name`, or null.
const ZoneModel* zone_of(const WireName& name, const std::vector<ZoneModel>& zones) {
  const ZoneModel* best = nullptr;
  for (const ZoneModel& z : zones) {
    if (is_within(name, z.apex) && (best == nullptr || z.apex.size() > best->apex.size()))
      best = &z;
  }
  return best;
}

uint32_t pool_index(const std::vector<ParsedPool>& pools, const std::string& name) {
  for (uint32_t i = 0; i < pools.size(); ++i) {
    if (pools[i].pool.name == name) return i;
  }
  return snap::kNone;
}

// A list of pool names (or one) as a set of pool indexes, in order, without repeats.
std::vector<uint32_t> load_pool_list(const Entry& e, const std::vector<ParsedPool>& pools) {
  std::vector<uint32_t> out;
  for (const YAML::Node& item : one_or_list(e)) {
    const std::string& name = scalar(item, "pool name");
    const uint32_t p = pool_index(pools, name);
    if (p == snap::kNone) fail(item.Mark(), "unknown pool " + quoted(name) + " in this service");
    if (std::find(out.begin(), out.end(), p) != out.end()) {
      fail(item.Mark(), "pool " + quoted(name) + " is listed twice");
    }
    out.push_back(p);
  }
  return out;
}

// The set `pools`, added to `sets` under `name` unless an identical one is there already.
uint32_t add_pool_set(std::vector<PoolSetModel>* sets, std::string name,
                      std::vector<uint32_t> pools) {
  for (uint32_t i = 0; i < sets->size(); ++i) {
    if ((*sets)[i].pools == pools) return i;
  }
  sets->push_back({std::move(name), std::move(pools)});
  return static_cast<uint32_t>(sets->size() - 1);
}

// A rule's `primary` or `secondary`: a pool set's name, a pool's name (the set of that one pool),
// or a list of pool names.
uint32_t load_set_ref(const Entry& e, const std::vector<ParsedPool>& pools,
                      std::vector<PoolSetModel>* sets, size_t named_sets) {
  if (e.value.IsScalar()) {
    const std::string& name = e.value.Scalar();
    for (uint32_t i = 0; i < named_sets; ++i) {
      if ((*sets)[i].name == name) return i;
    }
    const uint32_t p = pool_index(pools, name);
    if (p == snap::kNone) {
      fail(e.value.Mark(), "unknown pool set or pool " + quoted(name) + " in this service");
    }
    return add_pool_set(sets, name, {p});
  }
  std::vector<uint32_t> list = load_pool_list(e, pools);
  std::string name;
  for (uint32_t p : list) name += (name.empty() ? "" : "+") + pools[p].pool.name;
  return add_pool_set(sets, name, std::move(list));
}

// `pool_sets`, `access_policy` and `switch_policy` of a service.
void load_steering(const MapReader& m, const std::vector<ParsedPool>& pools, const Clients& clients,
                   ServiceModel* svc) {
  if (const Entry* e = m.find("pool_sets")) {
    if (!e->value.IsMap()) {
      fail(e->value.Mark(), "'pool_sets' must be a map: set name -> list of pool names");
    }
    if (m.find("access_policy") == nullptr) {
      fail(e->key_node.Mark(), "'pool_sets' are used by 'access_policy' rules, which are missing");
    }
    for (auto it = e->value.begin(); it != e->value.end(); ++it) {
      const std::string name = plain_name(it->first, "pool set name");
      for (const PoolSetModel& other : svc->pool_sets) {
        if (other.name == name) fail(it->first.Mark(), "duplicate pool set " + quoted(name));
      }
      if (pool_index(pools, name) != snap::kNone) {
        fail(it->first.Mark(), "pool set " + quoted(name) + " has the name of a pool");
      }
      svc->pool_sets.push_back({name, load_pool_list(Entry{name, it->first, it->second}, pools)});
    }
  }
  const size_t named_sets = svc->pool_sets.size();
  if (const Entry* e = m.find("access_policy")) {
    const YAML::Node& list = to_list(*e, true);
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const MapReader r(item, "access_policy rule", {"regions", "primary", "secondary"});
      RuleModel rule;
      if (const Entry* regions = r.find("regions")) {
        for (const YAML::Node& v : one_or_list(*regions)) {
          const std::string& name = scalar(v, "region");
          const uint32_t set = clients.set(name);
          if (set == snap::kNone) fail(v.Mark(), "unknown region or ISP line " + quoted(name));
          if (std::find(rule.client_sets.begin(), rule.client_sets.end(), set) !=
              rule.client_sets.end()) {
            fail(v.Mark(), quoted(name) + " is listed twice");
          }
          rule.client_sets.push_back(set);
        }
      } else if (i + 1 != list.size()) {
        fail(item.Mark(), "a rule without 'regions' is the default rule and must be the last");
      }
      rule.primary = load_set_ref(r.require("primary"), pools, &svc->pool_sets, named_sets);
      if (const Entry* sec = r.find("secondary")) {
        rule.secondary = load_set_ref(*sec, pools, &svc->pool_sets, named_sets);
        if (rule.secondary == rule.primary) {
          fail(sec->value.Mark(), "the secondary set is the primary set");
        }
      }
      svc->rules.push_back(std::move(rule));
    }
    if (!svc->rules.back().client_sets.empty()) {
      // No default rule written: every other client gets what a plain service gives, all pools.
      std::vector<uint32_t> all;
      for (uint32_t p = 0; p < pools.size(); ++p) all.push_back(p);
      RuleModel fallback_rule;
      fallback_rule.primary = add_pool_set(&svc->pool_sets, "all pools", std::move(all));
      svc->rules.push_back(std::move(fallback_rule));
    }
  }
  if (const Entry* e = m.find("switch_policy")) {
    const MapReader sp(e->value, "switch_policy",
                       {"min_members", "min_percent", "failback", "hold_down_s"});
    SwitchPolicy& pol = svc->switch_policy;
    pol.min_members = optional_uint(sp, "min_members", 0, 65535, pol.min_members);
    pol.min_percent = optional_uint(sp, "min_percent", 0, 100, pol.min_percent);
    if (const Entry* fb = sp.find("failback")) {
      pol.hold_down = to_choice<bool>(*fb, {{"preemptive", false}, {"hold-down", true}});
    }
    const Entry* hold = sp.find("hold_down_s");
    if (hold != nullptr && !pol.hold_down) {
      fail(hold->key_node.Mark(), "'hold_down_s' is only valid with failback: hold-down");
    }
    if (pol.hold_down) pol.hold_down_s = optional_uint(sp, "hold_down_s", 1, 86400, 60);
  }
}

void load_service(const YAML::Node& node, SnapshotModel* model, std::vector<WireName>* seen_names,
                  const std::vector<MonitorSpec>& monitors, const Clients& clients) {
  const MapReader m(node, "service",
                    {"name", "type", "ttl", "pools", "fallback", "when_empty", "unstable_ttl",
                     "unstable_window_ms", "ecs", "method", "persistence", "pool_sets",
                     "access_policy", "switch_policy"});
  const Entry& name = m.require("name");
  const WireName wire_name = to_name(name.value, "service name", nullptr);
  if (std::find(seen_names->begin(), seen_names->end(), wire_name) != seen_names->end())
    fail(name.value.Mark(), "duplicate service " + quoted(name.value.Scalar()));
  seen_names->push_back(wire_name);
  const ZoneModel* zone = zone_of(wire_name, model->zones);
  if (zone == nullptr) {
    fail(name.value.Mark(),
         "service " + quoted(name.value.Scalar()) + " is not inside any configured zone");
  }

  // family: 0 = address service answering A and AAAA, 4 = A only, 6 = AAAA only, -1 = CNAME.
  int family = 0;
  if (const Entry* type = m.find("type")) {
    const std::string t = upper(scalar(type->value, type->what()));
    if (t == "A") {
      family = 4;
    } else if (t == "AAAA") {
      family = 6;
    } else if (t == "CNAME") {
      family = -1;
    } else {
      fail(type->value.Mark(),
           "service type must be A, AAAA or CNAME (or omitted for an address "
           "service answering both A and AAAA), got " +
               quoted(type->value.Scalar()));
    }
  }

  ServiceModel base;
  base.name = wire_name;
  base.ttl = to_ttl(m.require("ttl"));
  if (const Entry* when_empty = m.find("when_empty")) {
    base.empty_action =
        to_choice<snap::EmptyAction>(*when_empty, {{"nodata", snap::EmptyAction::kNodata},
                                                   {"servfail", snap::EmptyAction::kServfail},
                                                   {"return-all", snap::EmptyAction::kReturnAll},
                                                   {"drop", snap::EmptyAction::kDrop}});
  }
  if (const Entry* ecs = m.find("ecs")) base.use_ecs = to_bool(*ecs);

  PoolDefaults defaults;
  defaults.method = m.find("method");
  defaults.persistence = m.find("persistence");
  std::vector<ParsedPool> pools;
  for (const YAML::Node& item : to_list(m.require("pools"), true)) {
    ParsedPool pool = load_pool(item, family, zone->apex, monitors, clients, defaults);
    for (const ParsedPool& other : pools) {
      if (other.pool.name == pool.pool.name)
        fail(item.Mark(), "duplicate pool " + quoted(pool.pool.name) + " in service");
    }
    pools.push_back(std::move(pool));
  }
  if (defaults.persistence != nullptr &&
      std::none_of(pools.begin(), pools.end(), [](const ParsedPool& p) {
        return p.pool.uses(snap::PoolMethod::kPersistence);
      })) {
    fail(defaults.persistence->key_node.Mark(),
         "'persistence' is only valid when a pool uses method persistence");
  }
  load_steering(m, pools, clients, &base);

  std::optional<WireRdata> fallback4, fallback6, fallback_cname;
  if (const Entry* fb = m.find("fallback")) {
    if (family < 0) {
      fallback_cname = to_name(fb->value, fb->what(), &zone->apex);
    } else {
      std::vector<YAML::Node> items;
      if (fb->value.IsSequence()) {
        for (const YAML::Node& item : fb->value) items.push_back(item);
        if (items.empty() || items.size() > 2) {
          fail(fb->value.Mark(),
               "'fallback' must be one address, or a list of at most one IPv4 "
               "and one IPv6 address");
        }
      } else {
        items.push_back(fb->value);
      }
      for (const YAML::Node& item : items) {
        Address a = to_address(item, "'fallback'");
        if (family != 0 && a.family != family) {
          fail(item.Mark(), "fallback " + quoted(item.Scalar()) + " is IPv" +
                                std::to_string(a.family) + " but the service type is " +
                                (family == 4 ? "A" : "AAAA"));
        }
        std::optional<WireRdata>& slot = a.family == 4 ? fallback4 : fallback6;
        if (slot) {
          fail(item.Mark(), "'fallback' has two IPv" + std::to_string(a.family) + " addresses");
        }
        slot = std::move(a.bytes);
      }
    }
  }

  // Emits one ServiceModel holding the members of `member_family` (0 = all of them).
  auto emit = [&](uint16_t rtype, int member_family, std::optional<WireRdata> fallback) {
    ServiceModel s = base;
    s.rtype = rtype;
    s.fallback = std::move(fallback);
    for (const ParsedPool& p : pools) {
      PoolModel pool = p.pool;
      for (const ParsedMember& pm : p.members) {
        if (member_family == 0 || pm.family == member_family) pool.members.push_back(pm.model);
      }
      s.pools.push_back(std::move(pool));
    }
    model->services.push_back(std::move(s));
  };
  if (family < 0) {
    emit(dns::kTypeCNAME, 0, std::move(fallback_cname));
    return;
  }
  auto has_family = [&](int f) {
    for (const ParsedPool& p : pools) {
      for (const ParsedMember& pm : p.members) {
        if (pm.family == f) return true;
      }
    }
    return false;
  };
  // A family is answered when some member has it, or the fallback does (the operator then asked
  // for that answer explicitly).
  if (has_family(4) || fallback4) emit(dns::kTypeA, 4, std::move(fallback4));
  if (has_family(6) || fallback6) emit(dns::kTypeAAAA, 6, std::move(fallback6));
}

std::vector<WebhookConfig> load_alerts(const Entry& alerts) {
  std::vector<WebhookConfig> hooks;
  const MapReader a(alerts.value, "alerts", {"webhooks"});
  if (const Entry* list = a.find("webhooks")) {
    for (const YAML::Node& item : to_list(*list, false)) {
      const MapReader h(item, "webhook", {"url", "timeout_ms", "retries"});
      const Entry& url = h.require("url");
      WebhookConfig w;
      w.url = scalar(url.value, url.what());
      if (w.url.rfind("http://", 0) != 0 && w.url.rfind("https://", 0) != 0) {
        fail(url.value.Mark(), url.what() + " must start with http:// or https://");
      }
      w.timeout_ms = optional_uint(h, "timeout_ms", 10, 60000, w.timeout_ms);
      w.retries = optional_uint(h, "retries", 0, 10, w.retries);
      hooks.push_back(std::move(w));
    }
  }
  return hooks;
}

// "200", "200-399" or a list of those.
std::vector<std::pair<uint16_t, uint16_t>> load_status_ranges(const Entry& e) {
  std::vector<YAML::Node> items;
  if (e.value.IsSequence()) {
    for (const YAML::Node& n : e.value) items.push_back(n);
  } else {
    items.push_back(e.value);
  }
  std::vector<std::pair<uint16_t, uint16_t>> ranges;
  for (const YAML::Node& n : items) {
    const std::string& text = scalar(n, e.what());
    const size_t dash = text.find('-');
    auto code = [&](const std::string& t) {
      bool ok = !t.empty() && t.size() <= 3;
      for (char c : t) ok &= c >= '0' && c <= '9';
      const int value = ok ? std::stoi(t) : 0;
      if (value < 100 || value > 599) {
        fail(n.Mark(), e.what() + ": " + quoted(text) + " is not a status code or range (100..599)");
      }
      return static_cast<uint16_t>(value);
    };
    const uint16_t lo = code(text.substr(0, dash));
    const uint16_t hi = dash == std::string::npos ? lo : code(text.substr(dash + 1));
    if (hi < lo) fail(n.Mark(), e.what() + ": empty range " + quoted(text));
    ranges.emplace_back(lo, hi);
  }
  if (ranges.empty()) fail(e.value.Mark(), e.what() + " must not be empty");
  return ranges;
}

// dns monitors: the query is built once here; the prober sends it as it is.
void load_dns_query(const MapReader& m, MonitorSpec* spec) {
  const Entry& qname = m.require("query_name");
  const WireName root = {0};
  const WireName name = to_name(qname.value, qname.what(), &root);
  uint16_t qtype = 1;  // A
  if (const Entry* t = m.find("query_type")) {
    const std::string text = upper(scalar(t->value, t->what()));
    qtype = static_cast<uint16_t>(ldns_get_rr_type_by_name(text.c_str()));
    if (qtype == 0) fail(t->value.Mark(), "unknown query_type " + quoted(text));
  }
  if (const Entry* r = m.find("expect_rcode")) {
    spec->expect_rcode = to_choice<uint8_t>(
        *r, {{"NOERROR", 0}, {"FORMERR", 1}, {"SERVFAIL", 2}, {"NXDOMAIN", 3}, {"NOTIMP", 4},
             {"REFUSED", 5}});
  }
  if (const Entry* a = m.find("expect_address")) {
    spec->expect_address = to_address(a->value, a->what()).bytes;
  }
  // ID 0x6774 ("gt"), RD clear, one question, class IN. Each probe uses a fresh socket, so a
  // fixed ID is safe: the reply must come back to that socket's own port.
  std::string q = {'\x67', '\x74', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  q.append(name.begin(), name.end());
  q += static_cast<char>(qtype >> 8);
  q += static_cast<char>(qtype & 0xFF);
  q += std::string("\x00\x01", 2);
  spec->send = std::move(q);
}

std::vector<MonitorSpec> load_monitors(const Entry& list) {
  std::vector<MonitorSpec> out;
  for (const YAML::Node& item : to_list(list, false)) {
    const MapReader m(
        item, "monitor",
        {"name",           "type",    "port",          "interval_ms",     "timeout_ms",
         "rise",           "fall",    "send",          "expect",          "method",
         "path",           "host",    "expect_status", "body_contains",   "sni",
         "verify",         "ca_file", "query_name",    "query_type",      "expect_rcode",
         "expect_address", "command", "count",         "max_loss_percent"});
    MonitorSpec spec;
    const Entry& name = m.require("name");
    spec.name = scalar(name.value, name.what());
    if (spec.name.empty()) fail(name.value.Mark(), "monitor name must not be empty");
    for (const MonitorSpec& other : out) {
      if (other.name == spec.name) fail(name.value.Mark(), "duplicate monitor " + quoted(spec.name));
    }
    spec.type = to_choice<MonitorSpec::Type>(m.require("type"),
                                             {{"tcp", MonitorSpec::Type::kTcp},
                                              {"http", MonitorSpec::Type::kHttp},
                                              {"https", MonitorSpec::Type::kHttps},
                                              {"udp", MonitorSpec::Type::kUdp},
                                              {"dns", MonitorSpec::Type::kDns},
                                              {"external", MonitorSpec::Type::kExternal},
                                              {"icmp", MonitorSpec::Type::kIcmp},
                                              {"tcp-half-open", MonitorSpec::Type::kTcpHalfOpen}});
    const bool external = spec.type == MonitorSpec::Type::kExternal;
    const bool icmp = spec.type == MonitorSpec::Type::kIcmp;
    if (const Entry* e = m.find_key("command"); e != nullptr && !external) {
      fail(e->key_node.Mark(), "'command' is only valid for external monitors");
    }
    for (const char* key : {"count", "max_loss_percent"}) {
      if (const Entry* e = m.find_key(key); e != nullptr && !icmp) {
        fail(e->key_node.Mark(), quoted(key) + " is only valid for icmp monitors");
      }
    }
    if (icmp) {
      // count is bounded by the prober's reply bitmap (64 bits).
      spec.count = optional_uint(m, "count", 1, 64, spec.count);
      spec.max_loss_percent = optional_uint(m, "max_loss_percent", 0, 99, spec.max_loss_percent);
      if (const Entry* e = m.find_key("port")) {
        fail(e->key_node.Mark(), "'port' is not valid for icmp monitors (an echo has no port)");
      }
    } else if (external) {
      // The port is optional here: it is only passed on to the command.
      spec.port = static_cast<uint16_t>(optional_uint(m, "port", 0, 65535, 0));
      const Entry& command = m.require("command");
      for (const YAML::Node& arg : to_list(command, true)) {
        spec.command.push_back(scalar(arg, "command argument"));
      }
      if (spec.command[0].empty() || spec.command[0][0] != '/') {
        fail(command.value.Mark(), "'command' must start with an absolute program path");
      }
    } else {
      const Entry& port = m.require("port");
      spec.port = static_cast<uint16_t>(to_uint(port.value, port.what(), 1, 65535));
    }
    spec.interval_ms = optional_uint(m, "interval_ms", 100, 3600000, spec.interval_ms);
    spec.timeout_ms = optional_uint(m, "timeout_ms", 10, 3600000,
                                    std::min(spec.timeout_ms, spec.interval_ms * 4 / 5));
    if (spec.timeout_ms >= spec.interval_ms) {
      fail(m.find("timeout_ms")->value.Mark(), "'timeout_ms' must be less than 'interval_ms'");
    }
    spec.rise = optional_uint(m, "rise", 1, 100, spec.rise);
    spec.fall = optional_uint(m, "fall", 1, 100, spec.fall);
    const bool http =
        spec.type == MonitorSpec::Type::kHttp || spec.type == MonitorSpec::Type::kHttps;
    const bool https = spec.type == MonitorSpec::Type::kHttps;
    const bool dns_type = spec.type == MonitorSpec::Type::kDns;
    for (const char* key : {"query_name", "query_type", "expect_rcode", "expect_address"}) {
      if (const Entry* e = m.find_key(key); e != nullptr && !dns_type) {
        fail(e->key_node.Mark(), quoted(key) + " is only valid for dns monitors");
      }
    }
    if (dns_type) load_dns_query(m, &spec);
    for (const char* key : {"sni", "verify", "ca_file"}) {
      if (const Entry* e = m.find_key(key); e != nullptr && !https) {
        fail(e->key_node.Mark(), quoted(key) + " is only valid for https monitors");
      }
    }
    if (const Entry* e = m.find("sni")) spec.sni = scalar(e->value, e->what());
    if (const Entry* e = m.find("verify")) spec.verify = to_bool(*e);
    if (const Entry* e = m.find("ca_file")) spec.ca_file = scalar(e->value, e->what());
    for (const char* key : {"send", "expect"}) {
      if (const Entry* e = m.find_key(key); e != nullptr && spec.type != MonitorSpec::Type::kTcp &&
                                            spec.type != MonitorSpec::Type::kUdp) {
        fail(e->key_node.Mark(), quoted(key) + " is only valid for tcp and udp monitors");
      }
    }
    if (spec.type == MonitorSpec::Type::kUdp && m.find("send") == nullptr) {
      fail(m.mark(), "udp monitors need 'send' (the datagram to send)");
    }
    for (const char* key : {"method", "path", "host", "expect_status", "body_contains"}) {
      if (const Entry* e = m.find_key(key); e != nullptr && !http) {
        fail(e->key_node.Mark(), quoted(key) + " is only valid for http and https monitors");
      }
    }
    if (const Entry* e = m.find("send")) spec.send = scalar(e->value, e->what());
    if (const Entry* e = m.find("expect")) spec.expect = scalar(e->value, e->what());
    if (const Entry* e = m.find("method")) spec.method = scalar(e->value, e->what());
    if (const Entry* e = m.find("path")) {
      spec.path = scalar(e->value, e->what());
      if (spec.path.empty() || spec.path[0] != '/') fail(e->value.Mark(), "'path' must start with /");
    }
    if (const Entry* e = m.find("host")) spec.host = scalar(e->value, e->what());
    if (const Entry* e = m.find("expect_status")) spec.status_ranges = load_status_ranges(*e);
    if (const Entry* e = m.find("body_contains")) spec.body_contains = scalar(e->value, e->what());
    // They go into the request line and headers verbatim: no way to smuggle a second line in.
    if (spec.method.empty() || spec.method.find_first_of("\r\n ") != std::string::npos ||
        spec.path.find_first_of("\r\n ") != std::string::npos ||
        spec.host.find_first_of("\r\n") != std::string::npos) {
      fail(m.mark(), "http 'method', 'path' and 'host' must not contain line breaks (nor spaces, "
                     "for method and path)");
    }
    out.push_back(std::move(spec));
  }
  return out;
}

SnapshotModel load_model(const YAML::Node& root, const Source& src,
                         std::vector<WebhookConfig>* webhooks, std::vector<MonitorSpec>* monitors,
                         geo::GeoConfig* geo_out) {
  const MapReader top(root, "top-level map",
                      {"options", "zones", "services", "alerts", "monitors", "geo", "regions",
                       "isp_lines", "datacenters", "topology"});
  if (const Entry* alerts = top.find("alerts")) *webhooks = load_alerts(*alerts);
  if (const Entry* list = top.find("monitors")) *monitors = load_monitors(*list);
  SnapshotModel model;
  if (const Entry* options = top.find("options")) {
    const MapReader o(options->value, "options",
                      {"unknown_health", "unstable_ttl", "unstable_window_ms",
                       "ecs_max_prefix_v4", "ecs_max_prefix_v6"});
    if (const Entry* uh = o.find("unknown_health"))
      model.unknown_health_is_up = to_choice<bool>(*uh, {{"up", true}, {"down", false}});
    model.ecs_max_v4 = static_cast<uint8_t>(optional_uint(o, "ecs_max_prefix_v4", 1, 32, 24));
    model.ecs_max_v6 = static_cast<uint8_t>(optional_uint(o, "ecs_max_prefix_v6", 1, 128, 56));
  }
  const Clients clients = load_clients(top, src);
  for (const geo::ClientSetDef& set : clients.geo.sets) {
    model.client_sets.push_back(set.name);
    model.client_set_is_isp_line.push_back(set.kind == geo::ClientSetDef::Kind::kIspLine);
  }
  model.datacenters = clients.geo.datacenters;
  for (const YAML::Node& item : to_list(top.require("zones"), true)) {
    model.zones.push_back(load_zone(item, model.zones));
  }
  if (const Entry* services = top.find("services")) {
    std::vector<WireName> seen_names;
    for (const YAML::Node& item : to_list(*services, false)) {
      load_service(item, &model, &seen_names, *monitors, clients);
    }
  }
  *geo_out = clients.geo;
  return model;
}

// `unstable_ttl` / `unstable_window_ms` of each service, defaulting to those of `options`. Runs
// after load_model, which has checked every key, so it reads the nodes directly. Services without
// an unstable_ttl get no entry.
std::map<WireName, UnstableTtl> load_unstable_ttl(const YAML::Node& root) {
  struct Setting {
    std::optional<uint32_t> ttl, window_ms;
    YAML::Mark window_mark;
  };
  auto read = [](const YAML::Node& map, Setting* s) {
    if (!map.IsMap()) return;
    if (const YAML::Node v = map["unstable_ttl"]; v && !v.IsNull()) {
      s->ttl = to_uint(v, "'unstable_ttl'", 0, kMaxTtl);
    }
    if (const YAML::Node v = map["unstable_window_ms"]; v && !v.IsNull()) {
      s->window_ms = to_uint(v, "'unstable_window_ms'", 1000, 86400000);
      s->window_mark = v.Mark();
    }
  };
  Setting defaults;
  if (const YAML::Node options = root["options"]) read(options, &defaults);
  if (defaults.window_ms && !defaults.ttl) {
    fail(defaults.window_mark, "'unstable_window_ms' needs 'unstable_ttl'");
  }
  std::map<WireName, UnstableTtl> out;
  const YAML::Node services = root["services"];
  if (!services || !services.IsSequence()) return out;
  for (const YAML::Node& svc : services) {
    Setting s = defaults;
    read(svc, &s);
    if (!s.ttl) {
      if (s.window_ms) fail(s.window_mark, "'unstable_window_ms' needs 'unstable_ttl'");
      continue;
    }
    UnstableTtl policy;
    policy.ttl = *s.ttl;
    policy.window_ms = s.window_ms.value_or(policy.window_ms);
    out[to_name(svc["name"], "service name", nullptr)] = policy;
  }
  return out;
}

// Records where each document starts; the events themselves are not needed.
class DocumentStarts : public YAML::EventHandler {
 public:
  YAML::Mark last_start;

  void OnDocumentStart(const YAML::Mark& mark) override { last_start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Rejects input with more than one document. YAML::LoadAll is not used: yaml-cpp 0.7 loops forever
// (allocating a null document per turn) on a stray ',' where a node should start (upstream issue
// jbeder/yaml-cpp#1040), so the parser is driven here for at most three documents, and a third
// document starting where the second did is that stuck state, reported as a syntax error.
void check_single_document(const std::string& yaml) {
  std::istringstream stream(yaml);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  if (!parser.HandleNextDocument(starts)) return;
  if (!parser.HandleNextDocument(starts)) return;
  const YAML::Mark second = starts.last_start;
  if (parser.HandleNextDocument(starts) && starts.last_start.pos == second.pos) {
    const bool printable = second.pos >= 0 && static_cast<size_t>(second.pos) < yaml.size() &&
                           static_cast<unsigned char>(yaml[second.pos]) >= 0x20;
    fail(second, printable ? "syntax error: unexpected " + quoted(yaml.substr(second.pos, 1))
                           : std::string("syntax error"));
  }
  fail(second, "only one YAML document is allowed in a configuration file");
}

void set_error(ConfigError* err, const std::string& file, const YAML::Mark& mark,
               std::string message) {
  err->file = file;
  // A null mark (-1) only comes from nodes without a source position: point at the start.
  err->line = mark.line >= 0 ? mark.line + 1 : 1;
  err->column = mark.column >= 0 ? mark.column + 1 : 1;
  err->message = std::move(message);
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

bool name_from_text(const std::string& text, const WireName& origin, WireName* out,
                    std::string* error) {
  return parse_name(text, &origin, out, error);
}

bool load_config_string(const std::string& yaml, const std::string& name_for_errors,
                        LoadedConfig* out, ConfigError* err) {
  try {
    const YAML::Node root = YAML::Load(yaml);
    check_single_document(yaml);
    if (root.IsNull()) fail(root.Mark(), "configuration is empty");
    LoadedConfig loaded;
    const Source src{name_for_errors, directory_of(name_for_errors)};
    loaded.model = load_model(root, src, &loaded.webhooks, &loaded.monitors, &loaded.geo);
    loaded.unstable_ttl = load_unstable_ttl(root);
    loaded.path = name_for_errors;
    *out = std::move(loaded);
    return true;
  } catch (const LoadError& e) {
    set_error(err, name_for_errors, e.mark, e.message);
  } catch (const YAML::Exception& e) {
    set_error(err, name_for_errors, e.mark, e.msg);
  } catch (const std::exception& e) {
    *err = ConfigError{name_for_errors, 0, 0, e.what()};
  } catch (...) {
    *err = ConfigError{name_for_errors, 0, 0, "unexpected error while loading"};
  }
  return false;
}

bool load_config_file(const std::string& path, LoadedConfig* out, ConfigError* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = ConfigError{path, 0, 0, std::string("cannot open: ") + std::strerror(errno)};
    return false;
  }
  std::string text;
  std::string problem;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    problem = std::string("cannot stat: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (static_cast<uint64_t>(st.st_size) > kMaxFileSize) {
    problem = "file is larger than 64 MiB";
  } else {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = std::string("cannot read: ") + std::strerror(errno);
        break;
      }
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxFileSize) {
        problem = "file is larger than 64 MiB";
        break;
      }
    }
  }
  ::close(fd);
  if (!problem.empty()) {
    *err = ConfigError{path, 0, 0, problem};
    return false;
  }
  return load_config_string(text, path, out, err);
}

}  // namespace gtm::control
