// A JsonReader handler that writes back a canonical text of what it read: no spaces,
// strings re-escaped from their resolved UTF-8, numbers as read. Reading a canonical
// text must give it back unchanged, which checks the reader, json_unescape and
// json_append_string against each other. Shared by the unit tests and the fuzz target.
#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "layerwise_fast/json_reader.hpp"
#include "layerwise_fast/json_writer.hpp"

namespace layerwise_fast::testing {

class CanonicalJson {
 public:
  std::string text;
  bool unpaired_surrogate = false;  // a string json_unescape refused

  bool begin_object() { return open('{', false); }
  bool key(std::string_view raw, bool escaped) {
    if (!separate()) return false;
    if (!append_string(raw, escaped)) return false;
    text.push_back(':');
    expect_value_ = true;
    return true;
  }
  bool end_object() { return close('}', false); }
  bool begin_array() { return open('[', true); }
  bool end_array() { return close(']', true); }
  bool string(std::string_view raw, bool escaped) { return value_start() && append_string(raw, escaped); }
  bool integer(int64_t value) {
    if (!value_start()) return false;
    char digits[24];
    text.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
    return true;
  }
  bool number(std::string_view raw, bool) { return value_start() && (text.append(raw), true); }
  bool boolean(bool value) { return value_start() && (text.append(value ? "true" : "false"), true); }
  bool null() { return value_start() && (text.append("null"), true); }

 private:
  struct Frame {
    bool is_array;
    bool empty = true;
  };

  bool open(char bracket, bool is_array) {
    if (!value_start()) return false;
    text.push_back(bracket);
    stack_.push_back({is_array});
    return true;
  }
  bool close(char bracket, bool is_array) {
    if (stack_.empty() || stack_.back().is_array != is_array || expect_value_) return false;
    stack_.pop_back();
    text.push_back(bracket);
    return true;
  }
  // A comma between members or elements; false if the reader's calls are out of order.
  bool separate() {
    if (stack_.empty() || expect_value_) return false;
    if (!stack_.back().empty) text.push_back(',');
    stack_.back().empty = false;
    return true;
  }
  bool value_start() {
    if (stack_.empty()) return text.empty();  // one top-level value
    if (stack_.back().is_array) return separate();
    if (!expect_value_) return false;  // an object's value without its key
    expect_value_ = false;
    return true;
  }
  bool append_string(std::string_view raw, bool escaped) {
    if (escaped) {
      if (!json_unescape(raw, scratch_)) {
        unpaired_surrogate = true;
        return false;
      }
      raw = scratch_;
    }
    json_append_string(text, raw);
    return true;
  }

  std::vector<Frame> stack_;
  bool expect_value_ = false;
  std::string scratch_;
};

// The canonical text of `input`, or "" when the reader declines it.
inline std::string canonical_json(std::string_view input, int max_depth = 64) {
  CanonicalJson handler;
  JsonReader<CanonicalJson> reader(input, handler, max_depth);
  return reader.read() ? handler.text : std::string();
}

}  // namespace layerwise_fast::testing
