// Delivers event JSON to the configured webhooks (HTTP POST, libcurl) from a thread of its own, so
// a slow or dead receiver never delays a publish. Events go out in order; each one is tried
// 1 + retries times per webhook with a doubling back-off. The queue is bounded: past it the oldest
// events are dropped and counted, because an alert pipeline that is down must not grow control's
// memory without end.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/config/config_loader.h"

namespace gtm::control {

class WebhookSender {
 public:
  static constexpr size_t kMaxQueued = 10000;

  WebhookSender();
  ~WebhookSender();  // stops after the attempt in progress; queued events are dropped
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Replaces the webhook list (on reload); events already queued go to the new list.
  void set_hooks(std::vector<WebhookConfig> hooks);
  // Queues one event body for every webhook. Never blocks on the network.
  void post(std::string json);

  struct Stats {
    uint64_t delivered = 0;  // (event, webhook) pairs answered with 2xx
    uint64_t failed = 0;     // pairs given up after every retry
    uint64_t dropped = 0;    // events dropped from a full queue
  };
  Stats stats() const;

 private:
  void run();
  bool deliver(const WebhookConfig& hook, const std::string& json);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::vector<WebhookConfig> hooks_;
  Stats stats_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace gtm::control
