// Fuzz target: CIDR parsing (parse_cidr, and parse_cidr_lines for CIDR files) on arbitrary text.
// Errors must be one non-empty line; an accepted CIDR must print and parse back to itself, with
// its host bits zero.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "control/geo/geo_compiler.h"

namespace {

void check_error(const std::string& error) {
  if (error.empty() || error.find('\n') != std::string::npos) __builtin_trap();
}

void check_cidr(const gtm::control::geo::Cidr& c) {
  const int bits = c.family == 4 ? 32 : 128;
  if ((c.family != 4 && c.family != 6) || c.prefix_len > bits) __builtin_trap();
  for (int b = c.prefix_len; b < bits; ++b) {
    if ((c.addr[b / 8] >> (7 - b % 8)) & 1) __builtin_trap();
  }
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr, text, sizeof(text)) == nullptr) {
    __builtin_trap();
  }
  gtm::control::geo::Cidr again;
  std::string error;
  if (!gtm::control::geo::parse_cidr(std::string(text) + "/" + std::to_string(c.prefix_len), &again,
                                     &error) ||
      again.family != c.family || again.prefix_len != c.prefix_len ||
      std::memcmp(again.addr, c.addr, sizeof(c.addr)) != 0) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  gtm::control::geo::Cidr c;
  std::string error;
  if (gtm::control::geo::parse_cidr(text, &c, &error)) {
    check_cidr(c);
  } else {
    check_error(error);
  }
  std::vector<gtm::control::geo::Cidr> list;
  error.clear();
  if (gtm::control::geo::parse_cidr_lines(text, "fuzz.txt", &list, &error)) {
    for (const auto& x : list) check_cidr(x);
  } else {
    check_error(error);
    if (error.rfind("fuzz.txt:", 0) != 0) __builtin_trap();
  }
  return 0;
}
