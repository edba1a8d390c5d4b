// LDNS persistence without per-client state: rendezvous (highest-random-weight) hashing of the
// client prefix over a pool's usable members.
//
// Every member gets a score from (its key, the client's prefix hash); the highest score wins. A
// member's key is a hash of its identity (control computes it from the member's name and RDATA),
// so it does not move when other members come and go: removing a member moves only the clients
// it had (about 1/N of them), and adding it back returns exactly those. Weighted pools use
// weighted rendezvous (score = weight / -ln(u)), in integer arithmetic so that every gtm server
// answering for the same service, whatever its CPU, picks the same member for the same client.
//
// Header-only: the engine calls it per query, the snapshot builder for member keys, tests directly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gtm::engine {

// splitmix64's finalizer: a bijection that spreads every input bit over the whole word.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// FNV-1a 64 over a byte string, then mixed.
inline uint64_t hash_bytes(uint64_t seed, const uint8_t* p, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return mix64(h ^ len);
}

// A member's rendezvous key, from what identifies it: its configured name and its RDATA (address
// or target).
inline uint64_t member_persist_key(const uint8_t* name, size_t name_len, const uint8_t* rdata,
                                   size_t rdata_len) {
  return hash_bytes(hash_bytes(0x6774, name, name_len), rdata, rdata_len);
}

// The client's identity for persistence: its address (network order, 4 or 16 bytes) masked to
// `prefix_len` bits, with the family and the length folded in.
inline uint64_t client_prefix_hash(uint8_t family, const uint8_t* addr, uint8_t prefix_len) {
  uint8_t masked[16] = {};
  const size_t bytes = family == 4 ? 4 : 16;
  const size_t full = prefix_len / 8;
  std::memcpy(masked, addr, full < bytes ? full : bytes);
  if (full < bytes && prefix_len % 8 != 0) {
    masked[full] = static_cast<uint8_t>(addr[full] & (0xFF00u >> (prefix_len % 8)));
  }
  uint64_t hi, lo;
  std::memcpy(&hi, masked, 8);
  std::memcpy(&lo, masked + 8, 8);
  return mix64(hi ^ mix64(lo ^ (static_cast<uint64_t>(family) << 8 | prefix_len)));
}

namespace detail {

// log2(1 + i / 256) in units of 2^-16, i = 0..256, computed by the compiler (IEEE doubles, so
// the table is the same on every build).
constexpr std::array<uint32_t, 257> make_log2_table() {
  std::array<uint32_t, 257> t{};
  for (int i = 0; i <= 256; ++i) {
    // ln(x) = 2 atanh((x - 1) / (x + 1)), a fast-converging series for x in [1, 2].
    const double x = 1.0 + i / 256.0;
    const double y = (x - 1.0) / (x + 1.0);
    double term = y, sum = 0.0;
    for (int k = 1; k < 60; k += 2) {
      sum += term / k;
      term *= y * y;
    }
    const double log2x = 2.0 * sum / 0.69314718055994530942;
    t[i] = static_cast<uint32_t>(log2x * 65536.0 + 0.5);
  }
  return t;
}
inline constexpr std::array<uint32_t, 257> kLog2Table = make_log2_table();

}  // namespace detail

// -log2(u / 2^53) in units of 2^-16 for u = 1 .. 2^53 - 1, by table and linear interpolation:
// always >= 1, and monotonically non-increasing in u (larger u, closer to 1, smaller cost).
inline uint64_t neg_log2_q16(uint64_t u) {
  const int e = 63 - __builtin_clzll(u);  // u >= 1
  const uint64_t m = u << (63 - e);       // top bit set
  const uint32_t idx = static_cast<uint32_t>((m >> 55) & 0xFF);
  const uint64_t frac = (m >> 39) & 0xFFFF;
  const uint64_t lo = detail::kLog2Table[idx];
  const uint64_t hi = detail::kLog2Table[idx + 1];
  const uint64_t log2u = (static_cast<uint64_t>(e) << 16) + lo + (((hi - lo) * frac) >> 16);
  const uint64_t top = uint64_t{53} << 16;
  return log2u >= top ? 1 : top - log2u;
}

// The score of one member for one client.
inline uint64_t rendezvous_score(uint64_t member_key, uint64_t client_hash) {
  return mix64(member_key ^ client_hash);
}

// Whether member a (score, weight) beats member b for weighted rendezvous: weight / -ln(u) is
// compared as wa * L(b) > wb * L(a) with L = -log2 (the base cancels), u taken from the top 53
// bits of the score. Ties go to the higher raw score.
inline bool weighted_beats(uint64_t score_a, uint32_t weight_a, uint64_t score_b,
                           uint32_t weight_b) {
  const uint64_t la = neg_log2_q16((score_a >> 11) | 1);
  const uint64_t lb = neg_log2_q16((score_b >> 11) | 1);
  // weights <= 2^20 and L <= 53 * 2^16 < 2^22: the products fit in 64 bits.
  const uint64_t a = static_cast<uint64_t>(weight_a) * lb;
  const uint64_t b = static_cast<uint64_t>(weight_b) * la;
  return a != b ? a > b : score_a > score_b;
}

}  // namespace gtm::engine
