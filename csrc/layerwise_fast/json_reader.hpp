// A strict JSON reader (RFC 8259) that reports each value to a handler: the fast path
// for loading large layer tables and plans. It never guesses: anything outside plain
// JSON within its limits (a syntax error, a control character in a string, nesting
// deeper than max_depth, NaN or Infinity, a byte-order mark, trailing text) makes
// read() return false, and the caller falls back to its reference reader, which also
// words the error. It does not check UTF-8; the handler does, when it decodes strings.
//
// Handler callbacks (each returns false to stop the read, e.g. for a value it cannot
// represent):
//   begin_object()  key(text, escaped)  end_object()
//   begin_array()   end_array()
//   string(text, escaped)      the raw bytes between the quotes; escaped: holds a '\'
//   integer(value)             an integer that fits int64
//   number(text, is_integer)   any other number: an integer beyond int64, or a fraction
//                              or exponent, as written
//   boolean(value)  null()
// Optionally, for object keys that repeat row after row:
//   expected_key()   the raw text, quotes included, that the next key most likely has
//                    (empty: no guess); a key that matches it byte for byte is not
//                    scanned but reported by expected_key_read() instead of key().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "layerwise_fast/builtins.hpp"

namespace layerwise_fast {

inline int json_hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <class Handler, class = void>
struct expects_keys : std::false_type {};
template <class Handler>
struct expects_keys<Handler, std::void_t<decltype(std::declval<Handler&>().expected_key())>> : std::true_type {};

template <class Handler>
class JsonReader {
 public:
  JsonReader(std::string_view text, Handler& handler, int max_depth)
      : p_(text.data()), end_(text.data() + text.size()), handler_(handler), max_depth_(max_depth) {}

  // Reads the whole text as one JSON value; false if declined (see the file comment).
  bool read() {
    skip_space();
    if (!value(0)) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  bool value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': {
        std::string_view text;
        bool escaped;
        return string(text, escaped) && handler_.string(text, escaped);
      }
      case 't': return literal("true") && handler_.boolean(true);
      case 'f': return literal("false") && handler_.boolean(false);
      case 'n': return literal("null") && handler_.null();
      default: return number();
    }
  }

  bool object(int depth) {
    return depth <= max_depth_ && handler_.begin_object() && members('}', [&] { return member(depth); }) &&
           handler_.end_object();
  }

  bool array(int depth) {
    return depth <= max_depth_ && handler_.begin_array() && members(']', [&] { return value(depth); }) &&
           handler_.end_array();
  }

  // At an opening bracket: the comma-separated members up to `close`, each read by `one`.
  template <class ReadOne>
  bool members(char close, ReadOne&& one) {
    ++p_;
    skip_space();
    if (p_ != end_ && *p_ == close) {
      ++p_;
      return true;
    }
    for (;;) {
      if (!one()) return false;
      skip_space();
      if (p_ == end_) return false;
      if (*p_ == close) {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
      skip_space();
    }
  }

  bool member(int depth) {
    if (!member_key()) return false;
    skip_space();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    skip_space();
    return value(depth);
  }

  bool member_key() {
    if constexpr (expects_keys<Handler>::value) {
      // A quoted text with no quote or backslash inside: equal bytes are that key.
      const std::string_view expected = handler_.expected_key();
      if (!expected.empty() && static_cast<size_t>(end_ - p_) >= expected.size() &&
          std::memcmp(p_, expected.data(), expected.size()) == 0) {
        p_ += expected.size();
        return handler_.expected_key_read();
      }
    }
    std::string_view key;
    bool escaped;
    return p_ != end_ && *p_ == '"' && string(key, escaped) && handler_.key(key, escaped);
  }

  // At an opening quote: the raw text up to the closing quote, with escapes checked.
  bool string(std::string_view& text, bool& escaped) {
    const char* start = ++p_;
    escaped = false;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        text = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c == '\\') {
        escaped = true;
        if (++p_ == end_) return false;
        if (*p_ == 'u') {
          for (int i = 0; i < 4; ++i) {
            if (++p_ == end_ || json_hex_digit(*p_) < 0) return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(*p_) == std::string_view::npos) {
          return false;
        }
      }
      ++p_;
    }
    return false;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    const char* start = p_;
    const bool negative = p_ != end_ && *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_ || !is_digit(*p_)) return false;
    // Accumulated as a negative value, whose range includes INT64_MIN.
    int64_t value = 0;
    bool fits = true;
    if (*p_ == '0') {
      ++p_;
    } else {
      for (; p_ != end_ && is_digit(*p_); ++p_) {
        fits = fits && !builtin::mul_overflow(value, 10, &value) && !builtin::sub_overflow(value, *p_ - '0', &value);
      }
    }
    bool is_integer = true;
    if (p_ != end_ && *p_ == '.') {
      is_integer = false;
      if (++p_ == end_ || !is_digit(*p_)) return false;
      while (p_ != end_ && is_digit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_integer = false;
      if (++p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ != end_ && is_digit(*p_)) ++p_;
    }
    if (is_integer && fits && (negative || value != INT64_MIN)) {
      return handler_.integer(negative ? value : -value);
    }
    return handler_.number(std::string_view(start, static_cast<size_t>(p_ - start)), is_integer);
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  const char* p_;
  const char* end_;
  Handler& handler_;
  int max_depth_;
};

// The UTF-8 bytes of a JSON string's raw text (as read by JsonReader, escapes already
// checked), escapes resolved; false for an unpaired surrogate escape (\ud800), which
// UTF-8 cannot carry. Other bytes are copied as they are.
inline bool json_unescape(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  const auto hex4 = [](const char* p) {
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) code = code * 16 + static_cast<uint32_t>(json_hex_digit(p[i]));
    return code;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    const char kind = text[++i];
    if (kind != 'u') {
      const char* from = "\"\\/bfnrt";
      const char* to = "\"\\/\b\f\n\r\t";
      out.push_back(to[std::string_view(from).find(kind)]);
      continue;
    }
    uint32_t code = hex4(text.data() + i + 1);
    i += 4;
    if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a low surrogate first
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (i + 6 >= text.size() || text[i + 1] != '\\' || text[i + 2] != 'u') return false;
      const uint32_t low = hex4(text.data() + i + 3);
      if (low < 0xDC00 || low > 0xDFFF) return false;
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      i += 6;
    }
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }
  return true;
}

}  // namespace layerwise_fast
