// Geo compilation (control/geo/geo_compiler.h): MaxMind databases checked against their JSON
// sources and against libmaxminddb's own lookups, CIDR lists and files, topology records, classes,
// change detection, and refusal of every broken input.
#include "control/geo/geo_compiler.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <maxminddb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/geo/lpm_builder.h"
#include "dataplane/geo/lpm.h"
#include "tests/control/geo/mmdb_writer.h"

namespace {

namespace geo = gtm::control::geo;
using geo::u128;
using gtm::testing::MmdbWriter;

const std::string kGeoDir = GTM_SOURCE_DIR "/../shared/geo";

#if defined(__SANITIZE_ADDRESS__)
constexpr int kSanitized = 1;
#else
constexpr int kSanitized = 0;
#endif

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    out.push_back(path.substr(pos, dot - pos));
    if (dot == std::string::npos) return out;
    pos = dot + 1;
  }
}

geo::MmdbMatch match(const std::string& db, const std::string& path,
                     std::vector<std::string> values) {
  geo::MmdbMatch m;
  m.database = db;
  m.field_path = split_path(path);
  m.values = std::move(values);
  m.where = "test.yaml:1:1";
  return m;
}

geo::ClientSetDef mmdb_set(const std::string& name, geo::MmdbMatch m) {
  geo::ClientSetDef s;
  s.name = name;
  s.mmdb.push_back(std::move(m));
  return s;
}

geo::Cidr cidr(const std::string& text) {
  geo::Cidr c;
  std::string error;
  EXPECT_TRUE(geo::parse_cidr(text, &c, &error)) << text << ": " << error;
  return c;
}

geo::ClientSetDef cidr_set(const std::string& name, std::vector<std::string> cidrs) {
  geo::ClientSetDef s;
  s.name = name;
  for (const auto& c : cidrs) s.cidrs.push_back(cidr(c));
  return s;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gtm_geo_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary | std::ios::trunc) << text;
    return file(name);
  }

 private:
  std::string path_;
};

// A compiled configuration with validated views and lookups that return set names.
struct Result {
  geo::CompiledGeo g;
  gtm::geo::Lpm4View v4;
  gtm::geo::Lpm6View v6;

  std::set<std::string> sets_of(uint32_t cls) const {
    std::set<std::string> out;
    for (uint32_t i = g.class_set_first[cls]; i < g.class_set_first[cls + 1]; ++i) {
      out.insert(g.set_names[g.class_sets[i]]);
    }
    return out;
  }
  gtm::geo::LpmMatch match4(const std::string& a) const {
    in_addr x;
    EXPECT_EQ(inet_pton(AF_INET, a.c_str(), &x), 1) << a;
    return v4.lookup(ntohl(x.s_addr));
  }
  gtm::geo::LpmMatch match6(const std::string& a) const {
    uint8_t x[16];
    EXPECT_EQ(inet_pton(AF_INET6, a.c_str(), x), 1) << a;
    return v6.lookup(x);
  }
  std::set<std::string> sets4(const std::string& a) const { return sets_of(match4(a).value); }
  std::set<std::string> sets6(const std::string& a) const { return sets_of(match6(a).value); }
  uint16_t score4(const std::string& a, uint32_t dc) const {
    return g.topology_scores[match4(a).value * g.datacenter_names.size() + dc];
  }
};

void compile_ok(const geo::GeoConfig& cfg, Result* r) {
  std::string error;
  ASSERT_TRUE(geo::compile_geo(cfg, &r->g, &error)) << error;
  ASSERT_TRUE(r->v4.validate(r->g.lpm4.data(), r->g.lpm4.size(), r->g.class_count, &error))
      << error;
  ASSERT_TRUE(r->v6.validate(r->g.lpm6.data(), r->g.lpm6.size(), r->g.class_count, &error))
      << error;
  ASSERT_EQ(r->g.class_set_first.size(), r->g.class_count + 1);
  ASSERT_EQ(r->g.topology_scores.size(), r->g.class_count * r->g.datacenter_names.size());
}

std::string compile_error(const geo::GeoConfig& cfg) {
  geo::CompiledGeo out;
  out.set_names = {"sentinel"};
  std::string error;
  EXPECT_FALSE(geo::compile_geo(cfg, &out, &error));
  // A failed compilation leaves the previous result alone.
  EXPECT_EQ(out.set_names, std::vector<std::string>{"sentinel"});
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

geo::GeoConfig one_db(const std::string& path, const std::string& field,
                      std::vector<std::pair<std::string, std::string>> sets) {
  geo::GeoConfig cfg;
  cfg.databases.push_back({"db", path, "test.yaml:2:3"});
  for (const auto& [name, value] : sets)
    cfg.sets.push_back(mmdb_set(name, match("db", field, {value})));
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// parse_cidr and CIDR files.

TEST(ParseCidr, AcceptsNetworksAndBareAddresses) {
  geo::Cidr c;
  std::string error;
  ASSERT_TRUE(geo::parse_cidr("175.16.199.0/24", &c, &error)) << error;
  EXPECT_EQ(c.family, 4);
  EXPECT_EQ(c.prefix_len, 24);
  EXPECT_EQ(c.addr[0], 175);
  EXPECT_EQ(c.addr[2], 199);
  ASSERT_TRUE(geo::parse_cidr("2001:250::/31", &c, &error)) << error;
  EXPECT_EQ(c.family, 6);
  EXPECT_EQ(c.prefix_len, 31);
  EXPECT_EQ(c.addr[1], 0x01);
  EXPECT_EQ(c.addr[2], 0x02);
  ASSERT_TRUE(geo::parse_cidr("192.0.2.1", &c, &error));
  EXPECT_EQ(c.prefix_len, 32);
  ASSERT_TRUE(geo::parse_cidr("::1", &c, &error));
  EXPECT_EQ(c.prefix_len, 128);
  ASSERT_TRUE(geo::parse_cidr("0.0.0.0/0", &c, &error));
  ASSERT_TRUE(geo::parse_cidr("::/0", &c, &error));
  ASSERT_TRUE(geo::parse_cidr("::ffff:192.0.2.0/120", &c, &error));
  EXPECT_EQ(c.family, 6);
}

TEST(ParseCidr, RefusesWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"10.0.0.0/33", "bad prefix length /33"},
      {"2001:db8::/129", "bad prefix length /129"},
      {"10.0.0.0/", "bad prefix length /"},
      {"10.0.0.0/-1", "bad prefix length /-1"},
      {"10.0.0.0/8a", "bad prefix length /8a"},
      {"10.0.0.0/0008", "bad prefix length /0008"},
      {"10.1.0.0/8", "address bits past /8 are not zero"},
      {"2001:db8::1/64", "the network is 2001:db8::/64"},
      {"10.0.0/8", "bad IPv4 address '10.0.0'"},
      {"10.0.0.256", "bad IPv4 address"},
      {"010.0.0.1", "bad IPv4 address"},
      {"2001:db8::g/32", "bad IPv6 address"},
      {" 10.0.0.0/8", "bad IPv4 address"},
      {"", "empty address"},
      {"/8", "empty address"},
  };
  for (const auto& [text, reason] : cases) {
    geo::Cidr c;
    std::string error;
    EXPECT_FALSE(geo::parse_cidr(text, &c, &error)) << text;
    EXPECT_NE(error.find(reason), std::string::npos) << text << " -> " << error;
  }
  geo::Cidr c;
  std::string error;
  EXPECT_FALSE(geo::parse_cidr(std::string("10.0.0.0\0/8", 11), &c, &error));
}

TEST(CidrFiles, CommentsBlankLinesAndCrlf) {
  TempDir dir;
  const std::string path = dir.write("corp.txt",
                                     "# corporate networks\n"
                                     "\n"
                                     "10.0.0.0/8   # the big one\r\n"
                                     "  192.0.2.0/24\t\n"
                                     "2001:db8::/32\n"
                                     "198.51.100.7");  // no final newline
  geo::GeoConfig cfg;
  geo::ClientSetDef s;
  s.name = "corp";
  s.cidr_files.push_back(path);
  cfg.sets.push_back(s);
  Result r;
  compile_ok(cfg, &r);
  EXPECT_EQ(r.sets4("10.200.1.1"), std::set<std::string>{"corp"});
  EXPECT_EQ(r.sets4("192.0.2.200"), std::set<std::string>{"corp"});
  EXPECT_EQ(r.sets4("198.51.100.7"), std::set<std::string>{"corp"});
  EXPECT_TRUE(r.sets4("198.51.100.8").empty());
  EXPECT_EQ(r.sets6("2001:db8:1::1"), std::set<std::string>{"corp"});
  EXPECT_TRUE(r.sets6("2001:db9::1").empty());
  ASSERT_EQ(r.g.files.size(), 1u);
  EXPECT_EQ(r.g.files[0].path, path);
}

TEST(CidrFiles, ErrorsNameTheFileAndLine) {
  TempDir dir;
  geo::GeoConfig cfg;
  geo::ClientSetDef s;
  s.name = "corp";
  s.cidr_files.push_back(dir.write("cn.txt", "1.0.1.0/24\n\n# x\n1.0.2.0/33\n"));
  cfg.sets.push_back(s);
  EXPECT_EQ(compile_error(cfg), dir.file("cn.txt") + ":4: bad prefix length /33");
  cfg.sets[0].cidr_files = {dir.write("junk.txt", "1.0.1.0/24\nhello world\n")};
  EXPECT_EQ(compile_error(cfg), dir.file("junk.txt") + ":2: bad IPv4 address 'hello world'");
  cfg.sets[0].cidr_files = {dir.file("missing.txt")};
  EXPECT_EQ(compile_error(cfg), dir.file("missing.txt") + ": No such file or directory");
  cfg.sets[0].cidr_files = {dir.file("")};
  EXPECT_NE(compile_error(cfg).find("not a regular file"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// MaxMind test databases against their JSON sources.

struct JsonNetwork {
  u128 first, last;  // as IPv6 (IPv4 networks under ::/96)
  nlohmann::json data;
};

// The networks of a MaxMind test-data JSON file, host bits masked as the writer masks them.
std::vector<JsonNetwork> read_json(const std::string& path) {
  std::ifstream f(path);
  const nlohmann::json doc = nlohmann::json::parse(f);
  std::vector<JsonNetwork> out;
  for (const auto& entry : doc) {
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string key = it.key();
      const size_t slash = key.find('/');
      const std::string a = key.substr(0, slash);
      int len = std::stoi(key.substr(slash + 1));
      uint8_t b[16] = {};
      if (a.find(':') != std::string::npos) {
        inet_pton(AF_INET6, a.c_str(), b);
      } else {
        inet_pton(AF_INET, a.c_str(), b + 12);
        len += 96;
      }
      const u128 first = geo::prefix_mask(geo::key6_from_bytes(b), len);
      out.push_back({first, geo::prefix_last(first, len), it.value()});
    }
  }
  return out;
}

const nlohmann::json* json_at(const nlohmann::json& data, const std::vector<std::string>& path) {
  const nlohmann::json* j = &data;
  for (const auto& p : path) {
    if (j->is_object() && j->contains(p)) {
      j = &(*j)[p];
    } else if (j->is_array() && !p.empty() && std::all_of(p.begin(), p.end(), ::isdigit) &&
               std::stoul(p) < j->size()) {
      j = &(*j)[std::stoul(p)];
    } else {
      return nullptr;
    }
  }
  return j;
}

std::string json_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  return j.dump();
}

struct FieldSets {
  std::string prefix;  // set names are prefix + value
  std::string path;
};

// One set per value of each field that occurs in the JSON; then every JSON network's first,
// middle and last address must be in exactly the sets its data says (the last JSON entry that
// holds the address wins, as in the writer), through the IPv6 table and, for IPv4 networks,
// through the IPv4 table too.
void check_against_json(const std::string& db, const std::string& json,
                        const std::vector<FieldSets>& fields) {
  const auto nets = read_json(kGeoDir + "/" + json);
  ASSERT_GT(nets.size(), 100u);
  geo::GeoConfig cfg;
  cfg.databases.push_back({"db", kGeoDir + "/" + db, "t"});
  std::set<std::string> names;
  for (const auto& f : fields) {
    for (const auto& n : nets) {
      const nlohmann::json* v = json_at(n.data, split_path(f.path));
      if (v == nullptr) continue;
      const std::string name = f.prefix + json_text(*v);
      if (names.insert(name).second) {
        cfg.sets.push_back(mmdb_set(name, match("db", f.path, {json_text(*v)})));
      }
    }
  }
  ASSERT_GT(cfg.sets.size(), 3u);
  Result r;
  compile_ok(cfg, &r);
  int checked = 0;
  for (const auto& n : nets) {
    for (u128 a : {n.first, n.first + (n.last - n.first) / 2, n.last}) {
      const JsonNetwork* owner = nullptr;
      for (const auto& m : nets) {
        if (a >= m.first && a <= m.last) owner = &m;
      }
      std::set<std::string> want;
      for (const auto& f : fields) {
        const nlohmann::json* v = json_at(owner->data, split_path(f.path));
        if (v != nullptr) want.insert(f.prefix + json_text(*v));
      }
      uint8_t b[16];
      geo::key6_to_bytes(a, b);
      ASSERT_EQ(r.sets_of(r.v6.lookup(b).value), want) << json << " network of " << n.data.dump();
      if ((a >> 32) == 0) {
        ASSERT_EQ(r.sets_of(r.v4.lookup(static_cast<uint32_t>(a)).value), want);
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(GeoCompilerJson, CountryTestDatabase) {
  check_against_json("GeoIP2-Country-Test.mmdb", "GeoIP2-Country-Test.json",
                     {{"", "country.iso_code"},
                      {"continent-", "continent.code"},
                      {"registered-", "registered_country.iso_code"}});
}

TEST(GeoCompilerJson, CityTestDatabaseWithArrayIndexes) {
  check_against_json("GeoIP2-City-Test.mmdb", "GeoIP2-City-Test.json",
                     {{"", "country.iso_code"},
                      {"sub-", "subdivisions.0.iso_code"},
                      {"sub2-", "subdivisions.1.iso_code"},
                      {"anon-", "traits.is_anonymous_proxy"}});
}

TEST(GeoCompilerJson, AsnTestDatabaseIntegers) {
  check_against_json("GeoLite2-ASN-Test.mmdb", "GeoLite2-ASN-Test.json",
                     {{"as", "autonomous_system_number"}});
}

TEST(GeoCompiler, KnownNetworksOfTheReadme) {
  Result r;
  compile_ok(one_db(kGeoDir + "/GeoIP2-Country-Test.mmdb", "country.iso_code",
                    {{"cn", "cn"}, {"gb", "GB"}, {"se", "SE"}, {"us", "US"}}),
             &r);
  EXPECT_EQ(r.sets4("175.16.199.1"), std::set<std::string>{"cn"});  // values ignore case
  EXPECT_EQ(r.sets4("81.2.69.160"), std::set<std::string>{"gb"});
  EXPECT_EQ(r.sets4("89.160.20.128"), std::set<std::string>{"se"});
  EXPECT_EQ(r.sets4("214.78.120.5"), std::set<std::string>{"us"});
  EXPECT_EQ(r.sets6("2001:250::1"), std::set<std::string>{"cn"});
  // The IPv4 data seen through IPv6 addresses, as MMDB_lookup_sockaddr sees it.
  EXPECT_EQ(r.sets6("::81.2.69.160"), std::set<std::string>{"gb"});
  EXPECT_EQ(r.sets6("::ffff:81.2.69.160"), std::set<std::string>{"gb"});
  EXPECT_EQ(r.sets6("2002:5102:45a0::1"), std::set<std::string>{"gb"});
  EXPECT_EQ(r.sets6("2001:0:5102:45a0::1"), std::set<std::string>{"gb"});
  EXPECT_TRUE(r.sets4("8.8.8.8").empty());
  EXPECT_EQ(r.match4("8.8.8.8").value, gtm::geo::kNoClass);
  EXPECT_GT(r.g.networks_read, 100u);
  ASSERT_EQ(r.g.files.size(), 1u);
  EXPECT_GT(r.g.files[0].size, 0u);
}

// ---------------------------------------------------------------------------------------------
// Agreement with libmaxminddb on sampled addresses.

struct Mmdb {
  MMDB_s db{};
  bool open = false;
  explicit Mmdb(const std::string& path) {
    open = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &db) == MMDB_SUCCESS;
  }
  ~Mmdb() {
    if (open) MMDB_close(&db);
  }
  // The value at `path` for the address, as text ("" when absent).
  std::string value(const uint8_t* addr, bool v4, const std::vector<std::string>& path) {
    sockaddr_storage ss{};
    if (v4) {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      std::memcpy(&sa->sin_addr, addr, 4);
    } else {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      std::memcpy(&sa->sin6_addr, addr, 16);
    }
    int err = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db, reinterpret_cast<sockaddr*>(&ss), &err);
    if (err != MMDB_SUCCESS || !r.found_entry) return "";
    std::vector<const char*> p;
    for (const auto& s : path) p.push_back(s.c_str());
    p.push_back(nullptr);
    MMDB_entry_data_s d;
    if (MMDB_aget_value(&r.entry, &d, p.data()) != MMDB_SUCCESS || !d.has_data) return "";
    switch (d.type) {
      case MMDB_DATA_TYPE_UTF8_STRING: {
        std::string s(d.utf8_string, d.data_size);
        for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        return s;
      }
      case MMDB_DATA_TYPE_UINT16:
        return std::to_string(d.uint16);
      case MMDB_DATA_TYPE_UINT32:
        return std::to_string(d.uint32);
      default:
        return "?";
    }
  }
  // An address found by a random descent that prefers the non-empty side: inside some network
  // with high probability, at every depth of the tree.
  void random_address(std::mt19937_64& rng, uint8_t* out, bool v4) {
    const int bits = v4 ? 32 : 128;
    const int skip = (v4 && db.metadata.ip_version == 6) ? 96 : 0;
    uint8_t a[16] = {};
    for (auto& b : a) b = static_cast<uint8_t>(rng());
    if (skip) std::memset(a, 0, 12);
    uint32_t node = 0;
    for (int bit = 0; bit < skip && node < db.metadata.node_count; ++bit) {
      MMDB_search_node_s n;
      MMDB_read_node(&db, node, &n);
      node = static_cast<uint32_t>(n.left_record);
    }
    for (int bit = skip; bit < skip + bits && node < db.metadata.node_count; ++bit) {
      MMDB_search_node_s n;
      MMDB_read_node(&db, node, &n);
      int side = (a[bit / 8] >> (7 - bit % 8)) & 1;
      const uint8_t t = side ? n.right_record_type : n.left_record_type;
      if (t == MMDB_RECORD_TYPE_EMPTY && rng() % 4 != 0) side ^= 1;
      a[bit / 8] =
          static_cast<uint8_t>((a[bit / 8] & ~(0x80 >> (bit % 8))) | (side << (7 - bit % 8)));
      node = static_cast<uint32_t>(side ? n.right_record : n.left_record);
    }
    std::memcpy(out, v4 ? a + 12 : a, v4 ? 4 : 16);
  }
};

// Samples addresses (tree descents, their IPv4-mapped / 6to4 / Teredo forms, uniform ones),
// makes one set per value seen, compiles, and checks that every sample is in exactly the set
// named by what libmaxminddb returns, and that the first and last address of the returned ECS
// block have that value too.
void check_against_libmaxminddb(const std::string& db_path, const std::string& field, int samples) {
  Mmdb db(db_path);
  ASSERT_TRUE(db.open) << db_path;
  const auto path = split_path(field);
  std::mt19937_64 rng(7);
  struct Sample {
    uint8_t a[16];
    bool v4;
  };
  std::vector<Sample> s;
  for (int i = 0; i < samples; ++i) {
    Sample x{};
    x.v4 = i % 2 == 0;
    if (i % 10 == 9) {
      for (auto& b : x.a) b = static_cast<uint8_t>(rng());
    } else {
      db.random_address(rng, x.a, x.v4);
    }
    s.push_back(x);
    if (x.v4 && db.db.metadata.ip_version == 6) {
      Sample m{};  // ::ffff:a.b.c.d, 2002:aabb:ccdd::, 2001:0:aabb:ccdd::
      const int kind = i % 3;
      if (kind == 0) {
        m.a[10] = m.a[11] = 0xFF;
        std::memcpy(m.a + 12, x.a, 4);
      } else {
        m.a[0] = 0x20;
        m.a[1] = kind == 1 ? 0x02 : 0x01;
        std::memcpy(m.a + (kind == 1 ? 2 : 4), x.a, 4);
        m.a[15] = static_cast<uint8_t>(rng());
      }
      s.push_back(m);
    }
  }
  std::set<std::string> values;
  for (const auto& x : s) {
    const std::string v = db.value(x.a, x.v4, path);
    if (!v.empty()) values.insert(v);
  }
  ASSERT_GT(values.size(), 2u) << db_path;
  geo::GeoConfig cfg;
  cfg.databases.push_back({"db", db_path, "t"});
  for (const auto& v : values) cfg.sets.push_back(mmdb_set(v, match("db", field, {v})));
  Result r;
  compile_ok(cfg, &r);
  for (const auto& x : s) {
    // Values no sample showed have no set: their addresses are in no class.
    auto expect = [&values](const std::string& v) {
      return values.count(v) != 0 ? std::set<std::string>{v} : std::set<std::string>{};
    };
    const std::set<std::string> want = expect(db.value(x.a, x.v4, path));
    gtm::geo::LpmMatch m;
    if (x.v4) {
      uint32_t a;
      std::memcpy(&a, x.a, 4);
      m = r.v4.lookup(ntohl(a));
    } else {
      m = r.v6.lookup(x.a);
    }
    const auto got = r.sets_of(m.value);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(x.v4 ? AF_INET : AF_INET6, x.a, text, sizeof(text));
    ASSERT_EQ(got, want) << db_path << " " << text;
    // Both ends of the ECS block agree. Addresses sit at the top of a 128-bit word here.
    const int bytes = x.v4 ? 4 : 16;
    u128 k = 0;
    for (int i = 0; i < 16; ++i) k = (k << 8) | (i < bytes ? x.a[i] : 0);
    const u128 first = geo::prefix_mask(k, m.prefix_len);
    const u128 last = geo::prefix_last(first, m.prefix_len);
    for (u128 end : {first, last}) {
      uint8_t e[16];
      geo::key6_to_bytes(end, e);
      ASSERT_EQ(expect(db.value(e, x.v4, path)), want)
          << db_path << " " << text << "/" << int{m.prefix_len};
    }
  }
}

TEST(GeoCompilerAgreement, TestDatabases) {
  check_against_libmaxminddb(kGeoDir + "/GeoIP2-Country-Test.mmdb", "country.iso_code", 4000);
  check_against_libmaxminddb(kGeoDir + "/GeoLite2-Country-Test.mmdb", "country.iso_code", 4000);
  check_against_libmaxminddb(kGeoDir + "/GeoIP2-City-Test.mmdb", "country.iso_code", 4000);
  check_against_libmaxminddb(kGeoDir + "/GeoLite2-City-Test.mmdb", "subdivisions.0.iso_code", 4000);
  check_against_libmaxminddb(kGeoDir + "/GeoLite2-ASN-Test.mmdb", "autonomous_system_number", 4000);
  check_against_libmaxminddb(kGeoDir + "/GeoIP2-ISP-Test.mmdb", "autonomous_system_number", 4000);
}

TEST(GeoCompilerAgreement, FullScaleDatabase) {
  check_against_libmaxminddb(kGeoDir + "/full/geo-whois-asn-country.mmdb", "country_code",
                             kSanitized ? 5000 : 100000);
}

// ---------------------------------------------------------------------------------------------
// Databases written here: IPv4-only trees, aliases, corrupt trees.

TEST(GeoCompilerWritten, Ipv4OnlyDatabase) {
  TempDir dir;
  MmdbWriter w(4);
  w.insert("10.0.0.0/8", {{"cc", "AA"}});
  w.insert("10.1.0.0/16", {{"cc", "BB"}});
  w.insert("192.0.2.128/25", {{"cc", "AA"}});
  w.insert("192.0.2.0/25", {{"cc", "AA"}});
  w.write(dir.file("v4.mmdb"));
  Result r;
  compile_ok(one_db(dir.file("v4.mmdb"), "cc", {{"a", "AA"}, {"b", "BB"}}), &r);
  EXPECT_EQ(r.sets4("10.2.3.4"), std::set<std::string>{"a"});
  EXPECT_EQ(r.sets4("10.1.3.4"), std::set<std::string>{"b"});
  EXPECT_EQ(r.match4("10.1.3.4").prefix_len, 16);
  EXPECT_EQ(r.match4("10.2.3.4").prefix_len, 15);  // 10.2.0.0/15 is the largest block of a
  // Two adjacent /25 networks with the same data are one /24 for ECS.
  EXPECT_EQ(r.match4("192.0.2.1").prefix_len, 24);
  // libmaxminddb answers no IPv6 lookup in an IPv4 database; neither does the IPv6 table.
  EXPECT_TRUE(r.g.lpm6.empty());
  EXPECT_TRUE(r.sets6("::ffff:10.2.3.4").empty());
}

TEST(GeoCompilerWritten, AliasesShareTheIpv4Subtree) {
  TempDir dir;
  MmdbWriter w(6);
  w.insert("10.0.0.0/8", {{"cc", "AA"}});
  w.insert("2001:db8::/32", {{"cc", "BB"}});
  w.alias_ipv4("::ffff:0:0/96");
  w.alias_ipv4("2002::/16");
  w.write(dir.file("v6.mmdb"));
  Result r;
  compile_ok(one_db(dir.file("v6.mmdb"), "cc", {{"a", "AA"}, {"b", "BB"}}), &r);
  EXPECT_EQ(r.sets4("10.9.9.9"), std::set<std::string>{"a"});
  EXPECT_EQ(r.sets6("::10.9.9.9"), std::set<std::string>{"a"});
  EXPECT_EQ(r.sets6("::ffff:10.9.9.9"), std::set<std::string>{"a"});
  EXPECT_EQ(r.match6("::ffff:10.9.9.9").prefix_len, 104);
  EXPECT_EQ(r.sets6("2002:0a09:0909::1"), std::set<std::string>{"a"});
  EXPECT_EQ(r.match6("2002:0a09:0909::1").prefix_len, 24);
  EXPECT_TRUE(r.sets6("2002:0b09:0909::1").empty());
  EXPECT_EQ(r.sets6("2001:db8:5::1"), std::set<std::string>{"b"});
}

TEST(GeoCompilerWritten, CorruptTreesAreRefused) {
  TempDir dir;
  auto base = [] {
    MmdbWriter w(6);
    w.insert("10.0.0.0/8", {{"cc", "AA"}});
    w.insert("2001:db8::/32", {{"cc", "BB"}});
    return w;
  };
  const auto cfg = one_db(dir.file("bad.mmdb"), "cc", {{"a", "AA"}});
  {
    MmdbWriter w = base();  // a node reached by two paths (not an IPv4 alias)
    const int64_t shared = w.nodes()[0][0];
    w.nodes()[0][1] = shared;
    w.write(dir.file("bad.mmdb"));
    EXPECT_NE(compile_error(cfg).find("reached twice"), std::string::npos);
  }
  {
    MmdbWriter w = base();  // a record pointing back at the root
    w.nodes().back()[1] = 0;
    w.write(dir.file("bad.mmdb"));
    EXPECT_NE(compile_error(cfg).find("corrupt search tree"), std::string::npos);
  }
  {
    MmdbWriter w = base();  // a record pointing into the 16-byte separator
    w.set_raw(w.nodes().size() - 1, 1, static_cast<uint32_t>(w.nodes().size() + 3));
    w.write(dir.file("bad.mmdb"));
    EXPECT_NE(compile_error(cfg).find("separator"), std::string::npos);
  }
  {
    MmdbWriter w = base();  // a record pointing past the data section
    w.set_raw(w.nodes().size() - 1, 1, 0xFFFFFF);
    w.write(dir.file("bad.mmdb"));
    EXPECT_NE(compile_error(cfg).find("bad.mmdb: "), std::string::npos);
  }
  {
    MmdbWriter w(4);  // a search tree deeper than 32 bits
    w.insert("10.0.0.1/32", {{"cc", "AA"}});
    const auto last = w.walk({10, 0, 0, 1}, 31);
    w.nodes().push_back({MmdbWriter::data_ref(0), MmdbWriter::kEmpty});
    w.nodes()[last][1] = static_cast<int64_t>(w.nodes().size() - 1);
    w.write(dir.file("bad.mmdb"));
    EXPECT_NE(compile_error(cfg).find("deeper than 32 bits"), std::string::npos);
  }
  {
    MmdbWriter w = base();  // a data record that is not what it claims to be
    w.add_data({{"cc", "AA"}});
    std::vector<uint8_t> bytes = w.serialize();
    // The first data record, {"cc": "AA"}, starts right after the tree and the separator: make
    // its value a string running past the end of the data section.
    ASSERT_EQ(bytes[w.nodes().size() * 6 + 16 + 4], 0x42);
    bytes[w.nodes().size() * 6 + 16 + 4] = 0x40 | 28;
    std::ofstream(dir.file("bad.mmdb"), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    EXPECT_NE(compile_error(cfg).find("bad.mmdb: "), std::string::npos);
  }
}

TEST(GeoCompilerWritten, FieldPathsAndValueTypes) {
  TempDir dir;
  MmdbWriter w(6);
  w.insert("10.0.0.0/8", {{"asn", 64500},
                          {"anycast", true},
                          {"loc", {{"lat", 1.5}}},
                          {"subs", {{{"iso", "AB"}}, {{"iso", "CD"}}}},
                          {"neg", -7}});
  w.insert("11.0.0.0/8",
           {{"asn", 4200000000u}, {"anycast", false}, {"subs", nlohmann::json::array()}});
  w.write(dir.file("t.mmdb"));
  Result r;
  geo::GeoConfig cfg =
      one_db(dir.file("t.mmdb"), "asn", {{"as64500", "64500"}, {"big", "4200000000"}});
  cfg.sets.push_back(mmdb_set("anycast", match("db", "anycast", {"TRUE"})));
  cfg.sets.push_back(mmdb_set("cd", match("db", "subs.1.iso", {"cd"})));
  cfg.sets.push_back(mmdb_set("last", match("db", "subs.-1.iso", {"cd"})));  // from the end
  cfg.sets.push_back(mmdb_set("neg", match("db", "neg", {"-7"})));
  compile_ok(cfg, &r);
  EXPECT_EQ(r.sets4("10.1.1.1"),
            (std::set<std::string>{"as64500", "anycast", "cd", "last", "neg"}));
  EXPECT_EQ(r.sets4("11.1.1.1"), std::set<std::string>{"big"});

  cfg = one_db(dir.file("t.mmdb"), "asn.x", {{"a", "1"}});
  EXPECT_NE(compile_error(cfg).find("field 'asn.x' (test.yaml:1:1) is in no record"),
            std::string::npos);
  cfg = one_db(dir.file("t.mmdb"), "subs", {{"a", "1"}});
  EXPECT_NE(compile_error(cfg).find("is an array, not a value"), std::string::npos);
  cfg = one_db(dir.file("t.mmdb"), "loc", {{"a", "1"}});
  EXPECT_NE(compile_error(cfg).find("is a map, not a value"), std::string::npos);
  cfg = one_db(dir.file("t.mmdb"), "loc.lat", {{"a", "1.5"}});
  EXPECT_NE(compile_error(cfg).find("not a string, integer or boolean"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Broken inputs.

// Each file is refused for what is wrong with it, whatever the field (their records hold "ip").
// Two are well-formed (their edge is an empty array or map last in the metadata, which
// libmaxminddb once misread): they open, and are refused only for lacking the configured field.
TEST(GeoCompilerRobustness, EveryBadDatabaseIsRefused) {
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(kGeoDir + "/bad")) {
    ++files;
    const std::string name = e.path().filename();
    const bool well_formed = name.find("-last-in-metadata") != std::string::npos;
    for (const char* field : {"country.iso_code", "ip"}) {
      geo::CompiledGeo out;
      std::string error;
      const bool ok = geo::compile_geo(one_db(e.path(), field, {{"x", "test"}}), &out, &error);
      if (well_formed && std::string(field) == "ip") {
        EXPECT_TRUE(ok) << name << ": " << error;
        continue;
      }
      ASSERT_FALSE(ok) << name;
      EXPECT_EQ(error.rfind(e.path().string() + ": ", 0), 0u) << error;
      if (!well_formed) {
        EXPECT_EQ(error.find("is in no record"), std::string::npos) << name << ": " << error;
      }
    }
  }
  EXPECT_GE(files, 15);
}

TEST(GeoCompilerRobustness, MissingAndUnreadableFiles) {
  TempDir dir;
  EXPECT_EQ(compile_error(one_db(dir.file("nope.mmdb"), "cc", {{"a", "A"}})),
            dir.file("nope.mmdb") + ": No such file or directory");
  EXPECT_EQ(compile_error(one_db(dir.file(""), "cc", {{"a", "A"}})),
            dir.file("") + ": not a regular file");
  dir.write("empty.mmdb", "");
  EXPECT_NE(compile_error(one_db(dir.file("empty.mmdb"), "cc", {{"a", "A"}})).find("empty.mmdb: "),
            std::string::npos);
  dir.write("text.mmdb", "this is not a database\n");
  EXPECT_NE(compile_error(one_db(dir.file("text.mmdb"), "cc", {{"a", "A"}})).find("text.mmdb: "),
            std::string::npos);
}

TEST(GeoCompilerRobustness, ConfigurationMistakes) {
  geo::GeoConfig cfg =
      one_db(kGeoDir + "/GeoIP2-Country-Test.mmdb", "country.iso_code", {{"a", "CN"}});
  cfg.sets[0].mmdb[0].database = "other";
  EXPECT_EQ(compile_error(cfg), "test.yaml:1:1: unknown geo database 'other'");
  cfg = one_db(kGeoDir + "/GeoIP2-Country-Test.mmdb", "country.iso_code", {{"a", "CN"}});
  cfg.databases.push_back(cfg.databases[0]);
  EXPECT_NE(compile_error(cfg).find("duplicate database name 'db'"), std::string::npos);
  cfg.databases.pop_back();
  geo::TopologyRecord t;
  t.set = 5;
  t.where = "test.yaml:9:5";
  cfg.datacenters = {"dc1"};
  cfg.topology = {t};
  EXPECT_EQ(compile_error(cfg), "test.yaml:9:5: topology record refers to unknown set 5");
  cfg.topology[0].set = 0;
  cfg.topology[0].datacenter = 3;
  EXPECT_NE(compile_error(cfg).find("unknown datacenter 3"), std::string::npos);
  cfg.topology[0].datacenter = 0;
  cfg.topology[0].score = 0;
  EXPECT_NE(compile_error(cfg).find("score must be 1..65535"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Topology, classes, change detection.

TEST(GeoTopology, LongestPrefixWinsAndScoresBreakTies) {
  TempDir dir;
  MmdbWriter w(6);
  // The writer splits 10/8 along the path to the /24, as MaxMind's does: 10.1.9.1 lies in the
  // network 10.0.0.0/9, 10.128.9.1 in 10.128.8.0/21.
  w.insert("10.0.0.0/8", {{"cc", "AA"}});
  w.insert("10.128.2.0/24", {{"cc", "AA"}, {"city", "x"}});
  w.write(dir.file("t.mmdb"));
  geo::GeoConfig cfg = one_db(dir.file("t.mmdb"), "cc", {{"aa", "AA"}});
  cfg.sets.push_back(cidr_set("line", {"10.1.0.0/16"}));
  cfg.sets.back().kind = geo::ClientSetDef::Kind::kIspLine;
  cfg.sets.push_back(cidr_set("corp", {"10.0.0.0/8"}));
  cfg.sets.push_back(cidr_set("line2", {"10.128.0.0/16"}));
  cfg.datacenters = {"east", "west"};
  auto rec_set = [](uint32_t set, uint32_t dc, uint16_t score) {
    geo::TopologyRecord r;
    r.kind = geo::TopologyRecord::Kind::kSet;
    r.set = set;
    r.datacenter = dc;
    r.score = score;
    return r;
  };
  auto rec_cidr = [](const std::string& c, uint32_t dc, uint16_t score) {
    geo::TopologyRecord r;
    r.kind = geo::TopologyRecord::Kind::kCidr;
    r.cidr = cidr(c);
    r.datacenter = dc;
    r.score = score;
    return r;
  };
  cfg.topology = {
      rec_set(0, 0, 10),  // aa, with the prefix of the MMDB network that holds the address
      rec_set(1, 0, 50),  // line /16
      rec_set(3, 0, 60),  // line2 /16
      rec_cidr("10.128.2.128/25", 0, 5),
      rec_set(2, 1, 7),              // corp /8, twice ...
      rec_cidr("10.0.0.0/8", 1, 9),  // ... and a CIDR record of the same length: highest wins
      rec_set(2, 1, 3),
  };
  Result r;
  compile_ok(cfg, &r);
  EXPECT_EQ(r.score4("10.9.0.1", 0), 10);     // aa /9
  EXPECT_EQ(r.score4("10.1.9.1", 0), 50);     // line /16 beats aa /9
  EXPECT_EQ(r.score4("10.128.2.1", 0), 10);   // aa /24 beats line2 /16
  EXPECT_EQ(r.score4("10.128.9.1", 0), 10);   // aa /21 beats line2 /16
  EXPECT_EQ(r.score4("10.128.2.200", 0), 5);  // the /25 record beats them all
  EXPECT_EQ(r.score4("10.9.0.1", 1), 9);
  EXPECT_EQ(r.score4("11.0.0.1", 0), 0);
  EXPECT_EQ(r.sets4("10.128.2.1"), (std::set<std::string>{"aa", "corp", "line2"}));
  EXPECT_EQ(r.g.set_is_isp_line, (std::vector<uint8_t>{0, 1, 0, 0}));
  EXPECT_EQ(r.g.datacenter_names, cfg.datacenters);
  // Classes are distinct combinations: 10.1.9.1 and 10.1.8.1 share one.
  EXPECT_EQ(r.match4("10.1.9.1").value, r.match4("10.1.8.1").value);
  EXPECT_NE(r.match4("10.1.9.1").value, r.match4("10.9.0.1").value);
}

TEST(GeoClasses, CompactAndCsr) {
  geo::GeoConfig cfg;
  cfg.sets.push_back(cidr_set("a", {"10.0.0.0/8", "2001:db8::/32"}));
  cfg.sets.push_back(cidr_set("b", {"10.0.0.0/16", "192.0.2.0/24"}));
  cfg.sets.push_back(cidr_set("unused", {}));
  Result r;
  compile_ok(cfg, &r);
  // No set, {a}, {a, b}, {b}: every class is used by some range.
  EXPECT_EQ(r.g.class_count, 4u);
  EXPECT_TRUE(r.sets_of(0).empty());
  EXPECT_EQ(r.sets4("10.0.1.1"), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(r.match6("2001:db8::1").value, r.match4("10.200.0.1").value);
  for (uint32_t c = 0; c < r.g.class_count; ++c) {
    EXPECT_TRUE(std::is_sorted(r.g.class_sets.begin() + r.g.class_set_first[c],
                               r.g.class_sets.begin() + r.g.class_set_first[c + 1]));
  }
  EXPECT_EQ(r.g.lpm4_entries, 6u);  // below 10/8, 10/16, rest of 10/8, gap, 192.0.2/24, rest

  geo::GeoConfig empty;
  compile_ok(empty, &r);
  EXPECT_TRUE(r.g.lpm4.empty());
  EXPECT_TRUE(r.g.lpm6.empty());
  EXPECT_EQ(r.g.class_count, 1u);
}

TEST(GeoSources, ChangesAreDetected) {
  TempDir dir;
  std::filesystem::copy_file(kGeoDir + "/GeoIP2-Country-Test.mmdb", dir.file("c.mmdb"));
  geo::GeoConfig cfg = one_db(dir.file("c.mmdb"), "country.iso_code", {{"cn", "CN"}});
  geo::ClientSetDef s;
  s.name = "corp";
  s.cidr_files = {dir.write("corp.txt", "10.0.0.0/8\n")};
  cfg.sets.push_back(s);
  Result r;
  compile_ok(cfg, &r);
  ASSERT_EQ(r.g.files.size(), 2u);
  EXPECT_FALSE(geo::geo_sources_changed(r.g));

  // A rewritten CIDR file (same size, new mtime), an appended one, a replaced database, a
  // deleted one: each counts as a change.
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, dir.file("corp.txt").c_str(), times, 0), 0);
  EXPECT_TRUE(geo::geo_sources_changed(r.g));
  compile_ok(cfg, &r);
  EXPECT_FALSE(geo::geo_sources_changed(r.g));
  std::ofstream(dir.file("corp.txt"), std::ios::app) << "11.0.0.0/8\n";
  EXPECT_TRUE(geo::geo_sources_changed(r.g));
  compile_ok(cfg, &r);
  EXPECT_EQ(r.sets4("11.1.1.1"), std::set<std::string>{"corp"});
  std::filesystem::copy_file(kGeoDir + "/GeoLite2-Country-Test.mmdb", dir.file("c2.mmdb"));
  std::filesystem::rename(dir.file("c2.mmdb"), dir.file("c.mmdb"));
  EXPECT_TRUE(geo::geo_sources_changed(r.g));
  compile_ok(cfg, &r);
  EXPECT_FALSE(geo::geo_sources_changed(r.g));
  std::filesystem::remove(dir.file("c.mmdb"));
  EXPECT_TRUE(geo::geo_sources_changed(r.g));

  // A corrupt replacement is refused and the last good result stays as it was.
  std::filesystem::copy_file(kGeoDir + "/bad/libmaxminddb-corrupt-search-tree.mmdb",
                             dir.file("c.mmdb"));
  const geo::CompiledGeo before = r.g;
  std::string error;
  EXPECT_FALSE(geo::compile_geo(cfg, &r.g, &error));
  EXPECT_NE(error.find("c.mmdb: "), std::string::npos);
  EXPECT_EQ(r.g.lpm4, before.lpm4);
}

}  // namespace
