// The exception path's devices: where frames that are not DNS for a service address go, and where
// the kernel's own frames come from.
//
// kind: tap creates a net_tap interface in this process's network namespace, with the port's MAC
// address, so the kernel answers ARP and neighbour solicitations with the address the port really
// has. This code then runs, for port P with interface IF, MTU M, service addresses A/len:
//
//   echo 0 > /proc/sys/net/ipv6/conf/IF/accept_ra ; echo 0 > .../autoconf
//   ip link set dev IF mtu M up
//   ip addr add A/len dev IF                 (IPv4)
//   ip -6 addr add A/len dev IF nodad        (IPv6: usable at once, no duplicate detection wait)
// and with a gateway and route_table T:
//   ip [-6] rule add from A lookup T         (removed again at shutdown)
//   ip [-6] route replace default via GW dev IF table T onlink
//
// so that replies from the service addresses (ARP, ICMP, TCP) leave through IF, whatever the
// host's main routing table says. The interface, its addresses and routes vanish with the device.
#include <fcntl.h>
#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dataplane/dpdk/port.h"
#include "dataplane/io/log.h"

extern char** environ;

namespace gtm::dpdk {

namespace {

using io::log_line;

constexpr uint16_t kExceptionDescriptors = 256;
constexpr int kStaleRuleDeletes = 8;

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Runs `ip ARGS...` and waits for it. `quiet` sends its stderr to /dev/null (expected failures).
bool run_ip(const std::vector<std::string>& args, bool quiet, std::string* error) {
  std::vector<std::string> argv_store = {"ip"};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "ip", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    if (error) *error = "cannot run 'ip' (iproute2): " + std::string(std::strerror(rc));
    return false;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (error) *error = "'" + join(argv_store) + "' failed";
    return false;
  }
  return true;
}

void write_proc(const std::string& path, const char* value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;  // IPv6 disabled: nothing to turn off
  if (write(fd, value, std::strlen(value)) < 0) {
    log_line("cannot write %s: %s", path.c_str(), std::strerror(errno));
  }
  close(fd);
}

bool configure_tap_interface(const PortConfig& p, PortRuntime* rt, std::string* error) {
  const std::string& ifname = p.exception.interface;
  for (const char* knob : {"accept_ra", "autoconf"}) {
    write_proc("/proc/sys/net/ipv6/conf/" + ifname + "/" + knob, "0");
  }
  if (!run_ip({"link", "set", "dev", ifname, "mtu", std::to_string(p.mtu), "up"}, false, error)) {
    return false;
  }
  for (const ServiceAddress& a : p.service_addresses) {
    char host[64];
    std::snprintf(host, sizeof host, "%s", a.text.substr(0, a.text.find('/')).c_str());
    const std::string cidr = std::string(host) + "/" + std::to_string(a.prefix_len);
    std::vector<std::string> add =
        a.family == 4 ? std::vector<std::string>{"addr", "add", cidr, "dev", ifname}
                      : std::vector<std::string>{"-6", "addr", "add", cidr, "dev", ifname, "nodad"};
    if (!run_ip(add, false, error)) return false;
    const std::string& gw = a.family == 4 ? p.exception.gateway_ipv4 : p.exception.gateway_ipv6;
    if (gw.empty()) continue;
    const std::string fam = a.family == 4 ? "-4" : "-6";
    const std::string table = std::to_string(p.exception.route_table);
    const std::vector<std::string> del = {fam, "rule", "del", "from", host, "lookup", table};
    // A crashed predecessor may have left its rules behind.
    for (int i = 0; i < kStaleRuleDeletes && run_ip(del, true, nullptr); ++i) {
    }
    if (!run_ip({fam, "rule", "add", "from", host, "lookup", table}, false, error)) return false;
    rt->undo_commands.push_back(del);
    if (!run_ip({fam, "route", "replace", "default", "via", gw, "dev", ifname, "table", table,
                 "onlink"},
                false, error)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool setup_exception(const NicConfig& cfg, size_t index, PortRuntime* rt, std::string* error) {
  const PortConfig& p = cfg.ports[index];
  const ExceptionConfig& e = p.exception;
  const std::string key = "ports[" + std::to_string(index) + "].exception";
  if (e.kind == ExceptionKind::kNone) return true;

  std::string name;
  std::string args;
  if (e.kind == ExceptionKind::kTap) {
    name = "net_tap_gtm" + std::to_string(index);
    args = "iface=" + e.interface + ",mac=" + mac_text(rt->filter.mac);
  } else {
    const size_t comma = e.device.find(',');
    name = e.device.substr(0, comma);
    args = comma == std::string::npos ? "" : e.device.substr(comma + 1);
  }
  const Where& where = e.kind == ExceptionKind::kVdev ? e.device_where : e.where;
  int rc = rte_vdev_init(name.c_str(), args.c_str());
  if (rc != 0 || rte_eth_dev_get_port_by_name(name.c_str(), &rt->exception_port_id) != 0) {
    *error = cfg.at(where) + key + ": cannot create " + name + "," + args + " (" +
             rte_strerror(-rc) + ")" +
             (e.kind == ExceptionKind::kTap ? "; is /dev/net/tun there, and are we root?" : "");
    return false;
  }
  rt->exception_name = name;
  rte_eth_dev_info info;
  rte_eth_dev_info_get(rt->exception_port_id, &info);
  if (info.max_rx_queues < p.queue_count || info.max_tx_queues < p.queue_count) {
    *error = cfg.at(where) + key + ": " + name + " has " +
             std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
             " queue(s) but port '" + p.name + "' has " + std::to_string(p.queue_count) +
             " (each lcore uses the exception queue of its own number)";
    return false;
  }
  rte_eth_conf conf{};
  rc = rte_eth_dev_configure(rt->exception_port_id, p.queue_count, p.queue_count, &conf);
  for (uint16_t q = 0; rc == 0 && q < p.queue_count; ++q) {
    rc = rte_eth_rx_queue_setup(rt->exception_port_id, q, kExceptionDescriptors,
                                static_cast<unsigned>(rte_eth_dev_socket_id(rt->exception_port_id)),
                                nullptr, rt->pool);
    if (rc == 0) {
      rc = rte_eth_tx_queue_setup(
          rt->exception_port_id, q, kExceptionDescriptors,
          static_cast<unsigned>(rte_eth_dev_socket_id(rt->exception_port_id)), nullptr);
    }
  }
  if (rc == 0) rc = rte_eth_dev_start(rt->exception_port_id);
  if (rc != 0) {
    *error = cfg.at(where) + key + ": cannot start " + name + ": " + rte_strerror(-rc);
    return false;
  }
  rt->exception_started = true;
  if (e.kind == ExceptionKind::kTap && !configure_tap_interface(p, rt, error)) {
    *error = cfg.at(where) + key + ": " + *error;
    return false;
  }
  log_line("port %s: exception path %s (%s), %u queue(s)", p.name.c_str(), name.c_str(),
           e.kind == ExceptionKind::kTap ? ("kernel interface " + e.interface).c_str()
                                         : e.device.c_str(),
           p.queue_count);
  return true;
}

void shutdown_port(PortRuntime* rt) {
  for (const std::vector<std::string>& cmd : rt->undo_commands) run_ip(cmd, true, nullptr);
  rt->undo_commands.clear();
  // Closing flushes capture files (pcap) and removes the tap interface with its addresses.
  if (rt->exception_started) {
    rte_eth_dev_stop(rt->exception_port_id);
    rt->exception_started = false;
  }
  if (rt->exception_port_id != kNoPort) {
    rte_eth_dev_close(rt->exception_port_id);
    rt->exception_port_id = kNoPort;
  }
  if (rt->started) {
    rte_eth_dev_stop(rt->port_id);
    rt->started = false;
  }
  if (rt->port_id != kNoPort) {
    rte_eth_dev_close(rt->port_id);
    rt->port_id = kNoPort;
  }
  if (rt->pool != nullptr) {
    rte_mempool_free(rt->pool);
    rt->pool = nullptr;
  }
}

}  // namespace gtm::dpdk
