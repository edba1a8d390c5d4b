// gtmctl: the operator's CLI. Talks to the daemons over the local control protocol
// (dataplane/io/control_protocol.h) and runs the compiler and the answer engine offline.
// ldns/common.h defines bool and false as macros (breaking the C++ headers after it) unless
// stdbool.h was included first.
// clang-format off
#include <stdbool.h>
#include <ldns/ldns.h>
// clang-format on

#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "control/geo/geo_job.h"
#include "control/policy/switch_policy.h"
#include "control/publish/publisher.h"
#include "dataplane/engine/answer.h"
#include "dataplane/engine/counters.h"
#include "dataplane/io/control_protocol.h"
#include "dataplane/io/worker_stats.h"
#include "dataplane/snapshot/snapshot.h"

namespace gtm::ctl {
namespace {

using control::RequestResult;
using control::RequestStatus;

// RELOAD waits for a configuration load, a compile and the dataplane's acknowledgement.
constexpr int kReloadTimeoutMs = 15000;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: gtmctl [--run-dir DIR] COMMAND [ARGS]\n"
               "  status [--json]            dataplane generation and per-worker counters\n"
               "  reload                     make gtm-control re-read its configuration\n"
               "  compile CONFIG OUTPUT [--generation N]\n"
               "                             compile a configuration into a snapshot image\n"
               "  check CONFIG               validate a configuration (load + compile)\n"
               "  query NAME TYPE [--client IP] [--ecs PREFIX] [--tcp]\n"
               "        [--snapshot FILE | --config FILE]\n"
               "                             answer a query offline and explain the decision\n"
               "  member enable|disable|drain SERVICE POOL MEMBER\n"
               "  pool enable|disable SERVICE POOL\n"
               "                             operator overrides, kept across reloads and restarts\n"
               "  --run-dir DIR              daemons' run directory (default %s)\n",
               proto::kDefaultRunDir);
}

// ---- A small JSON reader: enough for the STATUS replies, which are flat objects of numbers. ----

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;  // kString: the value; kNumber/kBool: the literal as written
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;

  const Json* get(const std::string& key) const {
    for (const auto& [k, v] : fields) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}

  bool parse(Json* out) {
    if (!value(out, 0)) return false;
    skip_ws();
    return pos_ == s_.size();
  }

 private:
  static constexpr int kMaxDepth = 32;

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool literal(const char* word) {
    size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }
  static int hex_value(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
  }
  bool string(std::string* out) {
    if (pos_ >= s_.size() || s_[pos_] != '"') return false;
    ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case 'n':
          *out += '\n';
          break;
        case 't':
          *out += '\t';
          break;
        case 'r':
          *out += '\r';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return false;
          unsigned v = 0;
          for (int i = 0; i < 4; ++i) {
            int digit = hex_value(s_[pos_++]);
            if (digit < 0) return false;
            v = (v << 4) | static_cast<unsigned>(digit);
          }
          // Status text is ASCII; anything else is shown as '?' rather than re-encoded.
          *out += v < 0x80 ? static_cast<char>(v) : '?';
          break;
        }
        default:
          *out += e;
          break;
      }
    }
    return false;
  }
  bool value(Json* out, int depth) {
    if (depth > kMaxDepth) return false;
    skip_ws();
    if (pos_ >= s_.size()) return false;
    char c = s_[pos_];
    if (c == '{') {
      out->kind = Json::kObject;
      ++pos_;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
      for (;;) {
        skip_ws();
        std::pair<std::string, Json> field;
        if (!string(&field.first)) return false;
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_++] != ':') return false;
        if (!value(&field.second, depth + 1)) return false;
        out->fields.push_back(std::move(field));
        skip_ws();
        if (pos_ >= s_.size()) return false;
        char d = s_[pos_++];
        if (d == '}') return true;
        if (d != ',') return false;
      }
    }
    if (c == '[') {
      out->kind = Json::kArray;
      ++pos_;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
      for (;;) {
        Json item;
        if (!value(&item, depth + 1)) return false;
        out->items.push_back(std::move(item));
        skip_ws();
        if (pos_ >= s_.size()) return false;
        char d = s_[pos_++];
        if (d == ']') return true;
        if (d != ',') return false;
      }
    }
    if (c == '"') {
      out->kind = Json::kString;
      return string(&out->text);
    }
    for (const char* word : {"true", "false"}) {
      if (literal(word)) {
        out->kind = Json::kBool;
        out->text = word;
        return true;
      }
    }
    if (literal("null")) return true;
    size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::strchr("+-.eE", s_[pos_]) != nullptr || (s_[pos_] >= '0' && s_[pos_] <= '9'))) {
      ++pos_;
    }
    if (pos_ == start) return false;
    out->kind = Json::kNumber;
    out->text = s_.substr(start, pos_ - start);
    return true;
  }

  const std::string& s_;
  size_t pos_ = 0;
};

std::string json_scalar(const Json* v) {
  if (v == nullptr) return "-";
  if (v->kind == Json::kNull) return "null";
  return v->text;
}

// The dataplane saves snapshot.bin after acknowledging an image, on a thread of its own: wait
// (briefly) until the file holds the image in service, so that a query right after a publish
// explains that image. A dataplane that is not running leaves the file as it is.
void wait_for_saved_snapshot(const std::string& run_dir) {
  const std::string path = control::run_dir_path(run_dir, proto::kDataplaneSocket);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    RequestResult dp = control::send_request(path, "STATUS", -1, 1000);
    Json status;
    if (!dp.ok() || !JsonParser(dp.reply).parse(&status) || status.kind != Json::kObject) return;
    const Json* saved = status.get("saved");
    if (saved == nullptr || saved->kind != Json::kObject) return;
    const std::string active = json_scalar(status.get("generation"));
    const std::string on_disk = json_scalar(saved->get("generation"));
    if (active == "0" ||
        std::strtoull(on_disk.c_str(), nullptr, 10) >= std::strtoull(active.c_str(), nullptr, 10)) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---- status ----

// Rows of the counter table: the engine's counters, then the packet counters when the dataplane
// runs the DPDK backend (its totals carry them).
std::vector<std::string> counter_names(bool with_packets) {
  const engine::WorkerState state;
  const packet::PacketCounters packets;
  std::vector<std::string> names;
  io::visit_counters({&state, "", with_packets ? &packets : nullptr},
                     [&](const char* name, uint64_t) { names.push_back(name); });
  return names;
}

void print_counter_table(const Json& status) {
  std::vector<std::string> headers;
  std::vector<const Json*> columns;
  if (const Json* workers = status.get("workers"); workers && workers->kind == Json::kArray) {
    for (const Json& w : workers->items) {
      std::string label = "w" + json_scalar(w.get("worker"));
      if (const Json* t = w.get("transport"); t && t->kind == Json::kString) label += "/" + t->text;
      headers.push_back(label);
      columns.push_back(&w);
    }
  }
  headers.push_back("total");
  columns.push_back(status.get("totals"));
  const Json* totals = status.get("totals");
  const std::vector<std::string> names =
      counter_names(totals != nullptr && totals->get("rx_packets") != nullptr);

  size_t name_width = std::strlen("counter");
  for (const std::string& name : names) name_width = std::max(name_width, name.size());
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> widths;
  for (size_t c = 0; c < columns.size(); ++c) {
    std::vector<std::string> col;
    size_t width = headers[c].size();
    for (const std::string& name : names) {
      col.push_back(columns[c] ? json_scalar(columns[c]->get(name.c_str())) : "-");
      width = std::max(width, col.back().size());
    }
    cells.push_back(std::move(col));
    widths.push_back(width);
  }
  std::printf("%-*s", static_cast<int>(name_width), "counter");
  for (size_t c = 0; c < headers.size(); ++c) {
    std::printf("  %*s", static_cast<int>(widths[c]), headers[c].c_str());
  }
  std::printf("\n");
  for (size_t r = 0; r < names.size(); ++r) {
    std::printf("%-*s", static_cast<int>(name_width), names[r].c_str());
    for (size_t c = 0; c < cells.size(); ++c) {
      std::printf("  %*s", static_cast<int>(widths[c]), cells[c][r].c_str());
    }
    std::printf("\n");
  }
}

int cmd_status(const std::string& run_dir, const std::vector<std::string>& args) {
  bool json = false;
  for (const std::string& a : args) {
    if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "gtmctl status: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const std::string dp_path = control::run_dir_path(run_dir, proto::kDataplaneSocket);
  RequestResult dp = control::send_request(dp_path, "STATUS");
  if (!dp.ok()) {
    std::fprintf(stderr, "gtmctl: dataplane not reachable at %s: %s\n", dp_path.c_str(),
                 dp.error.c_str());
    return 1;
  }
  if (json) {
    std::printf("%s\n", dp.reply.c_str());
    return 0;
  }
  Json status;
  if (!JsonParser(dp.reply).parse(&status) || status.kind != Json::kObject) {
    std::fprintf(stderr, "gtmctl: unreadable STATUS reply from the dataplane: %s\n",
                 dp.reply.c_str());
    return 1;
  }
  std::printf("dataplane generation: %s\n", json_scalar(status.get("generation")).c_str());
  if (const Json* lp = status.get("last_publish"); lp != nullptr && lp->kind == Json::kObject) {
    std::printf(
        "dataplane: last publish: %s us to validate and swap in (%s sections identical "
        "to the previous image's, %s checks reused, %s run: %s us, LPM %s us)\n",
        json_scalar(lp->get("total_us")).c_str(), json_scalar(lp->get("sections_same")).c_str(),
        json_scalar(lp->get("checks_skipped")).c_str(), json_scalar(lp->get("checks_run")).c_str(),
        json_scalar(lp->get("checks_us")).c_str(), json_scalar(lp->get("lpm_us")).c_str());
  }

  const std::string ctl_path = control::run_dir_path(run_dir, proto::kControlSocket);
  struct stat st {};
  if (stat(ctl_path.c_str(), &st) == 0) {
    RequestResult ctl = control::send_request(ctl_path, "STATUS");
    Json cs;
    if (!ctl.ok()) {
      std::printf("control: not reachable (%s)\n", ctl.error.c_str());
    } else if (JsonParser(ctl.reply).parse(&cs) && cs.kind == Json::kObject) {
      std::printf("control: config %s, generation %s (acknowledged %s)\n",
                  json_scalar(cs.get("config")).c_str(), json_scalar(cs.get("generation")).c_str(),
                  json_scalar(cs.get("acked_generation")).c_str());
      std::printf(
          "control: last health publish: %s us from the deciding probe verdict to the dataplane's "
          "ack (%s such publishes); builds: %s full, %s health-only, the last %s us; last ack "
          "round trip %s us\n",
          json_scalar(cs.get("last_health_publish_us")).c_str(),
          json_scalar(cs.get("health_publishes")).c_str(),
          json_scalar(cs.get("full_builds")).c_str(), json_scalar(cs.get("health_builds")).c_str(),
          json_scalar(cs.get("last_build_us")).c_str(),
          json_scalar(cs.get("last_publish_us")).c_str());
      std::string last_error = json_scalar(cs.get("last_error"));
      if (!last_error.empty() && last_error != "-") {
        std::printf("control: last error: %s\n", last_error.c_str());
      }
      if (const Json* geo = cs.get("geo"); geo != nullptr && geo->kind == Json::kObject) {
        if (geo->get("classes") != nullptr) {
          std::printf("control: geo: %s classes, %s networks read, %s + %s LPM entries, %s ms%s\n",
                      json_scalar(geo->get("classes")).c_str(),
                      json_scalar(geo->get("networks")).c_str(),
                      json_scalar(geo->get("lpm4_entries")).c_str(),
                      json_scalar(geo->get("lpm6_entries")).c_str(),
                      json_scalar(geo->get("compile_ms")).c_str(),
                      json_scalar(geo->get("compiling")) == "true" ? " (recompiling)" : "");
        }
        const std::string geo_error = json_scalar(geo->get("error"));
        if (!geo_error.empty() && geo_error != "-") {
          std::printf("control: geo: last compilation refused: %s\n", geo_error.c_str());
        }
      }
      if (const Json* admin = cs.get("admin"); admin != nullptr && admin->kind == Json::kArray) {
        for (const Json& o : admin->items) {
          const Json* member = o.get("member");
          std::printf("control: override: %s pool %s%s%s %s\n",
                      json_scalar(o.get("service")).c_str(), json_scalar(o.get("pool")).c_str(),
                      member != nullptr ? " member " : "",
                      member != nullptr ? json_scalar(member).c_str() : "",
                      json_scalar(o.get("state")).c_str());
        }
      }
    } else {
      std::printf("control: %s\n", ctl.reply.c_str());
    }
  } else {
    std::printf("control: not running (no %s)\n", ctl_path.c_str());
  }
  std::printf("\n");
  print_counter_table(status);
  // The DPDK backend adds the NICs' own counters (imissed: frames the rx ring had no room for).
  if (const Json* ports = status.get("ports"); ports != nullptr && ports->kind == Json::kArray) {
    std::printf("\n");
    for (const Json& p : ports->items) {
      std::printf("port %s (%s):", json_scalar(p.get("name")).c_str(),
                  json_scalar(p.get("ethdev")).c_str());
      for (const char* field :
           {"ipackets", "opackets", "imissed", "ierrors", "oerrors", "rx_nombuf"}) {
        std::printf(" %s %s", field, json_scalar(p.get(field)).c_str());
      }
      std::printf("\n");
    }
  }
  return 0;
}

// ---- reload ----

// Sends one request to gtm-control and prints its reply; exit code 0 on OK, 1 otherwise.
int control_request(const std::string& run_dir, const std::string& request) {
  const std::string path = control::run_dir_path(run_dir, proto::kControlSocket);
  RequestResult r = control::send_request(path, request, -1, kReloadTimeoutMs);
  if (r.status == RequestStatus::kOk) {
    std::printf("%s\n", r.reply.c_str());
    return 0;
  }
  if (r.status == RequestStatus::kRefused) {
    std::fprintf(stderr, "%s\n", r.reply.c_str());
  } else {
    std::fprintf(stderr, "gtmctl: gtm-control not reachable at %s: %s\n", path.c_str(),
                 r.error.c_str());
  }
  return 1;
}

int cmd_reload(const std::string& run_dir, const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "gtmctl reload: unexpected argument %s\n", args[0].c_str());
    return 2;
  }
  return control_request(run_dir, "RELOAD");
}

// `member ACTION SERVICE POOL MEMBER` and `pool ACTION SERVICE POOL`: gtm-control validates the
// names and the action and answers with the generation that carries the change.
int cmd_override(const std::string& run_dir, const std::string& kind,
                 const std::vector<std::string>& args) {
  const size_t want = kind == "MEMBER" ? 4 : 3;
  if (args.size() != want) {
    std::fprintf(stderr, "usage: gtmctl %s\n",
                 kind == "MEMBER" ? "member enable|disable|drain SERVICE POOL MEMBER"
                                  : "pool enable|disable SERVICE POOL");
    return 2;
  }
  std::string request = kind;
  for (const std::string& a : args) request += " " + a;
  return control_request(run_dir, request);
}

// ---- compile / check ----

// Loads and compiles (geo tables included); prints file:line:col (or file: message) and returns
// false on error. Members count as configured (modes, no probe results), and the switch policy
// decides each rule's active set from that, as gtm-control would at start-up.
bool compile(const std::string& config, uint64_t generation, std::vector<uint8_t>* image,
             control::SnapshotModel* model_out = nullptr) {
  control::LoadedConfig loaded;
  control::ConfigError err;
  if (!control::load_config_file(config, &loaded, &err)) {
    std::fprintf(stderr, "%s\n", err.to_string().c_str());
    return false;
  }
  if (!loaded.geo.empty()) {
    std::string geo_error;
    if (!control::geo::compile_shared(loaded.geo, &loaded.model.geo, &geo_error)) {
      std::fprintf(stderr, "%s: geo: %s\n", config.c_str(), geo_error.c_str());
      return false;
    }
  }
  control::SwitchTracker().apply(&loaded.model, control::SwitchClock::now());
  loaded.model.generation = generation;
  std::string error;
  if (!control::build_snapshot(loaded.model, image, &error)) {
    std::fprintf(stderr, "%s: %s\n", config.c_str(), error.c_str());
    return false;
  }
  if (model_out != nullptr) *model_out = std::move(loaded.model);
  return true;
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

int cmd_compile(const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  uint64_t generation = 1;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--generation" && i + 1 < args.size()) {
      if (!parse_u64(args[++i], &generation) || generation == 0) {
        std::fprintf(stderr, "gtmctl compile: bad generation %s\n", args[i].c_str());
        return 2;
      }
    } else {
      positional.push_back(args[i]);
    }
  }
  if (positional.size() != 2) {
    std::fprintf(stderr, "usage: gtmctl compile CONFIG OUTPUT [--generation N]\n");
    return 2;
  }
  std::vector<uint8_t> image;
  if (!compile(positional[0], generation, &image)) return 1;
  std::string error;
  if (!snap::write_snapshot_file(positional[1], image.data(), image.size(), &error)) {
    std::fprintf(stderr, "gtmctl: %s: %s\n", positional[1].c_str(), error.c_str());
    return 1;
  }
  std::printf("wrote %s (%zu bytes, generation %llu)\n", positional[1].c_str(), image.size(),
              static_cast<unsigned long long>(generation));
  return 0;
}

int cmd_check(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: gtmctl check CONFIG\n");
    return 2;
  }
  std::vector<uint8_t> image;
  control::SnapshotModel model;
  if (!compile(args[0], 1, &image, &model)) return 1;
  std::printf("%s: OK (%zu zones, %zu services, %zu bytes)\n", args[0].c_str(), model.zones.size(),
              model.services.size(), image.size());
  return 0;
}

// ---- query ----

struct QueryOptions {
  std::string name;
  std::string type;
  std::string client;
  std::string ecs;
  std::string snapshot_file;
  std::string config;
  bool tcp = false;
};

// EDNS Client Subnet option data (RFC 7871 section 6) from "ADDR/LEN" or a bare address.
bool ecs_option_data(const std::string& text, std::vector<uint8_t>* data, std::string* error) {
  std::string addr = text;
  int prefix = -1;
  if (size_t slash = text.find('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    uint64_t p = 0;
    if (!parse_u64(text.substr(slash + 1), &p) || p > 128) {
      *error = "bad prefix length in " + text;
      return false;
    }
    prefix = static_cast<int>(p);
  }
  uint8_t bytes[16];
  uint16_t family;
  int max_prefix;
  if (inet_pton(AF_INET, addr.c_str(), bytes) == 1) {
    family = 1;
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), bytes) == 1) {
    family = 2;
    max_prefix = 128;
  } else {
    *error = "bad ECS address " + addr;
    return false;
  }
  if (prefix < 0) prefix = max_prefix;
  if (prefix > max_prefix) {
    *error = "prefix length too long in " + text;
    return false;
  }
  size_t addr_len = static_cast<size_t>((prefix + 7) / 8);
  // The address must be zero beyond the prefix (section 6), so mask the last octet.
  if (prefix % 8 != 0) bytes[addr_len - 1] &= static_cast<uint8_t>(0xFF00 >> (prefix % 8));
  data->assign({static_cast<uint8_t>(family >> 8), static_cast<uint8_t>(family),
                static_cast<uint8_t>(prefix), 0});
  data->insert(data->end(), bytes, bytes + addr_len);
  return true;
}

struct PktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktDeleter>;

bool build_query(const QueryOptions& o, std::vector<uint8_t>* wire, std::string* error) {
  ldns_rr_type type = ldns_get_rr_type_by_name(o.type.c_str());
  if (type == 0) {
    *error = "unknown record type " + o.type;
    return false;
  }
  ldns_rdf* qname = ldns_dname_new_frm_str(o.name.c_str());
  if (qname == nullptr) {
    *error = "bad name " + o.name;
    return false;
  }
  // ldns_pkt_query_new takes ownership of qname.
  PktPtr pkt(ldns_pkt_query_new(qname, type, LDNS_RR_CLASS_IN, 0));
  if (!pkt) {
    *error = "cannot build the query";
    return false;
  }
  ldns_pkt_set_random_id(pkt.get());
  ldns_pkt_set_edns_udp_size(pkt.get(), 1232);
  if (!o.ecs.empty()) {
    std::vector<uint8_t> option;
    if (!ecs_option_data(o.ecs, &option, error)) return false;
    // Raw OPT RDATA: OPTION-CODE, OPTION-LENGTH, then the option itself.
    std::vector<uint8_t> rdata = {0, LDNS_EDNS_CLIENT_SUBNET, 0,
                                  static_cast<uint8_t>(option.size())};
    rdata.insert(rdata.end(), option.begin(), option.end());
    ldns_pkt_set_edns_data(
        pkt.get(), ldns_rdf_new_frm_data(LDNS_RDF_TYPE_UNKNOWN, rdata.size(), rdata.data()));
  }
  uint8_t* buf = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&buf, pkt.get(), &size) != LDNS_STATUS_OK) {
    *error = "cannot encode the query";
    return false;
  }
  wire->assign(buf, buf + size);
  std::free(buf);
  return true;
}

bool parse_client(const std::string& text, engine::ClientAddr* client) {
  if (inet_pton(AF_INET, text.c_str(), client->addr) == 1) {
    client->family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), client->addr) == 1) {
    client->family = 6;
    return true;
  }
  return false;
}

int cmd_query(const std::string& run_dir, const std::vector<std::string>& args) {
  QueryOptions o;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto take = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--client") {
      ok = take(&o.client);
    } else if (a == "--ecs") {
      ok = take(&o.ecs);
    } else if (a == "--snapshot") {
      ok = take(&o.snapshot_file);
    } else if (a == "--config") {
      ok = take(&o.config);
    } else if (a == "--tcp") {
      o.tcp = true;
    } else if (a.size() > 1 && a[0] == '-') {
      ok = false;
    } else {
      positional.push_back(a);
    }
    if (!ok) {
      std::fprintf(stderr, "gtmctl query: bad argument %s\n", a.c_str());
      return 2;
    }
  }
  if (positional.size() != 2) {
    std::fprintf(stderr,
                 "usage: gtmctl query NAME TYPE [--client IP] [--ecs PREFIX] [--tcp]\n"
                 "                    [--snapshot FILE | --config FILE]\n");
    return 2;
  }
  o.name = positional[0];
  o.type = positional[1];

  engine::ClientAddr client;
  if (!o.client.empty() && !parse_client(o.client, &client)) {
    std::fprintf(stderr, "gtmctl query: bad client address %s\n", o.client.c_str());
    return 2;
  }

  // The image: compiled on the fly, or the file the dataplane loads at start-up.
  std::vector<uint8_t> compiled;
  std::unique_ptr<snap::LoadedSnapshot> loaded;
  snap::SnapshotView compiled_view;
  const snap::SnapshotView* view = nullptr;
  std::string error;
  if (!o.config.empty()) {
    if (!compile(o.config, 1, &compiled)) return 1;
    if (!compiled_view.validate(compiled.data(), compiled.size(), &error)) {
      std::fprintf(stderr, "gtmctl: compiled image does not validate: %s\n", error.c_str());
      return 1;
    }
    view = &compiled_view;
  } else {
    if (o.snapshot_file.empty()) wait_for_saved_snapshot(run_dir);
    std::string path = o.snapshot_file.empty()
                           ? control::run_dir_path(run_dir, proto::kLastGoodSnapshot)
                           : o.snapshot_file;
    loaded.reset(snap::LoadedSnapshot::from_file(path, &error));
    if (!loaded) {
      if (error.find(path) == std::string::npos) error = path + ": " + error;
      std::fprintf(stderr, "gtmctl: %s\n", error.c_str());
      return 1;
    }
    view = &loaded->view();
  }

  std::vector<uint8_t> query;
  if (!build_query(o, &query, &error)) {
    std::fprintf(stderr, "gtmctl query: %s\n", error.c_str());
    return 2;
  }

  std::vector<uint8_t> response(65535);
  auto ws = std::make_unique<engine::WorkerState>();
  auto explain = std::make_unique<engine::Explain>();
  size_t len = engine::answer_query(
      view, query.data(), query.size(), response.data(), response.size(), client,
      o.tcp ? engine::Transport::kTcp : engine::Transport::kUdp, *ws, explain.get());
  std::printf(";; snapshot generation %llu, %s\n",
              static_cast<unsigned long long>(view->generation()), o.tcp ? "TCP" : "UDP");
  if (len == 0) {
    std::printf(";; no response: the query was dropped\n");
  } else {
    ldns_pkt* parsed = nullptr;
    if (ldns_wire2pkt(&parsed, response.data(), len) != LDNS_STATUS_OK) {
      std::printf(";; response of %zu bytes that ldns cannot parse\n", len);
    } else {
      PktPtr pkt(parsed);
      timeval now{};
      gettimeofday(&now, nullptr);
      ldns_pkt_set_timestamp(pkt.get(), now);  // ldns prints it as ";; WHEN:"
      char* text = ldns_pkt2str(pkt.get());
      std::printf("%s", text != nullptr ? text : ";; (cannot print the response)\n");
      std::free(text);
    }
  }
  int lines = std::min(explain->count, engine::Explain::kMaxLines);
  for (int i = 0; i < lines; ++i) std::printf("explain: %s\n", explain->lines[i]);
  return 0;
}

int gtmctl_main(int argc, char** argv) {
  std::string run_dir = proto::kDefaultRunDir;
  std::string command;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--run-dir" && i + 1 < argc) {
      run_dir = argv[++i];
    } else if (a.compare(0, 10, "--run-dir=") == 0) {
      run_dir = a.substr(10);
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (command.empty()) {
      command = a;
    } else {
      args.push_back(a);
    }
  }
  if (command == "status") return cmd_status(run_dir, args);
  if (command == "reload") return cmd_reload(run_dir, args);
  if (command == "compile") return cmd_compile(args);
  if (command == "check") return cmd_check(args);
  if (command == "query") return cmd_query(run_dir, args);
  if (command == "member") return cmd_override(run_dir, "MEMBER", args);
  if (command == "pool") return cmd_override(run_dir, "POOL", args);
  if (command.empty()) {
    usage(stderr);
  } else {
    std::fprintf(stderr, "gtmctl: unknown command %s\n", command.c_str());
    usage(stderr);
  }
  return 2;
}

}  // namespace
}  // namespace gtm::ctl

int main(int argc, char** argv) {
  try {
    return gtm::ctl::gtmctl_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gtmctl: fatal: %s\n", e.what());
    return 1;
  }
}
