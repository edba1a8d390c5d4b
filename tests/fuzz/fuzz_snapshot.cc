// Fuzz target: SnapshotView::validate on arbitrary bytes must never crash or read out of bounds;
// an image it accepts must answer lookups safely.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/snapshot/snapshot.h"

namespace {

// Names a lookup might see: the root, ordinary names, and the image's own first node names.
constexpr uint8_t kRoot[] = {0};
constexpr uint8_t kExample[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
constexpr uint8_t kWww[] = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};

// Validates one image and, if accepted, exercises lookups on it.
void check_image(const uint8_t* image, size_t size) {
  gtm::snap::SnapshotView view;
  std::string error;
  if (!view.validate(image, size, &error)) return;

  view.find_node(kRoot, sizeof(kRoot));
  view.find_node(kExample, sizeof(kExample));
  view.find_node(kWww, sizeof(kWww));
  // The client-class tables answer any address with a class the image has.
  static const uint8_t kV6[16] = {0x20, 0x01, 0x02, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  for (uint32_t a : {0u, 0xAF10C700u, 0xC0000201u, 0xFFFFFFFFu}) {
    if (view.lpm4().lookup(a).value >= view.class_count()) __builtin_trap();
  }
  if (view.lpm6().lookup(kV6).value >= view.class_count()) __builtin_trap();
  uint32_t probe = view.node_count() < 8 ? view.node_count() : 8;
  for (uint32_t n = 0; n < probe; ++n) {
    const gtm::snap::Node& node = view.nodes()[n];
    if (view.find_node(view.blob(node.name), node.name.len) != n) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Images live in page-aligned mappings; give the validator the same 8-byte alignment.
  std::vector<uint64_t> storage(size / 8 + 1);
  uint8_t* image = reinterpret_cast<uint8_t*>(storage.data());
  if (size != 0) std::memcpy(image, data, size);
  check_image(image, size);

  // Random bytes almost never carry a matching checksum; re-seal the header so the mutated body
  // reaches the cross-reference checks too.
  if (size >= sizeof(gtm::snap::Header)) {
    auto* header = reinterpret_cast<gtm::snap::Header*>(image);
    header->total_size = size;
    if (header->header_size <= size) {
      header->checksum =
          gtm::snap::image_checksum(image + header->header_size, size - header->header_size);
    }
    check_image(image, size);
  }
  return 0;
}
