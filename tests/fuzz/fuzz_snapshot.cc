// Fuzz target: SnapshotView::validate on arbitrary bytes must never crash or read out of bounds;
// an image it accepts must answer lookups safely. Validation against a previous image (the
// dataplane's publish path, which skips the checks of sections identical to the image in service)
// must accept exactly what a full validation accepts: an image compiled at start-up from a fixed
// configuration (below) is that previous image, and every input, plus a patch of that image made
// from the input (most sections then stay identical), is validated both ways; so is every input
// taken as an overlay on that image (LoadedSnapshot::from_overlay's parser).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "control/compiler/snapshot_builder.h"
#include "control/config/config_loader.h"
#include "dataplane/snapshot/snapshot.h"

namespace {

// Names a lookup might see: the root, ordinary names, and the image's own first node names.
constexpr uint8_t kRoot[] = {0};
constexpr uint8_t kExample[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
constexpr uint8_t kWww[] = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};

// Lookups on an accepted image.
void exercise(const gtm::snap::SnapshotView& view) {
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

// The first valid image seen, in storage of its own: the "image in service".
struct Previous {
  std::vector<uint64_t> storage;
  size_t size = 0;
  gtm::snap::SnapshotView view;
  bool set = false;
};

Previous& previous() {
  static Previous p;
  return p;
}

// Full validation and validation against the previous image (both without the checksum, which
// the publish path skips for sealed memfds) must agree.
void check_against_previous(const uint8_t* image, size_t size) {
  Previous& prev = previous();
  if (!prev.set) return;
  gtm::snap::ValidateOptions full_options;
  full_options.verify_checksum = false;
  gtm::snap::SnapshotView full;
  std::string error;
  const bool full_ok = full.validate(image, size, &error, full_options);
  gtm::snap::ValidateOptions reuse_options = full_options;
  reuse_options.previous = &prev.view;
  gtm::snap::ValidationStats stats;
  reuse_options.stats = &stats;
  gtm::snap::SnapshotView reused;
  const bool reused_ok = reused.validate(image, size, &error, reuse_options);
  if (full_ok != reused_ok) __builtin_trap();
  if (reused_ok) exercise(reused);
}

// Validates one image and, if accepted, exercises lookups on it.
void check_image(const uint8_t* image, size_t size) {
  gtm::snap::SnapshotView view;
  std::string error;
  if (!view.validate(image, size, &error)) return;
  exercise(view);
}

// The image in service, compiled from this configuration by the real compiler rather than taken
// from the corpus: seeds of an older format version fail validation, and with no valid previous
// image every check against it would silently do nothing. A small image (no geo tables) keeps
// the per-input patch and overlay checks cheap; it has rules with a secondary set, a ratio
// wheel, return-all and round-robin pools and pick table entries.
constexpr char kPreviousYaml[] = R"(
zones:
  - name: example.
    soa: {mname: ns1.example., rname: hostmaster.example., serial: 1, minimum: 60}
    ns: [ns1.example.]
    records:
      - {name: ns1, type: A, data: 192.0.2.53}
      - {name: static, type: A, data: 192.0.2.1}
      - {name: alias, type: CNAME, data: www.example.}
services:
  - name: www.example.
    ttl: 30
    pools:
      - name: a
        method: [ratio, round-robin]
        members:
          - {name: a1, address: 192.0.2.10, weight: 3}
          - {name: a2, address: 192.0.2.11}
          - {name: a3, address: "2001:db8::11", mode: always-down}
      - name: b
        method: return-all
        members:
          - {name: b1, address: 198.51.100.10}
          - {name: b2, address: "2001:db8:b::10"}
    access_policy:
      - {primary: a, secondary: b}
)";

void set_previous() {
  gtm::control::LoadedConfig cfg;
  gtm::control::ConfigError config_error;
  std::vector<uint8_t> image;
  std::string error;
  Previous& prev = previous();
  if (!gtm::control::load_config_string(kPreviousYaml, "fuzz_snapshot.yaml", &cfg, &config_error) ||
      !gtm::control::build_snapshot(cfg.model, &image, &error)) {
    abort();  // the fixed configuration must always build
  }
  prev.storage.assign(image.size() / 8 + 1, 0);
  std::memcpy(prev.storage.data(), image.data(), image.size());
  prev.size = image.size();
  prev.set =
      prev.view.validate(reinterpret_cast<const uint8_t*>(prev.storage.data()), prev.size, &error);
  bool has_pick_table = false;
  for (uint32_t i = 0; i < prev.view.service_count(); ++i) {
    has_pick_table |= prev.view.services()[i].pick_table != gtm::snap::kNone;
  }
  if (!prev.set || !has_pick_table) abort();
}

// The previous image with a few bytes changed as `data` says (offset, xor value pairs).
void check_patched_previous(const uint8_t* data, size_t size) {
  Previous& prev = previous();
  if (!prev.set || prev.size == 0) return;
  std::vector<uint64_t> storage(prev.storage);
  uint8_t* image = reinterpret_cast<uint8_t*>(storage.data());
  for (size_t i = 0; i + 3 <= size && i < 3 * 8; i += 3) {
    const size_t at = (static_cast<size_t>(data[i]) << 8 | data[i + 1]) % prev.size;
    image[at] ^= data[i + 2];
  }
  check_against_previous(image, prev.size);
}

// The input as an overlay (format.h OverlayHeader) on the previous image as its base: it must
// never crash, and validation against the snapshot in service (the base's mapping shared, its
// sections not compared) must accept exactly what a validation from scratch accepts. With its
// fixed header fields made right, the mutated section table and sections reach the checks.
void check_overlay(const uint8_t* data, size_t size) {
  Previous& prev = previous();
  if (!prev.set) return;
  std::vector<uint64_t> storage(size / 8 + 1);
  uint8_t* overlay = reinterpret_cast<uint8_t*>(storage.data());
  if (size != 0) std::memcpy(overlay, data, size);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(prev.storage.data());
  for (int sealed_header = 0; sealed_header < 2; ++sealed_header) {
    if (sealed_header == 1) {
      if (size < sizeof(gtm::snap::OverlayHeader)) return;
      auto* h = reinterpret_cast<gtm::snap::OverlayHeader*>(overlay);
      std::memcpy(h->magic, gtm::snap::kOverlayMagic, sizeof(h->magic));
      h->format_version = gtm::snap::kFormatVersion;
      h->header_size = sizeof(gtm::snap::OverlayHeader);
      h->total_size = size;
      h->base_generation = prev.view.generation();
      h->section_count %= gtm::snap::kMaxSections + 1;
    }
    std::string error;
    gtm::snap::SnapshotView fresh;
    const bool fresh_ok = fresh.validate_overlay(base, prev.size, overlay, size, &error,
                                                 gtm::snap::ValidateOptions());
    gtm::snap::ValidateOptions reuse;
    reuse.previous = &prev.view;
    gtm::snap::SnapshotView reused;
    const bool reused_ok = reused.validate_overlay(base, prev.size, overlay, size, &error, reuse);
    if (fresh_ok != reused_ok) __builtin_trap();
    if (reused_ok) exercise(reused);
  }
}

// An overlay carrying copies of some health sections of the previous image (the input picks
// which, and patches their bytes as check_patched_previous does): unpatched it must be accepted
// (it makes the base itself), and patched, both validations must agree.
void check_derived_overlay(const uint8_t* data, size_t size) {
  Previous& prev = previous();
  if (!prev.set || size == 0) return;
  using namespace gtm::snap;
  static constexpr uint32_t kHealth[] = {kSecServices,      kSecPools,     kSecMembers,  kSecRules,
                                         kSecPoolSlots,     kSecTopoPicks, kSecTopoMaps, kSecRRsets,
                                         kSecMemberAnswers, kSecPickTable};
  SectionBytes carried[kMaxSections];
  uint32_t count = 0;
  for (uint32_t i = 0; i < sizeof(kHealth) / sizeof(kHealth[0]); ++i) {
    if ((data[0] >> (i % 8)) & 1 || i == 8) carried[count++] = prev.view.section(kHealth[i]);
  }
  OverlayHeader h{};
  std::memcpy(h.magic, kOverlayMagic, sizeof(h.magic));
  h.format_version = kFormatVersion;
  h.header_size = sizeof(h);
  h.generation = prev.view.generation() + 1;
  h.base_generation = prev.view.generation();
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  layout_sections(carried, count, &h, &parts);
  std::vector<uint64_t> storage(h.total_size / 8 + 1);
  uint8_t* overlay = reinterpret_cast<uint8_t*>(storage.data());
  std::memcpy(overlay, &h, sizeof(h));
  size_t at = sizeof(h);
  for (const auto& [bytes, len] : parts) {
    std::memcpy(overlay + at, bytes, len);
    at += len;
  }
  const uint8_t* base = reinterpret_cast<const uint8_t*>(prev.storage.data());
  std::string error;
  ValidateOptions reuse;
  reuse.previous = &prev.view;
  SnapshotView v;
  if (!v.validate_overlay(base, prev.size, overlay, at, &error, reuse)) __builtin_trap();
  for (size_t i = 1; i + 3 <= size && i < 1 + 3 * 8; i += 3) {
    const size_t pos =
        sizeof(h) + (static_cast<size_t>(data[i]) << 8 | data[i + 1]) % (at - sizeof(h) + 1);
    if (pos < at) overlay[pos] ^= data[i + 2];
  }
  SnapshotView fresh;
  const bool fresh_ok =
      fresh.validate_overlay(base, prev.size, overlay, at, &error, ValidateOptions());
  SnapshotView reused;
  const bool reused_ok = reused.validate_overlay(base, prev.size, overlay, at, &error, reuse);
  if (fresh_ok != reused_ok) __builtin_trap();
  if (reused_ok) exercise(reused);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_previous();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Images live in page-aligned mappings; give the validator the same 8-byte alignment.
  std::vector<uint64_t> storage(size / 8 + 1);
  uint8_t* image = reinterpret_cast<uint8_t*>(storage.data());
  if (size != 0) std::memcpy(image, data, size);
  check_image(image, size);
  check_against_previous(image, size);
  check_patched_previous(data, size);
  check_overlay(data, size);
  check_derived_overlay(data, size);

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
