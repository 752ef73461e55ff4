// Greedy next-fit: the fewest contiguous groups whose cost fits the capacity.
//
// Optimal for any monotone group cost: by induction, its i-th cut is never earlier than
// the i-th cut of any feasible partition. One pass, no prefix array, O(n) time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {

// Walks the layers left to right, closing the current group whenever the next layer
// would push its cost above `limit`. Calls on_cut(stop, closed_group) at each cut
// (stop < n); a false return ends the walk. Returns the last, still open group, or
// nothing if the walk was ended early. kValidate checks each layer that starts a group
// (sign, capacity); every other layer is checked by try_extend, which never accepts a
// negative size. Without kValidate the sizes must have been validated already (every
// size >= 0, the total within int64), as balanced() does before it probes.
template <bool kValidate, class Cost, class OnCut>
std::optional<typename Cost::Group> greedy_walk(const Cost& cost, int64_t limit, OnCut&& on_cut) {
  const int64_t n = cost.size();
  const auto next_group = [&](int64_t i) { return kValidate ? cost.single(i, limit) : cost.start(i); };
  auto group = next_group(0);
  for (int64_t i = 1; i < n;) {
    // Whole blocks first. In a block that does not fit, the cut is found either at once
    // (cost models that can) or layer by layer; blocks resume after the cut.
    if (i + kBlock <= n) {
      if (cost.template try_extend_block<!kValidate>(group, i, limit)) {
        i += kBlock;
        continue;
      }
      const int64_t fitted = cost.template extend_within_block<!kValidate>(group, i, limit);
      if (fitted >= 0) {
        i += fitted;
        if (!on_cut(i, group)) return std::nullopt;
        group = next_group(i++);
        continue;
      }
    }
    for (const int64_t end = std::min(n, i + kBlock); i < end; ++i) {
      if (cost.try_extend(group, i, limit)) continue;
      if (!on_cut(i, group)) return std::nullopt;
      group = next_group(i++);
      break;
    }
  }
  return group;
}

template <class Cost>
Partition greedy(const Cost& cost, int64_t capacity) {
  if (cost.size() < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  Partition result;
  // Room for groups of 64 layers on average: address space only until it is written.
  result.boundaries.reserve(static_cast<size_t>(cost.size() / 64 + 2));
  result.group_costs.reserve(static_cast<size_t>(cost.size() / 64 + 1));
  const auto last = greedy_walk<true>(cost, capacity, [&](int64_t stop, const typename Cost::Group& group) {
    result.close_group(stop, Cost::cost(group));
    return true;
  });
  result.close_group(cost.size(), Cost::cost(*last));
  return result;
}

}  // namespace layerwise_fast
