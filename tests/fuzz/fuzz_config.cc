// Fuzz target: the YAML configuration loader and the snapshot builder on arbitrary text. Every input
// must end in a model that builds into an image that validates, or in a clear error with a
// position; nothing may crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/snapshot/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // configs are small; bounded time per input
  const std::string text(reinterpret_cast<const char*>(data), size);
  gtm::control::LoadedConfig cfg;
  gtm::control::ConfigError err;
  if (!gtm::control::load_config_string(text, "fuzz.yaml", &cfg, &err)) {
    if (err.message.empty()) __builtin_trap();  // an error must say why
    return 0;
  }
  std::vector<uint8_t> image;
  std::string error;
  if (!gtm::control::build_snapshot(cfg.model, &image, &error)) {
    if (error.empty()) __builtin_trap();
    return 0;
  }
  gtm::snap::SnapshotView view;
  if (!view.validate(image.data(), image.size(), &error)) __builtin_trap();  // builder/reader disagree
  return 0;
}
