// JSON text of int64 columns and of strings, exactly as Python's json module writes
// them with ensure_ascii=False and separators=(",", ":"), at a few nanoseconds per
// value: the fast path for writing large plans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "layerwise_fast/builtins.hpp"

namespace layerwise_fast {

inline uint64_t magnitude(int64_t v) {  // |v|, well defined for INT64_MIN too
  return v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
}

// Decimal digits of v (1 for 0), from its bit length: no division.
inline int decimal_digits(uint64_t v) {
  static constexpr uint64_t kPow10[20] = {
      1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
      1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
      100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
      1000000000000000000ULL, 10000000000000000000ULL};
  v |= 1;
  const int guess = ((64 - builtin::clz64(v)) * 1233) >> 12;  // floor(log10(2^bits))
  return guess + 1 - (v < kPow10[guess]);
}

// Writes the `digits` decimal digits of v at p, two per step from a table; returns the end.
inline char* json_write_digits(char* p, uint64_t v, int digits) {
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char* end = p + digits;
  char* q = end;
  while (v >= 100) {
    const auto pair = static_cast<std::size_t>(v % 100) * 2;
    v /= 100;
    *--q = kPairs[pair + 1];
    *--q = kPairs[pair];
  }
  if (v >= 10) {
    *--q = kPairs[v * 2 + 1];
    *--q = kPairs[v * 2];
  } else {
    *--q = static_cast<char>('0' + v);
  }
  return end;
}

// Length of "[v0,v1,...]", to size the buffer json_write_int_list fills.
inline std::size_t json_int_list_size(const int64_t* values, std::size_t n) {
  std::size_t size = n == 0 ? 2 : n + 1;  // brackets and commas
  for (std::size_t i = 0; i < n; ++i) {
    size += static_cast<std::size_t>(values[i] < 0) + static_cast<std::size_t>(decimal_digits(magnitude(values[i])));
  }
  return size;
}

// Writes "[v0,v1,...]" at out (json_int_list_size bytes); returns the end.
inline char* json_write_int_list(char* out, const int64_t* values, std::size_t n) {
  *out++ = '[';
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) *out++ = ',';
    if (values[i] < 0) *out++ = '-';
    const uint64_t v = magnitude(values[i]);
    out = json_write_digits(out, v, decimal_digits(v));
  }
  *out++ = ']';
  return out;
}

inline std::string json_int_list(const int64_t* values, std::size_t n) {
  std::string out(json_int_list_size(values, n), '\0');
  json_write_int_list(&out[0], values, n);
  return out;
}

// Appends `text` (UTF-8) as a JSON string: '"' and '\' escaped, control characters as
// \b \f \n \r \t or \u00xx (lower-case hex), everything else (non-ASCII included) as is.
inline void json_append_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t plain = 0;  // start of the run of characters copied as they are
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + plain, i - plain);
    plain = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '\b': out.push_back('b'); break;
      case '\f': out.push_back('f'); break;
      case '\n': out.push_back('n'); break;
      case '\r': out.push_back('r'); break;
      case '\t': out.push_back('t'); break;
      default:
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out.push_back('"');
}

}  // namespace layerwise_fast
