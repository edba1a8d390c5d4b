#include "dataplane/dpdk/backend.h"

#include <rte_ethdev.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/dpdk/runtime.h"
#include "dataplane/dpdk/telemetry.h"
#include "dataplane/io/control_channel.h"
#include "dataplane/io/listen_addr.h"
#include "dataplane/io/log.h"
#include "dataplane/io/run_dir.h"
#include "dataplane/io/shutdown.h"
#include "dataplane/io/udp_workers.h"

namespace gtm::dpdk {

namespace {

using io::log_line;

// DNS over TCP, and UDP the kernel reassembled, reach the service addresses on tap interfaces.
bool kernel_listen_addrs(const NicConfig& cfg, std::vector<io::ListenAddr>* out,
                         std::string* error) {
  for (const PortConfig& p : cfg.ports) {
    if (p.exception.kind != ExceptionKind::kTap) continue;
    for (const ServiceAddress& a : p.service_addresses) {
      const std::string host = a.text.substr(0, a.text.find('/'));
      const std::string text =
          (a.family == 6 ? "[" + host + "]" : host) + ":" + std::to_string(p.dns_port);
      io::ListenAddr addr;
      if (!io::parse_listen_addr(text, &addr, error)) return false;
      out->push_back(addr);
    }
  }
  return true;
}

// STATUS members about the ports: the NIC's own counters (imissed: frames the rx ring had no room
// for, the loss a slow lcore causes).
void append_port_stats(std::vector<PortRuntime>& ports, std::string* out) {
  *out += ",\"io\":\"dpdk\",\"ports\":[";
  for (size_t i = 0; i < ports.size(); ++i) {
    const PortRuntime& p = ports[i];
    rte_eth_stats s{};
    if (p.port_id != kNoPort) rte_eth_stats_get(p.port_id, &s);
    *out += i == 0 ? "{" : ",{";
    *out += "\"name\":\"" + p.cfg->name + "\",\"ethdev\":\"" + p.ethdev_name + "\"";
    const std::pair<const char*, uint64_t> fields[] = {
        {"ipackets", s.ipackets}, {"opackets", s.opackets}, {"imissed", s.imissed},
        {"ierrors", s.ierrors},   {"oerrors", s.oerrors},   {"rx_nombuf", s.rx_nombuf}};
    for (const auto& [name, value] : fields) {
      *out += ",\"" + std::string(name) + "\":" + std::to_string(value);
    }
    *out += "}";
  }
  *out += "]";
}

}  // namespace

int run_backend(const BackendOptions& opt, const sigset_t& stop_signals) {
  NicConfig loaded;
  NicConfigError config_error;
  if (!load_nic_config_file(opt.nic_config, &loaded, &config_error)) {
    log_line("%s", config_error.to_string().c_str());
    return 2;
  }
  std::string error;
  if (!check_lcores(loaded, &error)) {
    log_line("%s", error.c_str());
    return 2;
  }
  Runtime rt(std::move(loaded));
  const NicConfig& cfg = rt.config();
  if (!rt.init_eal(opt.eal_args, &error)) {
    log_line("%s", error.c_str());
    return 1;
  }
  // RCU readers: lcores [0, n), the TCP thread n, the UDP socket worker n + 1.
  const uint32_t n = static_cast<uint32_t>(cfg.lcores.size());
  std::unique_ptr<io::SnapshotSlot> slot = io::SnapshotSlot::create(n + 2, &error);
  if (!slot) {
    log_line("%s", error.c_str());
    return 1;
  }
  io::load_last_good_snapshot(slot.get(), opt.run_dir);
  std::vector<io::ListenAddr> addrs;
  if (!rt.setup_ports(&error) || !rt.build_lcores(slot.get(), &error) ||
      !kernel_listen_addrs(cfg, &addrs, &error)) {
    log_line("%s", error.c_str());
    return 1;
  }

  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    log_line("eventfd: %s", std::strerror(errno));
    return 1;
  }
  int status = 0;
  {
    io::UdpWorkers udp(slot.get(), stop_fd, n + 1);
    io::TcpServer tcp(slot.get(), n, stop_fd, opt.tcp);
    const bool kernel_side = !addrs.empty();
    bool ok = !kernel_side || (udp.open(&addrs, 1, &error) && tcp.open(addrs, &error));

    TelemetrySources tel;
    tel.slot = slot.get();
    for (const LcoreContext* c : rt.lcores()) {
      tel.workers.push_back({&c->ws, "dpdk", &c->pc});
      tel.lcore_ids.push_back(static_cast<int>(c->lcore_id));
    }
    if (ok && kernel_side) {
      tel.workers.push_back({&udp.state(0), "udp"});
      tel.workers.push_back({&tcp.state(), "tcp"});
      tel.lcore_ids.insert(tel.lcore_ids.end(), {-1, -1});
    }
    for (const PortConfig& p : cfg.ports) tel.ports.push_back(p.name);

    io::ControlChannel control(slot.get(), opt.run_dir, stop_fd, tel.workers);
    control.set_status_extra([&rt](std::string* out) { append_port_stats(rt.ports(), out); });
    ok = ok && control.open(&error) && telemetry_publish(&tel, &error) && rt.launch(&error);
    if (ok && kernel_side) {
      for (const io::ListenAddr& a : addrs)
        log_line("kernel side: DNS over TCP and UDP on %s", a.text().c_str());
      ok = udp.start({}, &error) && tcp.start(&error);
    }
    ok = ok && control.start(&error);
    if (ok) {
      log_line("ready (dpdk: %u lcore(s), %zu port(s))", n, cfg.ports.size());
      io::wait_for_stop_signal(stop_signals);
    } else {
      log_line("%s", error.c_str());
      status = 1;
    }
    rt.stop();
    io::signal_stop(stop_fd);
    control.join();
    tcp.join();
    udp.join();
    telemetry_withdraw();
  }
  close(stop_fd);
  return status;
}

}  // namespace gtm::dpdk
