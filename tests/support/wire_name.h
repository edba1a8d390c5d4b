// Test helper shared by the compiler and snapshot tests: a dotted name in, its wire form out,
// written out label by label here so the tests do not depend on the config loader's name parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/compiler/snapshot_builder.h"

namespace gtm::test {

// "www.example." -> {3,'w','w','w',7,'e','x','a','m','p','l','e',0}; "." -> {0}. Case is kept.
inline control::WireName wn(std::string_view text) {
  control::WireName out;
  size_t start = 0;
  while (start < text.size() && text != ".") {
    size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    out.push_back(static_cast<uint8_t>(dot - start));
    for (size_t i = start; i < dot; ++i) out.push_back(static_cast<uint8_t>(text[i]));
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

}  // namespace gtm::test
