// LPM table views: validation (once per snapshot, one forward pass over the image) and lookup
// (once per query). Layout and the reasons for it: lpm_format.h.
#include "dataplane/geo/lpm.h"

#include <algorithm>
#include <bit>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>

#include "dataplane/geo/lpm_format.h"

namespace gtm::geo {

namespace {

bool fail(std::string* error, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
bool fail(std::string* error, const char* fmt, ...) {
  if (error != nullptr) {
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    *error = buf;
  }
  return false;
}

constexpr uint64_t align8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

inline LpmObject object_at(const uint8_t* pool, uint64_t offset) {
  LpmObject h;
  std::memcpy(&h, pool + offset, sizeof(h));
  return h;
}

// Bytes of a bucket's key array and of the whole bucket.
constexpr uint64_t bucket_keys_size(uint32_t bits, uint64_t count) {
  return align8((count + 1) * (bits / 8));
}
constexpr uint64_t bucket_size(uint32_t bits, uint64_t count, uint32_t value_bytes) {
  return sizeof(LpmObject) + bucket_keys_size(bits, count) + align8(count * value_bytes);
}
constexpr uint64_t node_size(uint32_t stride) {
  return sizeof(LpmObject) + align8(uint64_t{4} << stride);
}

// Also sets *used to the key bits that the boundaries use (key width minus their common trailing
// zeros): the bucket's height, since the ECS block of any address is at least that aligned.
template <class Key>
bool check_bucket(const uint8_t* obj, uint32_t count, uint32_t value_bytes, uint32_t limit,
                  std::string* error, uint64_t pos, uint32_t* used) {
  const uint8_t* key_bytes = obj + sizeof(LpmObject);
  auto key = [key_bytes](uint64_t i) {
    Key k;
    std::memcpy(&k, key_bytes + i * sizeof(Key), sizeof(Key));
    return k;
  };
  if (key(0) != 0 || key(count) != 0) {
    return fail(error, "lpm: bucket at %llu: first key or end sentinel not zero",
                static_cast<unsigned long long>(pos));
  }
  int tz = static_cast<int>(sizeof(Key) * 8);
  for (uint64_t i = 1; i < count; ++i) {
    if (!(key(i - 1) < key(i))) {
      return fail(error, "lpm: bucket at %llu: keys not increasing",
                  static_cast<unsigned long long>(pos));
    }
    tz = std::min(tz, std::countr_zero(key(i)));
  }
  *used = static_cast<uint32_t>(static_cast<int>(sizeof(Key) * 8) - tz);
  const uint8_t* values = key_bytes + bucket_keys_size(sizeof(Key) * 8, count);
  uint32_t prev = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t v = 0;
    std::memcpy(&v, values + i * value_bytes, value_bytes);
    if (v >= limit) {
      return fail(error, "lpm: bucket at %llu: value %u out of range (limit %u)",
                  static_cast<unsigned long long>(pos), v, limit);
    }
    // Merged neighbours are what makes prefix_len the largest block with one value.
    if (i > 0 && v == prev) {
      return fail(error, "lpm: bucket at %llu: neighbouring ranges have the same value",
                  static_cast<unsigned long long>(pos));
    }
    prev = v;
  }
  return true;
}

bool zero_bytes(const uint8_t* from, const uint8_t* to) {
  for (; from < to; ++from) {
    if (*from != 0) return false;
  }
  return true;
}

bool check_leaf(uint32_t e, uint32_t max_rel, uint32_t limit, std::string* error) {
  const uint32_t v = e & kLpmValueMask;
  const uint32_t rel = (e & ~kLpmLeaf) >> kLpmValueBits;
  if (v >= limit) return fail(error, "lpm: leaf value %u out of range (limit %u)", v, limit);
  if (rel > max_rel) return fail(error, "lpm: leaf prefix length %u past its node", rel);
  return true;
}

// Checks every object in one forward pass: O(image size).
// On success sets *pool and *root; an empty image is the empty table (they stay as they are).
bool validate_image(const uint8_t* data, size_t len, uint32_t magic, uint32_t addr_bits,
                    uint32_t limit, const uint8_t** pool_out, uint32_t* root_out,
                    std::string* error) {
  if (len == 0) return true;
  if (len < sizeof(LpmHeader)) {
    return fail(error, "lpm: image too short (%zu bytes, header is %zu)", len, sizeof(LpmHeader));
  }
  if (reinterpret_cast<uintptr_t>(data) % 8 != 0)
    return fail(error, "lpm: image not 8-byte aligned");
  LpmHeader h;
  std::memcpy(&h, data, sizeof(h));
  if (h.magic != magic)
    return fail(error, "lpm: bad magic (not an IPv%d table)", addr_bits == 32 ? 4 : 6);
  if (h.version != kLpmFormatVersion) return fail(error, "lpm: unsupported version %u", h.version);
  if (h.addr_bits != addr_bits)
    return fail(error, "lpm: addr_bits %u, expected %u", h.addr_bits, addr_bits);
  if (h.total_size != len || h.pool_offset != sizeof(LpmHeader) || h.pool_size % 8 != 0 ||
      h.pool_size != len - sizeof(LpmHeader)) {
    return fail(error, "lpm: sizes do not match the image length %zu", len);
  }
  const uint8_t* pool = data + sizeof(LpmHeader);
  const uint64_t pool_size = h.pool_size;
  // One bit per 8-byte unit: where objects start, so that references can be checked.
  std::vector<uint64_t> starts((pool_size / 8 + 63) / 64, 0);
  // A reference must point before `limit`, at an object start, and say what that object is.
  auto reference_ok = [&starts, pool](uint32_t e, uint64_t limit) {
    const uint64_t unit = e & kLpmRefOffsetMask;
    if (unit * 8 >= limit || ((starts[unit / 64] >> (unit % 64)) & 1) == 0) return false;
    return object_at(pool, unit * 8).ref(static_cast<uint32_t>(unit)) == e;
  };

  uint64_t pos = 0;
  uint32_t objects = 0;
  while (pos < pool_size) {
    const unsigned long long at = pos;
    if (pool_size - pos < sizeof(LpmObject))
      return fail(error, "lpm: truncated object at %llu", at);
    const LpmObject o = object_at(pool, pos);
    const uint8_t* obj = pool + pos;
    uint64_t size = 0;
    uint32_t height = 0;
    if (o.kind == kLpmNode) {
      if (o.bits < 1 || o.bits > kLpmMaxStride || o.count != (1u << o.bits) || o.value_bytes != 0) {
        return fail(error, "lpm: node at %llu: bad stride %u / count %u", at, o.bits, o.count);
      }
      size = node_size(o.bits);
      if (size > pool_size - pos) return fail(error, "lpm: node at %llu: truncated", at);
      uint32_t child_height = 0;
      bool uniform = true;
      uint32_t first;
      std::memcpy(&first, obj + sizeof(LpmObject), 4);
      for (uint32_t i = 0; i < o.count; ++i) {
        uint32_t e;
        std::memcpy(&e, obj + sizeof(LpmObject) + uint64_t{i} * 4, 4);
        uniform = uniform && (e & kLpmLeaf) && (e & kLpmValueMask) == (first & kLpmValueMask);
        if (e & kLpmLeaf) {
          if (!check_leaf(e, o.bits, limit, error)) return false;
          continue;
        }
        if (!reference_ok(e, pos)) {
          return fail(error, "lpm: node at %llu: entry %u is not a reference to an earlier object",
                      at, i);
        }
        child_height = std::max<uint32_t>(
            child_height, object_at(pool, uint64_t{e & kLpmRefOffsetMask} * 8).height);
      }
      // A node must split its block; a uniform one would hide the true ECS scope.
      if (uniform) return fail(error, "lpm: node at %llu is uniform", at);
      if (!zero_bytes(obj + sizeof(LpmObject) + uint64_t{4} * o.count, obj + size)) {
        return fail(error, "lpm: node at %llu: padding not zero", at);
      }
      height = o.bits + child_height;
    } else if (o.kind == kLpmBucket) {
      if ((o.bits != 8 && o.bits != 16 && o.bits != 32 && o.bits != 64) || o.bits > addr_bits) {
        return fail(error, "lpm: bucket at %llu: bad key width %u", at, o.bits);
      }
      if (o.count < 2 || (o.bits < 32 && o.count > (1u << o.bits))) {
        return fail(error, "lpm: bucket at %llu: bad range count %u", at, o.count);
      }
      if (o.value_bytes != 2 && o.value_bytes != 4) {
        return fail(error, "lpm: bucket at %llu: bad value size %u", at, o.value_bytes);
      }
      size = bucket_size(o.bits, o.count, o.value_bytes);
      if (size > pool_size - pos) return fail(error, "lpm: bucket at %llu: truncated", at);
      bool ok = false;
      switch (o.bits) {
        case 8:
          ok = check_bucket<uint8_t>(obj, o.count, o.value_bytes, limit, error, pos, &height);
          break;
        case 16:
          ok = check_bucket<uint16_t>(obj, o.count, o.value_bytes, limit, error, pos, &height);
          break;
        case 32:
          ok = check_bucket<uint32_t>(obj, o.count, o.value_bytes, limit, error, pos, &height);
          break;
        default:
          ok = check_bucket<uint64_t>(obj, o.count, o.value_bytes, limit, error, pos, &height);
          break;
      }
      if (!ok) return false;
      const uint8_t* keys_end = obj + sizeof(LpmObject) + (uint64_t{o.count} + 1) * (o.bits / 8);
      const uint8_t* values = obj + sizeof(LpmObject) + bucket_keys_size(o.bits, o.count);
      if (!zero_bytes(keys_end, values) ||
          !zero_bytes(values + uint64_t{o.value_bytes} * o.count, obj + size)) {
        return fail(error, "lpm: bucket at %llu: padding not zero", at);
      }
    } else {
      return fail(error, "lpm: object at %llu: unknown kind %u", at, o.kind);
    }
    if (o.height != height || height > addr_bits) {
      return fail(error, "lpm: object at %llu: height %u, expected %u (at most %u)", at, o.height,
                  height, addr_bits);
    }
    starts[pos / 64 / 8] |= uint64_t{1} << (pos / 8 % 64);
    ++objects;
    pos += size;
  }
  if (objects != h.object_count) return fail(error, "lpm: object count does not match");
  if (h.root & kLpmLeaf) {
    if (!check_leaf(h.root, 0, limit, error)) return false;
  } else if (!reference_ok(h.root, pool_size)) {
    return fail(error, "lpm: root is not a reference to an object");
  }
  *pool_out = pool;
  *root_out = h.root;
  return true;
}

}  // namespace

bool Lpm4View::validate(const uint8_t* data, size_t len, uint32_t value_limit, std::string* error) {
  *this = Lpm4View();
  return validate_image(data, len, kLpm4Magic, 32, value_limit, &pool_, &root_, error);
}

bool Lpm6View::validate(const uint8_t* data, size_t len, uint32_t value_limit, std::string* error) {
  *this = Lpm6View();
  return validate_image(data, len, kLpm6Magic, 128, value_limit, &pool_, &root_, error);
}

}  // namespace gtm::geo
