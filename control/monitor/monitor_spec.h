// A health monitor as configured (`monitors:` in the YAML; docs/config.md): what to probe, how often,
// and how many consecutive results change a member's state.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gtm::control {

struct MonitorSpec {
  enum class Type { kTcp, kHttp, kHttps, kUdp, kDns, kExternal, kIcmp, kTcpHalfOpen };

  std::string name;
  Type type = Type::kTcp;
  uint32_t interval_ms = 1000;  // between the starts of two probes of one target (>= 100)
  uint32_t timeout_ms = 800;    // a probe with no verdict by then fails (< interval)
  uint32_t rise = 2;            // consecutive successes that bring a down/unknown target up
  uint32_t fall = 3;            // consecutive failures that bring an up/unknown target down
  uint16_t port = 0;            // probed on the member's own address (icmp: none)
  // icmp: echo requests sent together at the start of each probe, and the share of them that
  // may go unanswered (by the timeout) for the probe to pass: lost * 100 <= count * max_loss.
  uint32_t count = 3;
  uint32_t max_loss_percent = 50;
  // tcp: optional bytes to send after connecting and a substring the reply must contain.
  // udp: the datagram to send (required) and a substring the reply must contain (optional).
  // dns: `send` is the query the loader built from query_name/query_type.
  std::string send;
  std::string expect;
  // dns: the answer must have this rcode and, when set, an A/AAAA record with this address.
  uint8_t expect_rcode = 0;
  std::vector<uint8_t> expect_address;
  // external: a program run with these arguments (no shell) and GTM_MEMBER_ADDRESS /
  // GTM_MONITOR_PORT in its environment; exit status 0 means up, killed at the timeout.
  std::vector<std::string> command;
  // http: request and what a good answer looks like.
  std::string method = "GET";
  std::string path = "/";
  std::string host;  // Host header; the member address when empty
  std::vector<std::pair<uint16_t, uint16_t>> status_ranges;  // empty: 200..399
  std::string body_contains;
  // https: TLS through OpenSSL. `sni` defaults to `host`; with `verify` the certificate must chain
  // to `ca_file` (or the system store) and name `host` (or, without one, the member address).
  std::string sni;
  bool verify = true;
  std::string ca_file;
};

// `unstable_ttl` / `unstable_window_ms` of a service (defaults in `options`): its answers carry at
// most `ttl` while one of its members went between up and down less than `window_ms` ago, so
// resolvers come back sooner while a site flaps.
struct UnstableTtl {
  uint32_t ttl = 0;
  uint32_t window_ms = 60000;
};

}  // namespace gtm::control
