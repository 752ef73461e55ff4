// Exceptions raised by the partition core. The Python binding maps each one to a
// specific Python type (see bindings.cpp); C++ callers catch them directly.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace layerwise_fast {

// A single layer whose cost alone exceeds the capacity: no partition can hold it.
class layer_too_large : public std::invalid_argument {
 public:
  layer_too_large(int64_t layer, int64_t bytes, int64_t capacity)
      : std::invalid_argument("layer " + std::to_string(layer) + " needs " +
                              std::to_string(bytes) + " bytes, more than the capacity of " +
                              std::to_string(capacity) + " bytes (over by " +
                              std::to_string(bytes - capacity) + ")"),
        layer_(layer),
        bytes_(bytes),
        capacity_(capacity) {}

  int64_t layer() const noexcept { return layer_; }
  int64_t bytes() const noexcept { return bytes_; }
  int64_t capacity() const noexcept { return capacity_; }

 private:
  int64_t layer_, bytes_, capacity_;
};

// Exactly k groups were asked for together with a capacity, and even the best
// k-group partition exceeds it.
class too_few_groups : public std::invalid_argument {
 public:
  too_few_groups(int64_t k, int64_t capacity, int64_t bottleneck, int64_t min_groups)
      : std::invalid_argument("no partition into k=" + std::to_string(k) + " groups fits the capacity of " +
                              std::to_string(capacity) + " bytes: the smallest bottleneck for k=" +
                              std::to_string(k) + " is " + std::to_string(bottleneck) + " bytes; at least " +
                              std::to_string(min_groups) + " groups are needed"),
        k_(k),
        capacity_(capacity),
        bottleneck_(bottleneck),
        min_groups_(min_groups) {}

  int64_t k() const noexcept { return k_; }
  int64_t capacity() const noexcept { return capacity_; }
  int64_t bottleneck() const noexcept { return bottleneck_; }
  int64_t min_groups() const noexcept { return min_groups_; }

 private:
  int64_t k_, capacity_, bottleneck_, min_groups_;
};

// A size column holding a negative entry.
inline std::invalid_argument negative_size(const char* column, int64_t layer, int64_t value) {
  return std::invalid_argument(std::string(column) + "[" + std::to_string(layer) + "] is negative (" +
                               std::to_string(value) + "); sizes are bytes and must be >= 0");
}

}  // namespace layerwise_fast
