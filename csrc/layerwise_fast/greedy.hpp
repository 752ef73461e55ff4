// Greedy next-fit: the fewest contiguous groups whose cost fits the capacity.
//
// Optimal for any monotone group cost: by induction, its i-th cut is never earlier than
// the i-th cut of any feasible partition. One pass, no prefix array, O(n) time.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {

template <class Cost>
Partition greedy(const Cost& cost, int64_t capacity) {
  const int64_t n = cost.size();
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  Partition result;
  auto group = cost.single(0, capacity);
  for (int64_t i = 1; i < n; ++i) {
    if (cost.try_extend(group, i, capacity)) continue;
    result.close_group(i, Cost::cost(group));
    group = cost.single(i, capacity);  // also reports a negative or oversized layer i
  }
  result.close_group(n, Cost::cost(group));
  return result;
}

}  // namespace layerwise_fast
