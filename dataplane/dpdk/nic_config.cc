#include "dataplane/dpdk/nic_config.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <utility>

namespace gtm::dpdk {

namespace {

constexpr uint32_t kMaxLcoreId = 1023;
constexpr uint32_t kMaxQueue = 1023;
constexpr uint32_t kMaxRouteTable = 0x7FFFFFFF;
constexpr size_t kMaxFileSize = 1u << 20;
constexpr size_t kIfNameMax = 15;  // IFNAMSIZ - 1
// Per queue, besides the descriptor rings: the lcore's tx and exception buffers and one rx burst
// (64 + 64 + 32), and the exception device's own rings (2 x 256).
constexpr uint32_t kPerQueueSlack = 64 + 64 + 32 + 2 * 256;

// Walking the YAML tree is deep and every step can fail, so the walk throws internally; the two
// load_* functions are the only places that catch.
struct Failure {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void fail(const YAML::Mark& mark, std::string message) {
  throw Failure{mark, std::move(message)};
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

Where where_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

// A map whose keys are checked against a list, with the dotted path of the map for messages
// ("ports[0].offloads").
class Map {
 public:
  Map(const YAML::Node& node, std::string path, std::initializer_list<std::string_view> keys)
      : path_(std::move(path)), node_(node) {
    if (!node.IsMap()) fail(node.Mark(), path_ + " must be a map");
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) fail(key.Mark(), "keys in " + path_ + " must be plain strings");
      const std::string& k = key.Scalar();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        std::string known;
        for (std::string_view allowed : keys)
          known += (known.empty() ? "" : ", ") + std::string(allowed);
        fail(key.Mark(), "unknown key " + quoted(k) + " in " + path_ + " (known: " + known + ")");
      }
      for (const auto& [seen, value] : entries_) {
        if (seen == k) fail(key.Mark(), "duplicate key " + quoted(k) + " in " + path_);
      }
      entries_.emplace_back(k, it->second);
    }
  }

  // The value of `key`, or an undefined node when absent or empty (both mean "the default").
  YAML::Node get(std::string_view key) const {
    for (const auto& [k, v] : entries_) {
      if (k == key && !v.IsNull()) return v;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }
  YAML::Node require(std::string_view key) const {
    YAML::Node v = get(key);
    if (!v.IsDefined()) fail(node_.Mark(), "missing key " + quoted(key) + " in " + path_);
    return v;
  }
  std::string path(std::string_view key) const { return path_ + "." + std::string(key); }

 private:
  std::string path_;
  YAML::Node node_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
};

const std::string& scalar(const YAML::Node& v, const std::string& what) {
  if (!v.IsScalar()) fail(v.Mark(), what + " must be a single value, not a list or map");
  return v.Scalar();
}

uint32_t to_uint(const YAML::Node& v, const std::string& what, uint32_t lo, uint32_t hi) {
  const std::string& s = scalar(v, what);
  uint64_t value = 0;
  bool ok = !s.empty() && s.size() <= 10;
  for (char c : s) {
    if (c < '0' || c > '9') ok = false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || value < lo || value > hi) {
    fail(v.Mark(), what + " must be an integer in " + std::to_string(lo) + ".." +
                       std::to_string(hi) + ", got " + quoted(s));
  }
  return static_cast<uint32_t>(value);
}

// Optional integer setting: leaves *out alone when absent.
template <typename T>
void opt_uint(const Map& m, std::string_view key, uint32_t lo, uint32_t hi, T* out,
              Where* where = nullptr) {
  const YAML::Node v = m.get(key);
  if (!v.IsDefined()) return;
  *out = static_cast<T>(to_uint(v, m.path(key), lo, hi));
  if (where != nullptr) *where = where_of(v);
}

template <typename T>
T to_choice(const YAML::Node& v, const std::string& what,
            std::initializer_list<std::pair<std::string_view, T>> choices) {
  const std::string& s = scalar(v, what);
  std::string names;
  for (const auto& [name, value] : choices) {
    if (s == name) return value;
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  fail(v.Mark(), what + " must be one of " + names + "; got " + quoted(s));
}

void opt_offload(const Map& m, std::string_view key, Offload* out, Where* where) {
  const YAML::Node v = m.get(key);
  if (!v.IsDefined()) return;
  *out = to_choice<Offload>(v, m.path(key),
                            {{"auto", Offload::kAuto},
                             {"hardware", Offload::kHardware},
                             {"software", Offload::kSoftware}});
  *where = where_of(v);
}

YAML::Node to_list(const YAML::Node& v, const std::string& what) {
  if (!v.IsSequence()) fail(v.Mark(), what + " must be a list");
  return v;
}

std::string item(const std::string& list, size_t i) {
  return list + "[" + std::to_string(i) + "]";
}

bool all_chars(std::string_view s, std::string_view extra) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

// [DDDD:]BB:DD.F
bool is_pci_address(std::string_view s) {
  if (s.size() == 12) {
    if (s[4] != ':' || !is_hex(s.substr(0, 4))) return false;
    s.remove_prefix(5);
  }
  return s.size() == 7 && is_hex(s.substr(0, 2)) && s[2] == ':' && is_hex(s.substr(3, 2)) &&
         s[5] == '.' && s[6] >= '0' && s[6] <= '7';
}

// "net_<driver><n>[,args]": a DPDK virtual device. Its name (before the comma) is the ethdev name.
bool is_vdev(std::string_view s) {
  const std::string_view name = s.substr(0, s.find(','));
  return name.size() > 4 && name.substr(0, 4) == "net_" && all_chars(name, "_") &&
         s.find_first_of(" \t\r\n") == std::string_view::npos;
}

void parse_mac(const YAML::Node& v, const std::string& what, uint8_t out[6]) {
  const std::string& s = scalar(v, what);
  unsigned b[6];
  char tail;
  if (s.size() != 17 ||
      std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                  &tail) != 6 ||
      !all_chars(s, ":")) {
    fail(v.Mark(), what + " must be a MAC address like 02:00:00:00:00:01, got " + quoted(s));
  }
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(b[i]);
  if (out[0] & 1)
    fail(v.Mark(), what + " must be a unicast address (lowest bit of the first octet clear)");
}

// An address, with "/len" when `allow_prefix`. Returns the family (4 or 6).
int parse_ip(const YAML::Node& v, const std::string& what, bool allow_prefix, uint8_t addr[16],
             uint8_t* prefix_len) {
  const std::string& s = scalar(v, what);
  const size_t slash = s.find('/');
  const std::string host = s.substr(0, slash);
  const int family = host.find(':') == std::string::npos ? 4 : 6;
  const bool ok = s.find('\0') == std::string::npos &&
                  inet_pton(family == 4 ? AF_INET : AF_INET6, host.c_str(), addr) == 1;
  if (!ok || (slash != std::string::npos && !allow_prefix)) {
    fail(v.Mark(), what + " must be an IPv4 or IPv6 address" +
                       std::string(allow_prefix ? " with an optional /prefix" : "") + ", got " +
                       quoted(s));
  }
  const uint32_t max_len = family == 4 ? 32 : 128;
  uint32_t len = max_len;
  if (slash != std::string::npos) {
    const std::string digits = s.substr(slash + 1);
    len = 0;
    bool good = !digits.empty() && digits.size() <= 3;
    for (char c : digits) {
      if (c < '0' || c > '9') good = false;
      len = len * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!good || len < 1 || len > max_len) {
      fail(v.Mark(),
           what + ": prefix length must be 1.." + std::to_string(max_len) + ", got " + quoted(s));
    }
  }
  if (prefix_len != nullptr) *prefix_len = static_cast<uint8_t>(len);
  return family;
}

bool host_bits_zero(const ServiceAddress& a) {
  const int bits = a.family == 4 ? 32 : 128;
  if (a.prefix_len == bits) return false;  // a single address is always a host
  for (int bit = a.prefix_len; bit < bits; ++bit) {
    if (a.addr[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

void load_exception(const YAML::Node& node, const std::string& path, PortConfig* port) {
  ExceptionConfig& e = port->exception;
  e.where = where_of(node);
  const Map m(node, path,
              {"kind", "interface", "device", "rate_limit_pps", "gateway_ipv4", "gateway_ipv6",
               "route_table"});
  if (YAML::Node v = m.get("kind"); v.IsDefined()) {
    e.kind = to_choice<ExceptionKind>(v, m.path("kind"),
                                      {{"tap", ExceptionKind::kTap},
                                       {"vdev", ExceptionKind::kVdev},
                                       {"none", ExceptionKind::kNone}});
  }
  const YAML::Node iface = m.get("interface");
  const YAML::Node device = m.get("device");
  if (e.kind == ExceptionKind::kTap) {
    if (device.IsDefined()) fail(device.Mark(), m.path("device") + " is for kind: vdev");
    if (iface.IsDefined()) {
      e.interface = scalar(iface, m.path("interface"));
      if (e.interface.empty() || e.interface.size() > kIfNameMax ||
          !all_chars(e.interface, "-_.") || e.interface == "." || e.interface == "..") {
        fail(iface.Mark(), m.path("interface") +
                               " must be an interface name of 1..15 letters, digits, '-', '_', "
                               "'.'; got " +
                               quoted(e.interface));
      }
    } else {
      e.interface = ("gtm-" + port->name).substr(0, kIfNameMax);
    }
  } else if (iface.IsDefined()) {
    fail(iface.Mark(), m.path("interface") + " is for kind: tap");
  }
  if (e.kind == ExceptionKind::kVdev) {
    if (!device.IsDefined()) fail(node.Mark(), "missing key 'device' in " + path + " (kind: vdev)");
    e.device = scalar(device, m.path("device"));
    e.device_where = where_of(device);
    if (!is_vdev(e.device)) {
      fail(device.Mark(), m.path("device") +
                              " must be a vdev string 'net_<driver><n>[,args]', got " +
                              quoted(e.device));
    }
  } else if (device.IsDefined() && e.kind == ExceptionKind::kNone) {
    fail(device.Mark(), m.path("device") + " is for kind: vdev");
  }
  opt_uint(m, "rate_limit_pps", 1, 100000000, &e.rate_limit_pps);
  for (const char* key : {"gateway_ipv4", "gateway_ipv6"}) {
    const YAML::Node v = m.get(key);
    if (!v.IsDefined()) continue;
    uint8_t buf[16];
    const int family = parse_ip(v, m.path(key), false, buf, nullptr);
    if ((family == 4) != (std::strcmp(key, "gateway_ipv4") == 0)) {
      fail(v.Mark(),
           m.path(key) + " must be an IPv" + std::string(family == 4 ? "6" : "4") + " address");
    }
    (family == 4 ? e.gateway_ipv4 : e.gateway_ipv6) = v.Scalar();
  }
  const YAML::Node table = m.get("route_table");
  if (table.IsDefined()) {
    e.route_table = to_uint(table, m.path("route_table"), 1, kMaxRouteTable);
    if (e.route_table >= 253 && e.route_table <= 255) {
      fail(table.Mark(),
           m.path("route_table") +
               " must not be one of the kernel's own tables (253 default, 254 main, 255 local)");
    }
  }
  const bool gateway = !e.gateway_ipv4.empty() || !e.gateway_ipv6.empty();
  if (gateway && e.route_table == 0) {
    fail(node.Mark(),
         path + ": a gateway needs 'route_table' (the policy-routing table gtm fills)");
  }
  if (gateway && e.kind != ExceptionKind::kTap) {
    fail(node.Mark(), path + ": gateways are set up on a tap exception interface only");
  }
}

void load_port(const YAML::Node& node, const std::string& path, PortConfig* p) {
  p->where = where_of(node);
  const Map m(
      node, path,
      {"name", "device", "mac", "mtu", "rx_descriptors", "tx_descriptors", "mbufs", "mbuf_cache",
       "rss", "offloads", "vlan", "qinq_tpid", "dns_port", "service_addresses", "exception"});
  const YAML::Node name = m.require("name");
  p->name = scalar(name, m.path("name"));
  if (p->name.empty() || p->name.size() > 32 || !all_chars(p->name, "-_")) {
    fail(name.Mark(),
         m.path("name") + " must be 1..32 letters, digits, '-' or '_', got " + quoted(p->name));
  }
  const YAML::Node device = m.require("device");
  p->device = scalar(device, m.path("device"));
  p->device_where = where_of(device);
  // A PCI address may carry PMD devargs: "0000:af:00.0,mprq_en=1".
  p->device_is_pci = is_pci_address(std::string_view(p->device).substr(0, p->device.find(','))) &&
                     p->device.find_first_of(" \t\r\n") == std::string::npos;
  if (!p->device_is_pci && !is_vdev(p->device)) {
    fail(device.Mark(), m.path("device") +
                            " must be a PCI address (0000:03:00.0) or a vdev string "
                            "'net_<driver><n>[,args]', got " +
                            quoted(p->device));
  }
  if (YAML::Node v = m.get("mac"); v.IsDefined()) {
    parse_mac(v, m.path("mac"), p->mac);
    p->has_mac = true;
    p->mac_where = where_of(v);
  }
  opt_uint(m, "mtu", 1280, 9000, &p->mtu, &p->mtu_where);
  opt_uint(m, "rx_descriptors", 32, 32768, &p->rx_descriptors, &p->rx_descriptors_where);
  opt_uint(m, "tx_descriptors", 32, 32768, &p->tx_descriptors, &p->tx_descriptors_where);
  opt_uint(m, "mbufs", 1024, 1u << 26, &p->mbufs, &p->mbufs_where);
  // The mempool cache limit (RTE_MEMPOOL_CACHE_MAX_SIZE).
  opt_uint(m, "mbuf_cache", 0, 512, &p->mbuf_cache);
  if (YAML::Node v = m.get("rss"); v.IsDefined()) {
    p->rss = to_choice<RssMode>(
        v, m.path("rss"), {{"udp", RssMode::kUdp}, {"ip", RssMode::kIp}, {"none", RssMode::kNone}});
    p->rss_where = where_of(v);
  }
  if (YAML::Node v = m.get("offloads"); v.IsDefined()) {
    const Map o(v, m.path("offloads"), {"ipv4_checksum", "udp_checksum", "rx_checksum"});
    opt_offload(o, "ipv4_checksum", &p->ipv4_checksum, &p->ipv4_checksum_where);
    opt_offload(o, "udp_checksum", &p->udp_checksum, &p->udp_checksum_where);
    opt_offload(o, "rx_checksum", &p->rx_checksum, &p->rx_checksum_where);
  }
  if (YAML::Node v = m.get("vlan"); v.IsDefined()) {
    if (v.IsSequence()) {
      if (v.size() != 2) fail(v.Mark(), m.path("vlan") + " as a list is [outer, inner] (QinQ)");
      p->vlan_count = 2;
      for (size_t i = 0; i < 2; ++i) {
        p->vlan_id[i] = static_cast<uint16_t>(to_uint(v[i], item(m.path("vlan"), i), 1, 4094));
      }
    } else {
      p->vlan_count = 1;
      p->vlan_id[0] = static_cast<uint16_t>(to_uint(v, m.path("vlan"), 1, 4094));
    }
  }
  if (YAML::Node v = m.get("qinq_tpid"); v.IsDefined()) {
    p->qinq_tpid = to_choice<uint16_t>(
        v, m.path("qinq_tpid"), {{"0x88a8", 0x88A8}, {"0x9100", 0x9100}, {"0x8100", 0x8100}});
    if (p->vlan_count != 2)
      fail(v.Mark(), m.path("qinq_tpid") + " needs two VLAN tags (vlan: [outer, inner])");
  }
  opt_uint(m, "dns_port", 1, 65535, &p->dns_port);

  const std::string addrs_path = m.path("service_addresses");
  const YAML::Node addrs = to_list(m.require("service_addresses"), addrs_path);
  if (addrs.size() == 0) fail(addrs.Mark(), addrs_path + " must not be empty");
  for (size_t i = 0; i < addrs.size(); ++i) {
    ServiceAddress a;
    a.family =
        static_cast<uint8_t>(parse_ip(addrs[i], item(addrs_path, i), true, a.addr, &a.prefix_len));
    a.text = addrs[i].Scalar();
    if (host_bits_zero(a)) {
      fail(addrs[i].Mark(), item(addrs_path, i) + ": " + quoted(a.text) +
                                " is a network address; give the host address with its prefix");
    }
    for (const ServiceAddress& seen : p->service_addresses) {
      if (seen.family == a.family && std::memcmp(seen.addr, a.addr, 16) == 0) {
        fail(addrs[i].Mark(), item(addrs_path, i) + ": duplicate address " + quoted(a.text));
      }
    }
    p->service_addresses.push_back(a);
  }
  if (YAML::Node v = m.get("exception"); v.IsDefined()) {
    load_exception(v, m.path("exception"), p);
  } else {
    p->exception.interface = ("gtm-" + p->name).substr(0, kIfNameMax);
    p->exception.where = p->where;
  }
  for (const char* family : {"4", "6"}) {
    const std::string& gw =
        family[0] == '4' ? p->exception.gateway_ipv4 : p->exception.gateway_ipv6;
    const bool have =
        std::any_of(p->service_addresses.begin(), p->service_addresses.end(),
                    [&](const ServiceAddress& a) { return a.family == family[0] - '0'; });
    if (!gw.empty() && !have) {
      fail(node.Mark(), path + ".exception.gateway_ipv" + family +
                            " is set but the port has no IPv" + family + " service address");
    }
  }
}

void load_lcore(const YAML::Node& node, const std::string& path, const NicConfig& cfg,
                LcoreConfig* lc) {
  const Map m(node, path, {"lcore", "queues"});
  const YAML::Node id = m.require("lcore");
  lc->lcore = to_uint(id, m.path("lcore"), 0, kMaxLcoreId);
  lc->where = where_of(id);
  const std::string qpath = m.path("queues");
  const YAML::Node queues = to_list(m.require("queues"), qpath);
  if (queues.size() == 0) fail(queues.Mark(), qpath + " must not be empty");
  for (size_t i = 0; i < queues.size(); ++i) {
    const Map q(queues[i], item(qpath, i), {"port", "queue"});
    const YAML::Node port = q.require("port");
    const std::string& name = scalar(port, q.path("port"));
    QueueAssignment a;
    auto it = std::find_if(cfg.ports.begin(), cfg.ports.end(),
                           [&](const PortConfig& p) { return p.name == name; });
    if (it == cfg.ports.end())
      fail(port.Mark(), q.path("port") + ": no port named " + quoted(name));
    a.port = static_cast<uint32_t>(it - cfg.ports.begin());
    a.queue = static_cast<uint16_t>(to_uint(q.require("queue"), q.path("queue"), 0, kMaxQueue));
    lc->queues.push_back(a);
  }
}

// Options derived from the ports and lcores; giving them again would contradict the file.
void check_eal_args(const YAML::Node& list, const std::string& path,
                    std::vector<std::string>* out) {
  static const char* const kDerived[] = {
      "-l",      "-c",      "--lcores", "--main-lcore",    "--master-lcore",  "-a", "-b",
      "--allow", "--block", "--vdev",   "--pci-whitelist", "--pci-blacklist", "-w"};
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& arg = scalar(list[i], item(path, i));
    const std::string opt = arg.substr(0, arg.find('='));
    for (const char* d : kDerived) {
      if (opt == d) {
        fail(list[i].Mark(),
             item(path, i) + ": " + quoted(arg) +
                 " is derived from main_lcore, lcores and ports; do not give it here");
      }
    }
    out->push_back(arg);
  }
}

void load(const YAML::Node& root, NicConfig* cfg) {
  if (root.IsNull()) fail(root.Mark(), "the NIC configuration is empty");
  const Map top(root, "the NIC configuration",
                {"eal", "main_lcore", "ports", "lcores", "tx_drain_us", "idle_sleep_us"});
  if (YAML::Node eal = top.get("eal"); eal.IsDefined()) {
    const Map m(eal, "eal", {"args"});
    if (YAML::Node args = m.get("args"); args.IsDefined()) {
      check_eal_args(to_list(args, "eal.args"), "eal.args", &cfg->eal_args);
    }
  }
  opt_uint(top, "main_lcore", 0, kMaxLcoreId, &cfg->main_lcore, &cfg->main_lcore_where);
  opt_uint(top, "tx_drain_us", 1, 100000, &cfg->tx_drain_us);
  opt_uint(top, "idle_sleep_us", 0, 1000000, &cfg->idle_sleep_us);

  const YAML::Node ports = to_list(top.require("ports"), "ports");
  if (ports.size() == 0) fail(ports.Mark(), "ports must not be empty");
  for (size_t i = 0; i < ports.size(); ++i) {
    PortConfig p;
    load_port(ports[i], item("ports", i), &p);
    for (const PortConfig& seen : cfg->ports) {
      if (seen.name == p.name)
        fail(ports[i].Mark(), item("ports", i) + ": duplicate port name " + quoted(p.name));
      if (seen.device.substr(0, seen.device.find(',')) == p.device.substr(0, p.device.find(','))) {
        fail(ports[i]["device"].Mark(), item("ports", i) + ".device: " + quoted(p.device) +
                                            " is already port " + quoted(seen.name));
      }
      if (p.exception.kind == ExceptionKind::kTap && seen.exception.kind == ExceptionKind::kTap &&
          seen.exception.interface == p.exception.interface) {
        fail(ports[i].Mark(), item("ports", i) +
                                  ".exception.interface: " + quoted(p.exception.interface) +
                                  " is already used by port " + quoted(seen.name));
      }
    }
    cfg->ports.push_back(std::move(p));
  }

  const YAML::Node lcores = to_list(top.require("lcores"), "lcores");
  if (lcores.size() == 0) fail(lcores.Mark(), "lcores must not be empty");
  // owner[port][queue] = index of the lcore entry owning it, +1 (0: nobody yet).
  std::vector<std::vector<size_t>> owner(cfg->ports.size());
  for (size_t i = 0; i < lcores.size(); ++i) {
    LcoreConfig lc;
    const std::string path = item("lcores", i);
    load_lcore(lcores[i], path, *cfg, &lc);
    if (lc.lcore == cfg->main_lcore) {
      fail(lcores[i]["lcore"].Mark(), path + ".lcore: " + std::to_string(lc.lcore) +
                                          " is the main lcore (main_lcore), which polls no queue");
    }
    for (const LcoreConfig& seen : cfg->lcores) {
      if (seen.lcore == lc.lcore) {
        fail(lcores[i]["lcore"].Mark(), path + ".lcore: lcore " + std::to_string(lc.lcore) +
                                            " is listed twice; give one entry all its queues");
      }
    }
    for (size_t q = 0; q < lc.queues.size(); ++q) {
      const QueueAssignment& a = lc.queues[q];
      std::vector<size_t>& o = owner[a.port];
      if (o.size() <= a.queue) o.resize(a.queue + 1u, 0);
      if (o[a.queue] != 0) {
        fail(lcores[i]["queues"][q].Mark(),
             item(path + ".queues", q) + ": queue " + std::to_string(a.queue) + " of port " +
                 quoted(cfg->ports[a.port].name) + " is already owned by " +
                 item("lcores", o[a.queue] - 1) + " (lcore " +
                 std::to_string(cfg->lcores[o[a.queue] - 1].lcore) + ")");
      }
      o[a.queue] = i + 1;
    }
    cfg->lcores.push_back(std::move(lc));
  }
  for (size_t p = 0; p < cfg->ports.size(); ++p) {
    PortConfig& port = cfg->ports[p];
    const std::vector<size_t>& o = owner[p];
    if (o.empty()) {
      fail(ports[p].Mark(), item("ports", p) + ": port " + quoted(port.name) +
                                " has no queue; give one to an lcore (lcores[].queues)");
    }
    for (size_t q = 0; q < o.size(); ++q) {
      if (o[q] == 0) {
        fail(ports[p].Mark(), item("ports", p) + ": queue " + std::to_string(q) + " of port " +
                                  quoted(port.name) +
                                  " is owned by no lcore (queues are numbered " + "0.." +
                                  std::to_string(o.size() - 1) + " without gaps)");
      }
    }
    port.queue_count = static_cast<uint16_t>(o.size());
    if (port.queue_count > 1 && port.rss == RssMode::kNone) {
      fail(ports[p].Mark(), item("ports", p) + ".rss: none, but the port has " +
                                std::to_string(port.queue_count) +
                                " queues; without RSS only queue 0 would receive");
    }
    uint32_t lcores_on_port = 0;
    for (const LcoreConfig& lc : cfg->lcores) {
      lcores_on_port += std::any_of(lc.queues.begin(), lc.queues.end(),
                                    [&](const QueueAssignment& a) { return a.port == p; });
    }
    const uint32_t need = min_mbufs(port, lcores_on_port);
    if (port.mbufs == 0) {
      port.mbufs = need;
    } else if (port.mbufs < need) {
      fail(ports[p]["mbufs"].Mark(), item("ports", p) + ".mbufs: " + std::to_string(port.mbufs) +
                                         " is too few for " + std::to_string(port.queue_count) +
                                         " queue(s) of " + std::to_string(port.rx_descriptors) +
                                         " rx + " + std::to_string(port.tx_descriptors) +
                                         " tx descriptors and " + std::to_string(lcores_on_port) +
                                         " lcore cache(s) of " + std::to_string(port.mbuf_cache) +
                                         "; need at least " + std::to_string(need));
    }
  }
}

bool set_error(NicConfigError* err, const std::string& file, const YAML::Mark& mark,
               const std::string& message) {
  err->file = file;
  err->line = mark.line >= 0 ? mark.line + 1 : 0;
  err->column = mark.line >= 0 ? mark.column + 1 : 0;
  err->message = message;
  return false;
}

}  // namespace

uint32_t min_mbufs(const PortConfig& port, uint32_t lcores_on_port) {
  const uint64_t per_queue = uint64_t{port.rx_descriptors} + port.tx_descriptors + kPerQueueSlack;
  // A mempool cache may hold up to 1.5 times its size (rte_mempool.h, flushthresh).
  const uint64_t caches = uint64_t{lcores_on_port} * port.mbuf_cache * 3 / 2;
  const uint64_t need = per_queue * port.queue_count + caches;
  return static_cast<uint32_t>(std::min<uint64_t>(need, 1u << 26));
}

std::string NicConfig::at(const Where& w) const {
  if (w.line == 0) return path + ": ";
  return path + ":" + std::to_string(w.line) + ":" + std::to_string(w.column) + ": ";
}

std::string NicConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

bool load_nic_config_string(const std::string& yaml, const std::string& name_for_errors,
                            NicConfig* out, NicConfigError* err) {
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml);
    if (docs.size() > 1) fail(docs[1].Mark(), "one YAML document per NIC configuration");
    NicConfig cfg;
    cfg.path = name_for_errors;
    load(docs.empty() ? YAML::Node() : docs[0], &cfg);
    *out = std::move(cfg);
    return true;
  } catch (const Failure& f) {
    return set_error(err, name_for_errors, f.mark, f.message);
  } catch (const YAML::Exception& e) {
    return set_error(err, name_for_errors, e.mark, e.msg);
  } catch (const std::exception& e) {
    *err = NicConfigError{name_for_errors, 0, 0, e.what()};
    return false;
  }
}

bool load_nic_config_file(const std::string& path, NicConfig* out, NicConfigError* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = NicConfigError{path, 0, 0, "cannot open: " + std::string(std::strerror(errno))};
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > kMaxFileSize) {
    *err = NicConfigError{path, 0, 0, "larger than 1 MiB; this is not a NIC configuration"};
    return false;
  }
  return load_nic_config_string(text.str(), path, out, err);
}

}  // namespace gtm::dpdk
