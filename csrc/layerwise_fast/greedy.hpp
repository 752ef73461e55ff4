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
  int64_t group_start = 0;
  // After a group shorter than a block, layers go one by one: a block would hold
  // several cuts, each costing a failed block and a search within it. Blocks resume
  // once a group outgrows a block.
  bool short_groups = false;
  const auto cut = [&](int64_t stop) {
    if (!on_cut(stop, group)) return false;
    short_groups = stop - group_start < kBlock;
    group_start = stop;
    group = next_group(stop);
    return true;
  };
  for (int64_t i = 1; i < n;) {
    // Whole blocks first. In a block that does not fit, the cut is found either at once
    // (cost models that can) or layer by layer; blocks resume after the cut.
    if (!short_groups && i + kBlock <= n) {
      cost.prefetch_ahead(i);
      if (cost.template try_extend_block<!kValidate>(group, i, limit)) {
        i += kBlock;
        continue;
      }
      const int64_t fitted = cost.template extend_within_block<!kValidate>(group, i, limit);
      if (fitted >= 0) {
        i += fitted;
        if (!cut(i++)) return std::nullopt;
        continue;
      }
    }
    const int64_t end = std::min(n, i + kBlock);
    for (; i < end; ++i) {
      if (cost.try_extend(group, i, limit)) continue;
      if (!cut(i++)) return std::nullopt;
      break;
    }
    if (i == end && i - group_start >= kBlock) short_groups = false;
  }
  return group;
}

namespace detail {

// The `sum` model's next-fit in aligned blocks of 16 layers, for inputs that need no
// error: every size in [0, 2^59) and none above the limit. It vouches for that as it
// goes and returns false as soon as it cannot (the caller then starts over with the
// validating walk, which names the offending layer); on true, `result` holds the
// partition, on false nothing of use. Block sizes are OR-ed into an accumulator that
// is checked once at the end (and at each cut, to stop early on bad input), not per
// block; single layers go through exact unsigned comparisons. After a cut, the rest of
// the block joins the new group whole when it fits, so blocks keep their alignment;
// only blocks holding two cuts go layer by layer. The state lives in locals, not
// members, to stay in registers.
inline bool sum_block_greedy(const SumCost& sizes, int64_t limit, Partition& result) {
  const int64_t* s = sizes.data();
  const int64_t n = sizes.size();
  int64_t cost = 0;  // of the open group
  U64x2 bits{};      // OR of every size read in whole blocks
  const auto room = [&] { return static_cast<uint64_t>(limit - cost); };
  const auto sizes_safe = [&] { return lane_or(bits) < kBlockSafeBits; };
  // Layer j joins the open group or starts the next one; false if it is negative or
  // alone above the limit (a negative size never fits: it compares as a huge unsigned).
  const auto add_layer = [&](int64_t j) {
    const int64_t size = s[j];
    if (static_cast<uint64_t>(size) <= room()) {
      cost += size;
      return true;
    }
    result.close_group(j, cost);
    cost = size;
    return static_cast<uint64_t>(size) <= static_cast<uint64_t>(limit);
  };

  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    sizes.prefetch_ahead(i);
    const BlockPairs block(s + i);
    bits |= block.bits;
    const uint64_t total = lane_sum(block.low + block.high);
    if (total <= room()) {
      cost += static_cast<int64_t>(total);
      continue;
    }
    // The group is full inside this block. Its longest fitting prefix: the first half
    // in one step, then at most 8 layers with no branch per layer (sizes >= 0: the
    // fitting layers form a prefix). Past this point, unsafe sizes mean wrapped sums.
    if (!sizes_safe()) return false;
    const uint64_t low = lane_sum(block.low);
    const bool take_low = low <= room();
    const int64_t from = i + (take_low ? kBlock / 2 : 0);
    const uint64_t left = room() - (take_low ? low : 0);
    uint64_t fitted = take_low ? low : 0, partial = 0;
    int64_t count = 0;
    for (int64_t j = from; j < from + kBlock / 2; ++j) {
      partial += static_cast<uint64_t>(s[j]);
      const bool fits = partial <= left;
      count += fits;
      fitted += fits ? static_cast<uint64_t>(s[j]) : 0;
    }
    const int64_t stop = from + count;
    result.close_group(stop, cost + static_cast<int64_t>(fitted));
    cost = static_cast<int64_t>(total - fitted);  // layers [stop, i + 16)
    if (cost <= limit) continue;
    cost = 0;  // another cut in this block, or layer `stop` alone is too large
    for (int64_t j = stop; j < i + kBlock; ++j) {
      if (!add_layer(j)) return false;
    }
  }
  for (; i < n; ++i) {
    if (!add_layer(i)) return false;
  }
  if (!sizes_safe()) return false;
  result.close_group(n, cost);
  return true;
}

// Room for groups of 64 layers on average: address space only until it is written.
inline Partition reserved_partition(int64_t n) {
  Partition result;
  result.boundaries.reserve(static_cast<size_t>(n / 64 + 2));
  result.group_costs.reserve(static_cast<size_t>(n / 64 + 1));
  return result;
}

inline void check_greedy_arguments(int64_t n, int64_t capacity) {
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
}

}  // namespace detail

template <class Cost>
Partition greedy(const Cost& cost, int64_t capacity) {
  detail::check_greedy_arguments(cost.size(), capacity);
  Partition result = detail::reserved_partition(cost.size());
  const auto last = greedy_walk<true>(cost, capacity, [&](int64_t stop, const typename Cost::Group& group) {
    result.close_group(stop, Cost::cost(group));
    return true;
  });
  result.close_group(cost.size(), Cost::cost(*last));
  return result;
}

// The `sum` model: the block pass, or the validating walk for inputs it cannot vouch
// for (a negative size, a size of 2^59 or more, a layer above the capacity).
inline Partition greedy(const SumCost& cost, int64_t capacity) {
  detail::check_greedy_arguments(cost.size(), capacity);
  Partition result = detail::reserved_partition(cost.size());
  if (detail::sum_block_greedy(cost, capacity, result)) return result;
  return greedy<SumCost>(cost, capacity);
}

}  // namespace layerwise_fast
