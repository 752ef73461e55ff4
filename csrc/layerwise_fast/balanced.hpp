// Exact balanced partitioning: the minimum bottleneck (largest group cost) over all
// partitions into exactly k non-empty contiguous groups.
//
// A search on the bottleneck B with a greedy probe "can k groups of cost <= B cover
// all layers?". Each probe's answer tightens the bracket to a value some partition
// actually realises, so the search is exact on integers:
//   feasible at B   -> hi = the largest group cost the probe produced (<= B);
//   infeasible at B -> lo = the smallest cost any of its k groups would have had with
//                      one more layer (> B): below that the probe repeats itself.
// The probes also estimate where the optimum lies from how much was left over (or
// spare): bytes for `sum`, weights for `peak`. That usually lands within a few probes;
// bisection takes over whenever the estimates stop halving the bracket. The `sum` probe remembers the cuts of earlier
// probes and, once they bracket each cut tightly, finds the cuts from those brackets
// instead of streaming over all layers. No O(n) memory beyond the input.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "layerwise_fast/builtins.hpp"
#include "layerwise_fast/cost.hpp"
#include "layerwise_fast/greedy.hpp"
#include "layerwise_fast/partition.hpp"

namespace layerwise_fast {
namespace detail {

struct ProbeResult {
  bool feasible;
  int64_t max_cost;       // largest group cost the probe formed
  int64_t min_extension;  // infeasible probes: smallest cost of a group plus its next layer
  double shift;           // estimated optimum minus the probed bound; NaN if the probe has none
};

inline constexpr double kNoEstimate = std::numeric_limits<double>::quiet_NaN();

inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// Where the next probe goes: the zero of the probes' estimates, interpolated between
// the latest probe below the optimum and the latest above it (regula falsi, with the
// Illinois halving so that one side cannot stall), or the one estimate there is.
class EstimateTracker {
 public:
  void record(int64_t bound, const ProbeResult& r) {
    if (std::isnan(r.shift)) return;
    Side& side = r.feasible ? above_ : below_;
    Side& other = r.feasible ? below_ : above_;
    if (last_was_above_ == r.feasible && other.valid) other.shift /= 2;
    side = {static_cast<double>(bound), r.shift, true};
    last_was_above_ = r.feasible;
  }

  // The estimated optimum, or 0 without any estimate.
  int64_t guess() const {
    double at = 0;
    if (below_.valid && above_.valid && below_.shift != above_.shift) {
      at = below_.bound + (above_.bound - below_.bound) * below_.shift / (below_.shift - above_.shift);
    } else if (below_.valid || above_.valid) {
      const Side& side = below_.valid ? below_ : above_;
      at = side.bound + side.shift;
    }
    return at >= 1.0 && at < 9.0e18 ? static_cast<int64_t>(std::llround(at)) : 0;
  }

 private:
  struct Side {
    double bound = 0, shift = 0;
    bool valid = false;
  };
  Side below_, above_;
  bool last_was_above_ = false;
};

// Smallest B in [lo, hi] for which probe(B) is feasible; hi must be feasible. Tries lo
// first, then the probes' estimates; after two probes in a row that did not halve the
// bracket, bisects. So at most about 3 log2(hi - lo) probes.
template <class Probe>
int64_t min_bottleneck(int64_t lo, int64_t hi, Probe&& probe) {
  EstimateTracker estimates;
  int64_t guess = lo;
  int misses = 0;
  while (lo < hi) {
    const int64_t width = hi - lo;
    const int64_t bound = misses >= 2 || guess <= 0 ? lo + width / 2 : std::clamp(guess, lo, hi - 1);
    const ProbeResult r = probe(bound);
    if (r.feasible) {
      hi = r.max_cost;
    } else {
      lo = r.min_extension;
    }
    estimates.record(bound, r);
    guess = estimates.guess();
    misses = hi - lo > width / 2 ? misses + 1 : 0;
  }
  return hi;
}

// Exactly k groups, each a prefix of the greedy group at `bound`, cut early only where
// the layers left are needed to keep every later group non-empty.
// group_end(start, bound, max_stop) -> {stop, cost} with start < stop <= max_stop.
template <class GroupEnd>
Partition clamped_greedy(int64_t n, int64_t k, int64_t bound, GroupEnd&& group_end) {
  Partition result;
  result.boundaries.reserve(static_cast<size_t>(k) + 1);
  result.group_costs.reserve(static_cast<size_t>(k));
  int64_t start = 0;
  for (int64_t g = 1; g <= k; ++g) {
    const auto [stop, cost] = group_end(start, bound, n - (k - g));
    if (g == k && stop != n) throw std::logic_error("balanced: final group does not reach n");
    result.close_group(stop, cost);
    start = stop;
  }
  return result;
}

// Greedy probe by one pass over the layers, for any monotone cost model. Calls
// on_cut(g, stop, closed_group) for each of the first k cuts g = 1..k.
template <class Cost, class OnCut>
ProbeResult linear_probe(const Cost& cost, int64_t k, int64_t bound, OnCut&& on_cut) {
  int64_t groups = 0, max_cost = 0, min_extension = kInt64Max;
  const auto last = greedy_walk<false>(cost, bound, [&](int64_t stop, const typename Cost::Group& group) {
    max_cost = std::max(max_cost, Cost::cost(group));
    min_extension = std::min(min_extension, cost.extended_cost(group, stop));
    on_cut(++groups, stop, group);
    return groups < k;
  });
  if (!last) return {false, max_cost, min_extension, kNoEstimate};
  return {true, std::max(max_cost, Cost::cost(*last)), 0, kNoEstimate};
}

template <class Cost>
ProbeResult linear_probe(const Cost& cost, int64_t k, int64_t bound) {
  return linear_probe(cost, k, bound, [](int64_t, int64_t, const typename Cost::Group&) {});
}

// Adds a `sum` probe's estimate of the optimum: lowering B by d costs the k groups
// about k * d of coverage, raising it gains as much. `groups` groups were formed; the
// last one started at prefix `last_start`.
inline ProbeResult with_sum_estimate(ProbeResult r, int64_t bound, int64_t k, int64_t total, int64_t groups,
                                     int64_t last_start) {
  const double parts = static_cast<double>(k);
  if (r.feasible) {  // spare: the unused groups and the room left in the last one
    const double spare = (parts - static_cast<double>(groups)) * static_cast<double>(bound) +
                         static_cast<double>(bound - (total - last_start));
    r.shift = -spare / parts;
  } else {  // shortfall: what the k groups left over
    r.shift = static_cast<double>(total - last_start) / parts;
  }
  return r;
}

// The greedy probe of the `sum` model, remembering the cuts (with their prefix sums)
// of the last feasible and the last infeasible probe. Greedy cuts are monotone in B, so
// for any B between those two bounds cut g lies between them: where both agree it is
// known without reading the sizes, elsewhere it is found by scanning forward from the
// lower cut (whole blocks while they fit), with the sizes there prefetched a few groups
// ahead. The scanned ranges of one probe are disjoint, so a probe never reads more than
// the n sizes a streaming probe reads, and usually far fewer. Only the first probe,
// before any lower cuts are known, streams.
class SumProbe {
 public:
  SumProbe(const SumCost& cost, int64_t k, int64_t total)
      : cost_(cost), n_(cost.size()), k_(k), total_(total),
        low_(static_cast<size_t>(k) + 1, {0, 0, cost.data()[0]}),
        high_(static_cast<size_t>(k) + 1, {cost.size(), total, 0}),
        cuts_(static_cast<size_t>(k) + 1) {
    // Entry 0 of every cut list is the start of the first group.
    high_[0] = cuts_[0] = low_[0];
  }

  ProbeResult operator()(int64_t bound) {
    const ProbeResult r = have_low_ ? from_brackets(bound) : stream(bound);
    (r.feasible ? high_ : low_).swap(cuts_);
    if (r.feasible) {
      high_max_ = r.max_cost;
    } else {
      have_low_ = true;
    }
    return r;
  }

  // Exactly k groups at the optimum `best`: the greedy cuts at `best`, each moved
  // early only where the layers left are needed to keep later groups non-empty.
  // Consumes the probe's state.
  Partition partition_at(int64_t best) {
    if (high_max_ != best) (*this)(best);  // the last feasible probe was not at `best`
    std::vector<Known>& cuts = high_;
    const int64_t* sizes = cost_.data();
    for (int64_t g = k_ - 1; g >= 1 && cuts[static_cast<size_t>(g)].stop > n_ - (k_ - g); --g) {
      const Known& next = cuts[static_cast<size_t>(g) + 1];
      cuts[static_cast<size_t>(g)] = {next.stop - 1, next.prefix - sizes[next.stop - 1], sizes[next.stop - 1]};
    }
    Partition result;
    result.boundaries.reserve(cuts.size());
    result.group_costs.reserve(cuts.size() - 1);
    for (size_t g = 1; g < cuts.size(); ++g) result.close_group(cuts[g].stop, cuts[g].prefix - cuts[g - 1].prefix);
    return result;
  }

 private:
  static constexpr int64_t kPrefetchAhead = 16;  // groups

  struct Known {
    int64_t stop;       // cut index
    int64_t prefix;     // sizes[0] + ... + sizes[stop - 1]
    int64_t next_size;  // sizes[stop] (0 at n)
  };

  Known known_at(int64_t stop, int64_t prefix) const { return {stop, prefix, stop < n_ ? cost_.data()[stop] : 0}; }

  ProbeResult stream(int64_t bound) {
    int64_t prefix = 0, closed = 0;
    ProbeResult r = linear_probe(cost_, k_, bound, [&](int64_t g, int64_t stop, const SumCost::Group& group) {
      prefix += group.cost;
      cuts_[static_cast<size_t>(g)] = known_at(stop, prefix);
      closed = g;
    });
    if (r.feasible) std::fill(cuts_.begin() + closed + 1, cuts_.end(), Known{n_, total_, 0});
    return with_estimate(r, bound, r.feasible ? closed + 1 : k_, prefix);
  }

  ProbeResult from_brackets(int64_t bound) {
    const int64_t* sizes = cost_.data();
    int64_t start = 0, start_prefix = 0, max_cost = 0, min_extension = kInt64Max;
    for (int64_t g = 1; g <= k_; ++g) {
      const size_t at = static_cast<size_t>(g);
      if (g + kPrefetchAhead <= k_) builtin::prefetch(sizes + low_[at + kPrefetchAhead].stop);
      const Known& low = low_[at];
      const Known cut = low.stop == high_[at].stop ? low : scan(start, start_prefix, low, high_[at].stop, bound);
      cuts_[at] = cut;
      max_cost = std::max(max_cost, cut.prefix - start_prefix);
      if (cut.stop == n_) {
        std::fill(cuts_.begin() + g + 1, cuts_.end(), Known{n_, total_, 0});
        return with_estimate({true, max_cost, 0, kNoEstimate}, bound, g, start_prefix);
      }
      min_extension = std::min(min_extension, cut.prefix - start_prefix + cut.next_size);
      start = cut.stop;
      start_prefix = cut.prefix;
    }
    return with_estimate({false, max_cost, min_extension, kNoEstimate}, bound, k_, start_prefix);
  }

  // The greedy cut after `start` at `bound`, known to lie in [low.stop, high_stop].
  Known scan(int64_t start, int64_t start_prefix, const Known& low, int64_t high_stop, int64_t bound) const {
    const int64_t* sizes = cost_.data();
    const int64_t target = saturating_add(start_prefix, bound);
    int64_t j = low.stop, p = low.prefix;
    if (j <= start) {  // the lower cut is behind this group's start: begin after it
      j = start + 1;
      p = start_prefix + sizes[start];
    }
    for (; j + kBlock <= high_stop; j += kBlock) {  // whole blocks while they fit
      const uint64_t sum = reduce_block(sizes + j).sum;  // sizes validated: exact
      if (sum > static_cast<uint64_t>(target - p)) break;
      p += static_cast<int64_t>(sum);
    }
    while (j < high_stop && sizes[j] <= target - p) p += sizes[j++];
    return known_at(j, p);
  }

  ProbeResult with_estimate(ProbeResult r, int64_t bound, int64_t groups, int64_t last_start) const {
    return with_sum_estimate(r, bound, k_, total_, groups, last_start);
  }

  const SumCost& cost_;
  int64_t n_, k_, total_;
  int64_t high_max_ = -1;  // realised bottleneck of the probe whose cuts are in high_
  bool have_low_ = false;  // low_ holds the cuts of an infeasible probe
  std::vector<Known> low_, high_, cuts_;
};

struct ModelSummary {
  int64_t largest;  // largest single-layer cost
  int64_t lower;    // the total of the summed part (bytes, or weights): k times a lower bound
  int64_t total;    // cost of all layers as one group
};

// One validating pass for the `sum` model: every size is checked (sign, capacity) and
// the total overflow-checked, in whole blocks where the sizes allow.
inline ModelSummary summarize(const SumCost& cost, int64_t capacity) {
  const int64_t* s = cost.data();
  const int64_t n = cost.size();
  int64_t total = 0, largest = 0, i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    cost.prefetch_ahead(i);
    const BlockReduce r = reduce_block(s + i);
    int64_t next = 0, lane[4] = {0, 0, 0, 0};  // independent chains: no serial max
    for (int64_t j = 0; j < kBlock; ++j) lane[j % 4] = std::max(lane[j % 4], s[i + j]);
    const int64_t block_largest = std::max(std::max(lane[0], lane[1]), std::max(lane[2], lane[3]));
    if (r.bits >= kBlockSafeBits || block_largest > capacity ||
        builtin::add_overflow(total, static_cast<int64_t>(r.sum), &next)) {
      break;  // let the layer-by-layer pass below find the exact layer
    }
    total = next;
    largest = std::max(largest, block_largest);
  }
  for (; i < n; ++i) {
    largest = std::max(largest, SumCost::cost(cost.single(i, capacity)));
    if (builtin::add_overflow(total, s[i], &total)) {
      throw std::overflow_error("the total of " + std::string(cost.column()) + " exceeds the int64 range at layer " +
                                std::to_string(i) +
                                "; balanced partitioning needs the total of the whole model (dp does not; --algo dp on "
                                "the command line)");
    }
  }
  return {largest, total, total};
}

// One validating pass for the `peak` model.
inline ModelSummary summarize(const PeakCost& cost, int64_t capacity) {
  int64_t largest = 0, weights = 0, live = 0;
  for (int64_t i = 0; i < cost.size(); ++i) {
    const auto g = cost.single(i, capacity);
    largest = std::max(largest, PeakCost::cost(g));
    weights = checked_add(weights, g.weights, "the total of weights", i);
    live = std::max(live, g.live);
  }
  return {largest, weights, checked_add(weights, live, "the cost of all layers", cost.size() - 1)};
}

inline void check_k(int64_t k, int64_t n) {
  if (n < 1) throw std::invalid_argument("sizes is empty: there are no layers to partition");
  if (k < 1 || k > n) {
    throw std::invalid_argument("k must be between 1 and the number of layers (" + std::to_string(n) +
                                "), got " + std::to_string(k));
  }
}

// The greedy group from `start` under `bound`, ended at max_stop at the latest.
template <class Cost>
std::pair<int64_t, int64_t> walk_group(const Cost& cost, int64_t start, int64_t bound, int64_t max_stop) {
  auto group = cost.start(start);
  int64_t stop = start + 1;
  while (stop < max_stop && cost.try_extend(group, stop, bound)) ++stop;
  return {stop, Cost::cost(group)};
}

// The part of a group's cost that adds up over its layers: what `lower` totals.
inline int64_t summed_part(const SumCost::Group& group) { return group.cost; }
inline int64_t summed_part(const PeakCost::Group& group) { return group.weights; }

// The largest k for which the sum probe keeps its cut brackets: three arrays of k + 1
// cuts stay within the size of the input itself.
inline bool brackets_fit(int64_t k, int64_t n) { return k <= n / 9; }

template <class Cost>
Partition balanced_unchecked_capacity(const Cost& cost, int64_t k, int64_t capacity) {
  const int64_t n = cost.size();
  const ModelSummary summary = summarize(cost, capacity);
  const int64_t lo = std::max(summary.largest, ceil_div(summary.lower, k));
  // B = lo + largest + M always fits, M the largest live bytes (0 for sums): a group
  // closed under B lacked room for its next layer (at most largest + M more), so what it
  // sums (bytes, or weights) exceeds lo, and k such groups would sum to more than all.
  const int64_t max_live = summary.total - summary.lower;
  const int64_t hi = std::min(summary.total, saturating_add(saturating_add(lo, summary.largest), max_live));
  if constexpr (std::is_same_v<Cost, SumCost>) {
    if (brackets_fit(k, n)) {
      SumProbe probe(cost, k, summary.total);
      return probe.partition_at(min_bottleneck(lo, hi, probe));
    }
  }
  // Streaming probes (too many groups to keep cut brackets, or `peak`), steered by what
  // the k groups left over of the summed part, or had spare.
  const int64_t best = min_bottleneck(lo, hi, [&](int64_t bound) {
    int64_t covered = 0, closed = 0;
    const ProbeResult r = linear_probe(cost, k, bound, [&](int64_t g, int64_t, const auto& group) {
      covered += summed_part(group);
      closed = g;
    });
    return with_sum_estimate(r, bound, k, summary.lower, r.feasible ? closed + 1 : k, covered);
  });
  return clamped_greedy(n, k, best, [&](int64_t start, int64_t bound, int64_t max_stop) {
    return walk_group(cost, start, bound, max_stop);
  });
}

}  // namespace detail

// The minimum-bottleneck partition into exactly k non-empty contiguous groups. With a
// capacity, every layer must fit it (layer_too_large otherwise) and so must the result
// (too_few_groups otherwise, naming the best bottleneck and the fewest groups that fit).
template <class Cost>
Partition balanced(const Cost& cost, int64_t k, int64_t capacity = kUnbounded) {
  detail::check_k(k, cost.size());
  if (capacity < 1) throw std::invalid_argument("capacity must be >= 1 byte");
  Partition result = detail::balanced_unchecked_capacity(cost, k, capacity);
  if (result.bottleneck > capacity) {
    throw too_few_groups(k, capacity, result.bottleneck, greedy(cost, capacity).k());
  }
  return result;
}

// The fewest groups that fit the capacity (greedy's k), balanced: the minimum
// bottleneck among all partitions with that many groups.
template <class Cost>
Partition balanced_fewest(const Cost& cost, int64_t capacity) {
  const int64_t k = greedy(cost, capacity).k();
  return detail::balanced_unchecked_capacity(cost, k, capacity);
}

}  // namespace layerwise_fast
