// Devices of different capacities in a fixed pipeline order: group i runs on device i
// and must fit capacities[i].
//
//   ordered_fit(cost, capacities)       the fewest groups, exact
//   ordered_balanced(cost, capacities)  the fewest groups, then the smallest bottleneck
//
// Next-fit is not exact once capacities differ: filling device 0 to the brim can leave
// a large layer to a small device 1 (sizes 1, 1, 2 on capacities 2, 1, 2). Instead,
// reach[i] holds every boundary at which i non-empty groups on devices 0..i-1 can end,
// as sorted disjoint spans. From a boundary c, device i can end a group anywhere in
// (c, r(c)], where r(c) is the end of the greedy group that starts at c (r(c) = c when
// layer c alone is too large). r never decreases with c (both cost models are
// monotone), so a run of boundaries whose layers each fit alone maps to the one span
// [first + 1, r(last)]: one greedy walk per run, not per boundary. The first i whose
// reach holds n is the fewest groups. The cuts are recovered backwards, each the
// largest boundary of the previous reach before the next cut: the group from there
// lies inside one that fits, so it fits too.
//
// Layers too large for a device alone split the runs; an index of each 64-layer
// block's smallest and largest single-layer cost finds them without reading every
// layer. The walks of one device slide one group forward from run to run (a monotone
// queue keeps the `peak` model's largest live bytes), so however split its reach, a
// device reads each layer at most twice: O(n) per device.
//
// ordered_balanced returns balanced()'s k groups where each fits its own device (no
// ordered partition has a smaller bottleneck); otherwise it searches on the bottleneck
// B, each probe the reach over the first k devices with their capacities lowered to B
// (probe_ordered says how it converges).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "layerwise_fast/balanced.hpp"
#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/greedy.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {

enum class OrderedOutcome : int {
  fits = 0,                 // `partition` holds the groups, group g on device g
  device_cannot_start = 1,  // device `device` cannot hold layer `layer`, the furthest a group can start
  devices_exhausted = 2,    // layers from `layer` on remain after the last device
};

struct OrderedPartition {
  OrderedOutcome outcome = OrderedOutcome::fits;
  Partition partition;  // fits only
  int64_t device = -1;  // device_cannot_start only
  int64_t layer = -1;   // device_cannot_start and devices_exhausted
};

namespace detail {

inline constexpr int64_t kIndexBlock = 64;

struct Span {
  int64_t first, last;  // boundaries first..last, inclusive
};
using Reach = std::vector<Span>;

// Validates every layer (sign, and for `peak` weights + live within int64) and keeps,
// for each block of kIndexBlock layers, the smallest and largest cost of one layer, and
// an upper bound of their total (each block's largest times its length, saturating).
template <class Cost>
class SingleLayerIndex {
 public:
  explicit SingleLayerIndex(const Cost& cost) : cost_(cost) {
    const int64_t n = cost.size();
    const auto blocks = static_cast<size_t>((n + kIndexBlock - 1) / kIndexBlock);
    smallest_.resize(blocks);
    largest_.resize(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      const int64_t from = static_cast<int64_t>(b) * kIndexBlock, to = std::min(n, from + kIndexBlock);
      int64_t low = kInt64Max, high = 0;
      for (int64_t i = from; i < to; ++i) {
        const int64_t alone = Cost::cost(cost.single(i, kUnbounded));
        low = std::min(low, alone);
        high = std::max(high, alone);
      }
      smallest_[b] = low;
      largest_[b] = high;
      // A block's sum is at most 64 times its largest; saturate once that could overflow.
      total_ = high > kInt64Max / kIndexBlock ? kInt64Max : saturating_add(total_, high * (to - from));
    }
  }

  int64_t largest() const { return *std::max_element(largest_.begin(), largest_.end()); }

  // Whether the layers' costs surely sum to less than INT64_MAX, as balanced() requires.
  bool total_fits() const { return total_ < kInt64Max; }

  // The first layer in [from, to) whose cost alone is above `capacity` (kAbove) or at
  // most `capacity` (!kAbove); `to` if there is none.
  template <bool kAbove>
  int64_t first(int64_t from, int64_t to, int64_t capacity) const {
    const auto hit = [&](int64_t i) { return (alone(i) > capacity) == kAbove; };
    const auto block_may_hit = [&](int64_t i) {
      const auto b = static_cast<size_t>(i / kIndexBlock);
      return kAbove ? largest_[b] > capacity : smallest_[b] <= capacity;
    };
    for (int64_t i = from; i < to;) {
      if (i % kIndexBlock == 0 && i + kIndexBlock <= to && !block_may_hit(i)) {
        i += kIndexBlock;
      } else if (hit(i)) {
        return i;
      } else {
        ++i;
      }
    }
    return to;
  }

 private:
  int64_t alone(int64_t i) const { return Cost::cost(cost_.start(i)); }

  const Cost& cost_;
  std::vector<int64_t> smallest_, largest_;
  int64_t total_ = 0;
};

// The greedy group [start, end) of one device, slid forward from one run's last
// boundary to the next: end_from(start) is r(start), for starts that never decrease
// and whose layer fits alone. Overlapping groups are not read again: the layers before
// the new start leave the group and the walk goes on from its end, so a device reads
// each layer at most twice however many runs its reach has.
template <class Cost>
class SlidingGroup;

template <>
class SlidingGroup<SumCost> {
 public:
  SlidingGroup(const SumCost& cost, int64_t limit) : cost_(cost), limit_(limit) {}

  int64_t end_from(int64_t start) {
    if (start >= end_) {
      start_ = end_ = start;
      group_ = {0};
    }
    for (; start_ < start; ++start_) group_.cost -= cost_.data()[start_];
    const int64_t n = cost_.size();
    while (end_ + kBlock <= n && cost_.try_extend_block(group_, end_, limit_)) end_ += kBlock;
    while (end_ < n && cost_.try_extend(group_, end_, limit_)) ++end_;
    return end_;
  }

  // The cost the last group would have with its next layer (INT64_MAX past the last).
  int64_t grown() const { return end_ < cost_.size() ? cost_.extended_cost(group_, end_) : kInt64Max; }

 private:
  const SumCost& cost_;
  int64_t limit_, start_ = 0, end_ = 0;
  SumCost::Group group_{0};
};

// The end of the greedy group that starts at `start` (whose layer fits alone), by the
// block walk of greedy(); `grown` becomes its cost with its next layer (INT64_MAX at n).
template <class Cost>
int64_t greedy_group_end(const Cost& cost, int64_t start, int64_t limit, int64_t& grown) {
  const Cost rest = cost.suffix(start);
  int64_t end = cost.size();
  grown = kInt64Max;
  greedy_walk<true>(rest, limit, [&](int64_t stop, const auto& group) {
    end = start + stop;
    grown = rest.extended_cost(group, stop);
    return false;  // the first group is all that is needed
  });
  return end;
}

// The `peak` group keeps the layers that may yet hold its largest live bytes in
// decreasing order of those bytes (a monotone queue), so that layers leaving at the
// front never force a scan of the rest. The queue costs more per layer than the block
// walk, so a group that does not overlap the last one is walked by blocks, and the
// queue is built (one more read of that group) only when the next start falls inside it.
template <>
class SlidingGroup<PeakCost> {
 public:
  SlidingGroup(const PeakCost& cost, int64_t limit) : cost_(cost), limit_(limit) {}

  int64_t end_from(int64_t start) {
    if (start >= end_) {
      start_ = start;
      end_ = greedy_group_end(cost_, start, limit_, grown_);
      queued_ = false;
      return end_;
    }
    if (!queued_) enqueue(start);
    for (; start_ < start; ++start_) weights_ -= cost_.weights()[start_];
    while (largest_.front() < start) largest_.pop_front();  // layer `start` stays queued
    PeakCost::Group group{weights_, cost_.live()[largest_.front()]};
    for (; end_ < cost_.size() && cost_.try_extend(group, end_, limit_); ++end_) push(end_);
    weights_ = group.weights;
    grown_ = end_ < cost_.size() ? cost_.extended_cost(group, end_) : kInt64Max;
    return end_;
  }

  int64_t grown() const { return grown_; }

 private:
  // The weights and the queue of the group [start_, end_) as the block walk left it.
  void enqueue(int64_t from) {
    weights_ = 0;
    largest_.clear();
    for (int64_t i = start_; i < end_; ++i) {
      weights_ += cost_.weights()[i];
      if (i >= from) push(i);
    }
    queued_ = true;
  }

  void push(int64_t i) {
    const int64_t* live = cost_.live();
    while (!largest_.empty() && live[largest_.back()] <= live[i]) largest_.pop_back();
    largest_.push_back(i);
  }

  const PeakCost& cost_;
  int64_t limit_, start_ = 0, end_ = 0, weights_ = 0, grown_ = kInt64Max;
  bool queued_ = false;
  std::deque<int64_t> largest_;
};

// The boundaries one more group, on a device of `capacity`, can end at. `growth`
// becomes the smallest cost of a walk's group with its next layer that fits `ceiling`
// (the device's own capacity, above `capacity` where a bound lowered it), if smaller.
template <class Cost>
Reach extend_reach(const Cost& cost, const SingleLayerIndex<Cost>& index, const Reach& from,
                   int64_t capacity, int64_t ceiling, int64_t& growth) {
  const int64_t n = cost.size();
  Reach out;
  SlidingGroup<Cost> group(cost, capacity);
  for (const Span& span : from) {
    const int64_t stop = std::min(span.last, n - 1) + 1;  // groups start in [span.first, stop)
    int64_t start = index.template first<false>(span.first, stop, capacity);
    while (start < stop) {
      const int64_t blocked = index.template first<true>(start, stop, capacity);
      const Span reached{start + 1, group.end_from(blocked - 1)};
      if (group.grown() <= ceiling) growth = std::min(growth, group.grown());
      if (!out.empty() && reached.first <= out.back().last + 1) {
        out.back().last = std::max(out.back().last, reached.last);
      } else {
        out.push_back(reached);
      }
      if (out.back().last == n) return out;  // later runs reach no further
      start = index.template first<false>(blocked, stop, capacity);
    }
  }
  return out;
}

// reach[0] = {0}, then one step per device (capacity lowered to `bound`) until a reach
// holds the last boundary n, or is empty, or the devices run out. `growth`: the
// smallest bound above `bound` at which any of the walks would have gone further
// (INT64_MAX if none could): below it every reach would be the same.
template <class Cost>
std::vector<Reach> reach_over(const Cost& cost, const SingleLayerIndex<Cost>& index,
                              const std::vector<int64_t>& capacities, int64_t bound, int64_t& growth) {
  std::vector<Reach> reach{Reach{Span{0, 0}}};
  growth = kInt64Max;
  for (const int64_t capacity : capacities) {
    Reach next = extend_reach(cost, index, reach.back(), std::min(capacity, bound), capacity, growth);
    const bool done = next.empty() || next.back().last == cost.size();
    reach.push_back(std::move(next));
    if (done) break;
  }
  return reach;
}

inline bool reaches_the_end(const std::vector<Reach>& reach, int64_t n) {
  return !reach.back().empty() && reach.back().back().last == n;
}

// The groups of a reach that holds n: each cut the largest boundary of the previous
// reach before the next cut.
template <class Cost>
Partition partition_back(const Cost& cost, const std::vector<Reach>& reach) {
  std::vector<int64_t> cuts(reach.size());
  cuts.back() = cost.size();
  for (size_t i = reach.size() - 1; i-- > 0;) {
    const int64_t next = cuts[i + 1];
    const auto after = std::partition_point(reach[i].begin(), reach[i].end(),
                                            [next](const Span& s) { return s.first < next; });
    cuts[i] = std::min(std::prev(after)->last, next - 1);
  }
  Partition result;
  for (size_t g = 0; g + 1 < cuts.size(); ++g) {
    result.close_group(cuts[g + 1], walk_group(cost, cuts[g], kUnbounded, cuts[g + 1]).second);
  }
  return result;
}

template <class Cost>
OrderedPartition ordered_fit(const Cost& cost, const SingleLayerIndex<Cost>& index,
                             const std::vector<int64_t>& capacities) {
  int64_t growth;
  const std::vector<Reach> reach = reach_over(cost, index, capacities, kUnbounded, growth);
  OrderedPartition result;
  if (reaches_the_end(reach, cost.size())) {
    result.partition = partition_back(cost, reach);
  } else if (reach.back().empty()) {
    result.outcome = OrderedOutcome::device_cannot_start;
    result.device = static_cast<int64_t>(reach.size()) - 2;
    result.layer = reach[reach.size() - 2].back().last;
  } else {
    result.outcome = OrderedOutcome::devices_exhausted;
    result.layer = reach.back().back().last;
  }
  return result;
}

// A probe of ordered_balanced at `bound`, which must be at least the largest single
// layer (so that lowering a capacity to it never stops a layer alone; ordered_balanced
// probes from balanced()'s bottleneck up). Feasible: the bottleneck of the groups it
// found, a bound that is feasible too. Infeasible: the smallest bound at which a walk
// would go further; below it the probe repeats itself. Both snap the search to values
// a partition realises, so it ends after a few probes. The estimate of how far the
// optimum lies (for min_bottleneck's interpolation) shares what was left over (the
// summed part of the layers past the furthest boundary reached), or the room left in
// the smallest possible last group, among the devices whose capacity the bound lowers.
template <class Cost>
ProbeResult probe_ordered(const Cost& cost, const SingleLayerIndex<Cost>& index,
                          const std::vector<int64_t>& devices, int64_t bound) {
  const int64_t n = cost.size();
  int64_t growth;
  const std::vector<Reach> reach = reach_over(cost, index, devices, bound, growth);
  double lowered = 0;
  for (const int64_t capacity : devices) lowered += capacity > bound ? 1 : 0;
  const double share = std::max(lowered, 1.0);
  if (!reaches_the_end(reach, n)) {
    const Reach& last = reach.back().empty() ? reach[reach.size() - 2] : reach.back();
    double left = 0;
    for (int64_t i = last.back().last; i < n; ++i) left += static_cast<double>(summed_part(cost.start(i)));
    return {false, bound, growth, left / share};
  }
  const Partition found = partition_back(cost, reach);
  const double room = static_cast<double>(std::min(devices.back(), bound) - found.group_costs.back());
  return {true, found.bottleneck, growth, -room / share};
}

// Whether group g of `p` fits devices[g], for every g.
inline bool fits_in_order(const Partition& p, const std::vector<int64_t>& devices) {
  for (size_t g = 0; g < p.group_costs.size(); ++g) {
    if (p.group_costs[g] > devices[g]) return false;
  }
  return true;
}

inline void check_ordered_arguments(int64_t n, const std::vector<int64_t>& capacities) {
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (capacities.empty()) throw std::invalid_argument("capacities is empty: there are no devices");
  for (size_t d = 0; d < capacities.size(); ++d) {
    if (capacities[d] < 1) {
      throw std::invalid_argument("capacities[" + std::to_string(d) + "] must be >= 1 byte, got " +
                                  std::to_string(capacities[d]));
    }
  }
}

}  // namespace detail

// The fewest groups, group g fitting capacities[g], in pipeline order. Exact. Throws
// on invalid sizes (negative, overflow) and arguments; an infeasible order is an
// outcome, not an exception, so that the caller can name the layer and device.
template <class Cost>
OrderedPartition ordered_fit(const Cost& cost, const std::vector<int64_t>& capacities) {
  detail::check_ordered_arguments(cost.size(), capacities);
  const detail::SingleLayerIndex<Cost> index(cost);
  return detail::ordered_fit(cost, index, capacities);
}

// ordered_fit's number of groups k, and among those partitions the smallest largest
// group cost: a search on the bound B, each probe the reach over devices 0..k-1 with
// capacities min(capacities[g], B). Exact on integers. balanced()'s partition into k
// groups is returned as it is where each of its groups fits its device (no ordered
// partition has a smaller bottleneck); otherwise the search starts from its bottleneck
// and ends at ordered_fit's bottleneck at most.
// Where that cannot be lowered, ordered_fit's groups are returned as they are.
template <class Cost>
OrderedPartition ordered_balanced(const Cost& cost, const std::vector<int64_t>& capacities) {
  detail::check_ordered_arguments(cost.size(), capacities);
  const detail::SingleLayerIndex<Cost> index(cost);
  OrderedPartition fit = detail::ordered_fit(cost, index, capacities);
  if (fit.outcome != OrderedOutcome::fits) return fit;
  const auto k = static_cast<size_t>(fit.partition.k());
  const std::vector<int64_t> devices(capacities.begin(), capacities.begin() + static_cast<std::ptrdiff_t>(k));
  const auto probe = [&](int64_t bound) {
    return detail::probe_ordered(cost, index, devices, bound);
  };
  int64_t lowest = index.largest();
  if (index.total_fits()) {
    // balanced()'s groups are optimal here as soon as each fits its own device.
    Partition even = balanced(cost, fit.partition.k());
    if (detail::fits_in_order(even, devices)) {
      fit.partition = std::move(even);
      return fit;
    }
    lowest = even.bottleneck;
  }
  const int64_t best = detail::min_bottleneck(lowest, fit.partition.bottleneck, probe);
  if (best == fit.partition.bottleneck) return fit;
  int64_t growth;
  fit.partition = detail::partition_back(cost, detail::reach_over(cost, index, devices, best, growth));
  return fit;
}

}  // namespace layerwise_fast
