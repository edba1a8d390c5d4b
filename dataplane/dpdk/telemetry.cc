#include "dataplane/dpdk/telemetry.h"

#include <rte_telemetry.h>

#include <cstdlib>
#include <mutex>

namespace gtm::dpdk {

namespace {

// Telemetry callbacks take no user pointer, so the sources live here, guarded: the main lcore
// withdraws them at shutdown while the telemetry thread may be answering.
std::mutex g_mu;
const TelemetrySources* g_sources = nullptr;
bool g_registered = false;

int reply_stopped(rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "state", "stopped");
  return 0;
}

// Sums like STATUS's totals: position i of the visit is the same counter for every worker.
void add_counters(rte_tel_data* d, const std::vector<const io::WorkerStatsSource*>& workers) {
  const engine::WorkerState zero_state;
  const packet::PacketCounters zero_packets;
  bool any_packets = false;
  std::vector<uint64_t> sums;
  for (const io::WorkerStatsSource* w : workers) {
    size_t i = 0;
    io::visit_counters(*w, [&](const char*, uint64_t v) {
      if (i == sums.size()) sums.push_back(0);
      sums[i++] += v;
    });
    any_packets = any_packets || w->packets != nullptr;
  }
  size_t i = 0;
  io::visit_counters({&zero_state, "", any_packets ? &zero_packets : nullptr},
                     [&](const char* name, uint64_t) {
                       rte_tel_data_add_dict_u64(d, name, i < sums.size() ? sums[i] : 0);
                       ++i;
                     });
}

int cmd_status(const char*, const char*, rte_tel_data* d) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sources == nullptr) return reply_stopped(d);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "io", "dpdk");
  rte_tel_data_add_dict_u64(d, "generation", g_sources->slot->active_generation());
  int lcores = 0;
  for (int id : g_sources->lcore_ids) lcores += id >= 0;
  rte_tel_data_add_dict_int(d, "lcores", lcores);
  rte_tel_data* ports = rte_tel_data_alloc();
  if (ports != nullptr) {
    rte_tel_data_start_array(ports, RTE_TEL_STRING_VAL);
    for (const std::string& p : g_sources->ports) rte_tel_data_add_array_string(ports, p.c_str());
    rte_tel_data_add_dict_container(d, "ports", ports, 0);
  }
  return 0;
}

int cmd_counters(const char*, const char*, rte_tel_data* d) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sources == nullptr) return reply_stopped(d);
  std::vector<const io::WorkerStatsSource*> all;
  for (const io::WorkerStatsSource& w : g_sources->workers) all.push_back(&w);
  rte_tel_data_start_dict(d);
  add_counters(d, all);
  return 0;
}

int cmd_lcore(const char*, const char* params, rte_tel_data* d) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sources == nullptr) return reply_stopped(d);
  if (params == nullptr || *params == '\0') {
    rte_tel_data_start_array(d, RTE_TEL_INT_VAL);
    for (int id : g_sources->lcore_ids) {
      if (id >= 0) rte_tel_data_add_array_int(d, id);
    }
    return 0;
  }
  char* end = nullptr;
  const long id = std::strtol(params, &end, 10);
  if (end == params || *end != '\0') return -1;
  for (size_t w = 0; w < g_sources->workers.size(); ++w) {
    if (g_sources->lcore_ids[w] == id) {
      rte_tel_data_start_dict(d);
      add_counters(d, {&g_sources->workers[w]});
      return 0;
    }
  }
  return -1;  // telemetry answers null: no such lcore
}

}  // namespace

bool telemetry_publish(const TelemetrySources* sources, std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sources = sources;
  if (g_registered) return true;
  if (rte_telemetry_register_cmd("/gtm/status", cmd_status,
                                 "gtm: active snapshot generation, lcores and ports") != 0 ||
      rte_telemetry_register_cmd("/gtm/counters", cmd_counters,
                                 "gtm: all counters, summed (names as in gtmctl status)") != 0 ||
      rte_telemetry_register_cmd("/gtm/lcore", cmd_lcore,
                                 "gtm: one lcore's counters. Parameter: lcore id") != 0) {
    *error = "cannot register the /gtm telemetry commands";
    g_sources = nullptr;
    return false;
  }
  g_registered = true;
  return true;
}

void telemetry_withdraw() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sources = nullptr;
}

}  // namespace gtm::dpdk
