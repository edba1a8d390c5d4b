#include "control/events/webhook.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>

namespace gtm::control {
namespace {

constexpr auto kFirstBackoff = std::chrono::milliseconds(250);

// The response body is not needed; reading it keeps the connection well-behaved.
size_t discard(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

}  // namespace

WebhookSender::WebhookSender() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  thread_ = std::thread([this] { run(); });
}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  curl_global_cleanup();
}

void WebhookSender::set_hooks(std::vector<WebhookConfig> hooks) {
  std::lock_guard<std::mutex> lock(mu_);
  hooks_ = std::move(hooks);
}

void WebhookSender::post(std::string json) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (hooks_.empty()) return;
    if (queue_.size() >= kMaxQueued) {
      queue_.pop_front();
      ++stats_.dropped;
    }
    queue_.push_back(std::move(json));
  }
  cv_.notify_one();
}

WebhookSender::Stats WebhookSender::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void WebhookSender::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::string json = std::move(queue_.front());
    queue_.pop_front();
    const std::vector<WebhookConfig> hooks = hooks_;
    for (const WebhookConfig& hook : hooks) {
      bool ok = false;
      auto backoff = kFirstBackoff;
      for (uint32_t attempt = 0; attempt <= hook.retries && !stop_; ++attempt) {
        if (attempt > 0) {
          // Interruptible wait: shutdown does not sit out a back-off.
          cv_.wait_for(lock, backoff, [this] { return stop_; });
          if (stop_) return;
          backoff *= 2;
        }
        lock.unlock();
        ok = deliver(hook, json);
        lock.lock();
        if (ok) break;
      }
      if (ok) {
        ++stats_.delivered;
      } else {
        ++stats_.failed;
        std::fprintf(stderr, "gtm-control: webhook %s: event not delivered after %u attempt(s)\n",
                     hook.url.c_str(), hook.retries + 1);
      }
      if (stop_) return;
    }
  }
}

bool WebhookSender::deliver(const WebhookConfig& hook, const std::string& json) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, hook.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(json.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(hook.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM from the resolver in a thread
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "gtm-control");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return rc == CURLE_OK && status >= 200 && status < 300;
}

}  // namespace gtm::control
