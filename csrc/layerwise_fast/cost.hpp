// Group cost models and checked integer arithmetic.
//
// A cost model answers three questions about a contiguous group of layers:
//   single(i, capacity)       the group {i}; validates layer i (sign, capacity)
//   try_extend(g, i, limit)   add layer i (left or right neighbour) if the cost stays <= limit
//   extended_cost(g, i)       the cost g would have with layer i added (saturating)
// Both models are monotone: adding a layer never lowers the cost. That is what makes
// greedy next-fit optimal and bisection on the bottleneck exact.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "layerwise_fast/builtins.hpp"
#include "layerwise_fast/errors.hpp"

namespace layerwise_fast {

inline constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Capacity meaning "no limit": every layer fits.
inline constexpr int64_t kUnbounded = kInt64Max;

// Layers per block for the vectorisable fast paths (greedy, prefix sums).
inline constexpr int64_t kBlock = 16;

// The block loops that stream over the sizes (greedy's, and the `sum` validating pass)
// ask for them this many layers (3 KiB) ahead, one hint per block of 16 (the block's
// other cache line is left to the hardware's adjacent-line prefetch). With the hardware
// prefetcher alone, greedy took 1.1x to 1.3x a plain summing pass over 10^7 layers on
// a Xeon; with one hint per block 0.8x to 0.9x, with one per cache line 1.1x to 1.2x.
inline constexpr int64_t kStreamAhead = 384;

// A block whose entries OR to less than this holds only entries in [0, 2^59), whose
// sum over kBlock = 16 entries cannot overflow int64.
inline constexpr uint64_t kBlockSafeBits = uint64_t{1} << 59;

// Two uint64 lanes: one SSE2 / NEON register where the compiler has vector types.
// Spelled out so that block reductions vectorise; a scalar loop over 16 values
// compiles to 16 loads and register spills.
#if LAYERWISE_FAST_GNU_BUILTINS
typedef uint64_t U64x2 __attribute__((vector_size(16)));
#else
struct U64x2 {
  uint64_t lane[2];
  uint64_t operator[](int i) const noexcept { return lane[i]; }
  friend U64x2 operator+(U64x2 a, U64x2 b) noexcept { return {{a.lane[0] + b.lane[0], a.lane[1] + b.lane[1]}}; }
  friend U64x2 operator|(U64x2 a, U64x2 b) noexcept { return {{a.lane[0] | b.lane[0], a.lane[1] | b.lane[1]}}; }
  U64x2& operator|=(U64x2 b) noexcept { return *this = *this | b; }
};
#endif

inline U64x2 load_pair(const int64_t* values) noexcept {
  U64x2 v;
  std::memcpy(&v, values, sizeof v);  // unaligned load
  return v;
}

inline uint64_t lane_sum(U64x2 v) noexcept { return v[0] + v[1]; }
inline uint64_t lane_or(U64x2 v) noexcept { return v[0] | v[1]; }

// One block of kBlock = 16 values as eight lane pairs: the OR of all of them, and the
// wrapping sums of each half.
struct BlockPairs {
  U64x2 bits, low, high;

  explicit BlockPairs(const int64_t* values) noexcept {
    const U64x2 a0 = load_pair(values), a1 = load_pair(values + 2);
    const U64x2 a2 = load_pair(values + 4), a3 = load_pair(values + 6);
    const U64x2 b0 = load_pair(values + 8), b1 = load_pair(values + 10);
    const U64x2 b2 = load_pair(values + 12), b3 = load_pair(values + 14);
    bits = ((a0 | a1) | (a2 | a3)) | ((b0 | b1) | (b2 | b3));
    low = (a0 + a1) + (a2 + a3);
    high = (b0 + b1) + (b2 + b3);
  }
};
static_assert(kBlock == 16, "BlockPairs reads 16 values");

// OR and wrapping sum of values[0..kBlock): the sum is exact when the OR is below
// kBlockSafeBits (then no entry is negative either).
struct BlockReduce {
  uint64_t bits = 0;
  uint64_t sum = 0;
};

inline BlockReduce reduce_block(const int64_t* values) noexcept {
  const BlockPairs block(values);
  return {lane_or(block.bits), lane_sum(block.low + block.high)};
}

// a + b for non-negative operands, clamped at INT64_MAX.
inline int64_t saturating_add(int64_t a, int64_t b) noexcept {
  return a > kInt64Max - b ? kInt64Max : a + b;
}

// a + b, or std::overflow_error naming what was being summed.
inline int64_t checked_add(int64_t a, int64_t b, const char* what, int64_t layer) {
  int64_t out;
  if (builtin::add_overflow(a, b, &out)) {
    throw std::overflow_error(std::string(what) + " exceeds the int64 range at layer " +
                              std::to_string(layer));
  }
  return out;
}

// `sum` model: a group costs the sum of its layers' working sets.
class SumCost {
 public:
  struct Group {
    int64_t cost;
  };

  SumCost(const int64_t* sizes, int64_t n, const char* column = "sizes")
      : sizes_(sizes), n_(n), column_(column) {}

  int64_t size() const noexcept { return n_; }
  const int64_t* data() const noexcept { return sizes_; }
  const char* column() const noexcept { return column_; }

  // Asks for the sizes kStreamAhead layers after layer i, if there are any.
  void prefetch_ahead(int64_t i) const noexcept {
    if (i + kStreamAhead < n_) builtin::prefetch(sizes_ + i + kStreamAhead);
  }

  // Layers [from, n) as a model of their own (layer `from` becomes layer 0).
  SumCost suffix(int64_t from) const noexcept { return SumCost(sizes_ + from, n_ - from, column_); }

  Group single(int64_t i, int64_t capacity) const {
    const int64_t s = sizes_[i];
    if (s < 0) throw negative_size(column_, i, s);
    if (s > capacity) throw layer_too_large(i, s, capacity);
    return {s};
  }

  // The group {i} for an already validated layer.
  Group start(int64_t i) const noexcept { return {sizes_[i]}; }

  // A negative size compares as a huge unsigned value and never fits, so it falls to
  // the caller's slow path, which calls single() and reports it.
  bool try_extend(Group& g, int64_t i, int64_t limit) const noexcept {
    const int64_t s = sizes_[i];
    if (static_cast<uint64_t>(s) > static_cast<uint64_t>(limit - g.cost)) return false;
    g.cost += s;
    return true;
  }

  // Adds layers [i, i + kBlock) at once if they all fit; false means "go one by one".
  // kValidated: the sizes are known to be >= 0 with an int64 total (no checks needed).
  template <bool kValidated = false>
  bool try_extend_block(Group& g, int64_t i, int64_t limit) const noexcept {
    const BlockReduce r = reduce_block(sizes_ + i);  // validated: the unused OR is dropped
    if (!kValidated && r.bits >= kBlockSafeBits) return false;
    if (r.sum > static_cast<uint64_t>(limit - g.cost)) return false;
    g.cost += static_cast<int64_t>(r.sum);
    return true;
  }

  // For a block [i, i + kBlock) that does not fit whole: adds the longest run of its
  // first layers that fits and returns its length (< kBlock), without branching per
  // layer. Returns -1, adding nothing, when unvalidated sizes need the careful path.
  template <bool kValidated = false>
  int64_t extend_within_block(Group& g, int64_t i, int64_t limit) const noexcept {
    if constexpr (!kValidated) {
      if (reduce_block(sizes_ + i).bits >= kBlockSafeBits) return -1;
    }
    const int64_t room = limit - g.cost;
    int64_t partial = 0, fitted = 0, count = 0;
    for (int64_t j = i; j < i + kBlock; ++j) {
      partial += sizes_[j];
      const bool fits = partial <= room;  // sizes >= 0: the layers that fit form a prefix
      count += fits;
      fitted += fits ? sizes_[j] : 0;
    }
    g.cost += fitted;
    return count;
  }

  int64_t extended_cost(const Group& g, int64_t i) const noexcept {
    return saturating_add(g.cost, sizes_[i]);
  }

  static int64_t cost(const Group& g) noexcept { return g.cost; }

 private:
  const int64_t* sizes_;
  int64_t n_;
  const char* column_;
};

// `peak` model: weights of every layer in the group stay resident, while activations
// and buffers are live one layer at a time: sum(weights) + max(activations + buffers).
class PeakCost {
 public:
  struct Group {
    int64_t weights;  // sum over the group
    int64_t live;     // max over the group
  };

  PeakCost(const int64_t* weights, const int64_t* live, int64_t n,
           const char* live_column = "activations+buffers")
      : weights_(weights), live_(live), n_(n), live_column_(live_column) {}

  int64_t size() const noexcept { return n_; }

  const int64_t* weights() const noexcept { return weights_; }
  const int64_t* live() const noexcept { return live_; }

  // Asks for both columns kStreamAhead layers after layer i, if there are any.
  void prefetch_ahead(int64_t i) const noexcept {
    if (i + kStreamAhead >= n_) return;
    builtin::prefetch(weights_ + i + kStreamAhead);
    builtin::prefetch(live_ + i + kStreamAhead);
  }

  // Layers [from, n) as a model of their own (layer `from` becomes layer 0).
  PeakCost suffix(int64_t from) const noexcept {
    return PeakCost(weights_ + from, live_ + from, n_ - from, live_column_);
  }

  Group single(int64_t i, int64_t capacity) const {
    const int64_t w = weights_[i], l = live_[i];
    if (w < 0) throw negative_size("weights", i, w);
    if (l < 0) throw negative_size(live_column_, i, l);
    const int64_t c = checked_add(w, l, "weights + activations + buffers", i);
    if (c > capacity) throw layer_too_large(i, c, capacity);
    return {w, l};
  }

  Group start(int64_t i) const noexcept { return {weights_[i], live_[i]}; }

  bool try_extend(Group& g, int64_t i, int64_t limit) const noexcept {
    const int64_t w = weights_[i], l = live_[i];
    if ((w | l) < 0) return false;  // reported by single() on the caller's slow path
    const int64_t live = std::max(g.live, l);
    // room >= 0 because g.weights + g.live <= limit; the unsigned sum cannot wrap.
    const uint64_t room = static_cast<uint64_t>(limit - g.weights);
    if (static_cast<uint64_t>(w) + static_cast<uint64_t>(live) > room) return false;
    g.weights += w;
    g.live = live;
    return true;
  }

  template <bool kValidated = false>
  bool try_extend_block(Group& g, int64_t i, int64_t limit) const noexcept {
    const BlockReduce w = reduce_block(weights_ + i);
    int64_t live = g.live;
    uint64_t live_bits = 0;
    for (int64_t j = i; j < i + kBlock; ++j) {
      live = std::max(live, live_[j]);
      live_bits |= static_cast<uint64_t>(live_[j]);
    }
    if (w.bits >= kBlockSafeBits || live_bits >> 63) return false;
    if (w.sum + static_cast<uint64_t>(live) > static_cast<uint64_t>(limit - g.weights)) return false;
    g.weights += static_cast<int64_t>(w.sum);
    g.live = live;
    return true;
  }

  // The peak model walks a block that does not fit layer by layer.
  template <bool kValidated = false>
  int64_t extend_within_block(Group&, int64_t, int64_t) const noexcept {
    return -1;
  }

  int64_t extended_cost(const Group& g, int64_t i) const noexcept {
    return saturating_add(saturating_add(g.weights, weights_[i]), std::max(g.live, live_[i]));
  }

  static int64_t cost(const Group& g) noexcept { return g.weights + g.live; }

 private:
  const int64_t* weights_;
  const int64_t* live_;
  int64_t n_;
  const char* live_column_;
};

// Checks layer i of the three columns (b may be null) for negative entries.
inline void check_columns(const int64_t* w, const int64_t* a, const int64_t* b, int64_t i) {
  if (w[i] < 0) throw negative_size("weights", i, w[i]);
  if (a[i] < 0) throw negative_size("activations", i, a[i]);
  if (b && b[i] < 0) throw negative_size("buffers", i, b[i]);
}

// Per-layer working sets w + a + b from three columns (b may be null), checked.
inline void combine_sum(const int64_t* w, const int64_t* a, const int64_t* b, int64_t n,
                        int64_t* out) {
  const char* what = "weights + activations + buffers";
  for (int64_t i = 0; i < n; ++i) {
    check_columns(w, a, b, i);
    out[i] = checked_add(checked_add(w[i], a[i], what, i), b ? b[i] : 0, what, i);
  }
}

// Live bytes a + b of each layer (b may be null), checked; the weights column is
// validated in the same pass.
inline void combine_live(const int64_t* w, const int64_t* a, const int64_t* b, int64_t n,
                         int64_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    check_columns(w, a, b, i);
    out[i] = checked_add(a[i], b ? b[i] : 0, "activations + buffers", i);
  }
}

}  // namespace layerwise_fast
