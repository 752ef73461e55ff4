// Compiler builtins the core uses, each with a portable fallback in plain C++17.
//
// GCC and Clang get their builtins. Other compilers (MSVC), and any compiler when
// LAYERWISE_FAST_PORTABLE is defined, get the fallbacks; the unit tests build both
// ways and compare the fallbacks with the builtins on edge and random values.
#pragma once

#include <cstdint>
#include <limits>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(LAYERWISE_FAST_PORTABLE)
#define LAYERWISE_FAST_GNU_BUILTINS 1
#else
#define LAYERWISE_FAST_GNU_BUILTINS 0
#endif

namespace layerwise_fast::builtin {

inline constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// The two's-complement wrap of an unsigned result, as the builtins store it.
inline int64_t wrapped(uint64_t v) noexcept { return static_cast<int64_t>(v); }

// *out = a + b (wrapped); true if the exact sum is outside int64.
inline bool portable_add_overflow(int64_t a, int64_t b, int64_t* out) noexcept {
  *out = wrapped(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  return (a < 0) == (b < 0) && (*out < 0) != (a < 0);
}

// *out = a - b (wrapped); true if the exact difference is outside int64.
inline bool portable_sub_overflow(int64_t a, int64_t b, int64_t* out) noexcept {
  *out = wrapped(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
  return (a < 0) != (b < 0) && (*out < 0) != (a < 0);
}

// *out = a * b (wrapped); true if the exact product is outside int64.
inline bool portable_mul_overflow(int64_t a, int64_t b, int64_t* out) noexcept {
  *out = wrapped(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  if (a > 0) return b > 0 ? a > kMax / b : b < kMin / a;
  return b > 0 ? a < kMin / b : a != 0 && b < kMax / a;
}

// Leading zero bits of v, which must not be 0.
inline int portable_clz64(uint64_t v) noexcept {
  int zeros = 0;
  for (int shift = 32; shift > 0; shift /= 2) {
    if (v >> (64 - shift - zeros) == 0) zeros += shift;
  }
  return zeros;
}

#if LAYERWISE_FAST_GNU_BUILTINS
inline bool add_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return __builtin_add_overflow(a, b, out); }
inline bool sub_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return __builtin_sub_overflow(a, b, out); }
inline bool mul_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return __builtin_mul_overflow(a, b, out); }
inline int clz64(uint64_t v) noexcept { return __builtin_clzll(v); }
// A hint that the cache line holding p will be read soon.
inline void prefetch(const void* p) noexcept { __builtin_prefetch(p); }
#else
inline bool add_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return portable_add_overflow(a, b, out); }
inline bool sub_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return portable_sub_overflow(a, b, out); }
inline bool mul_overflow(int64_t a, int64_t b, int64_t* out) noexcept { return portable_mul_overflow(a, b, out); }
inline int clz64(uint64_t v) noexcept { return portable_clz64(v); }
inline void prefetch(const void*) noexcept {}
#endif

}  // namespace layerwise_fast::builtin
