// Escaping for the JSON that gtm-control writes (STATUS replies): the one place it is done.
#pragma once

#include <cstdio>
#include <string>

namespace gtm::control {

// The contents of a JSON string (no surrounding quotes) for arbitrary bytes of text.
inline std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace gtm::control
