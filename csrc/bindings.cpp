// Python binding of the partition core: conversion only, no algorithm code.
//
// Entry points take int64, C-contiguous arrays exactly (noconvert): the Python layer
// (layerwise_fast/partition.py) validates and converts once. Every call releases the
// GIL around the core; results are handed to numpy without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "layerwise_fast/core.hpp"
#include "layerwise_fast/json_ints.hpp"

namespace py = pybind11;
namespace lf = layerwise_fast;

namespace {

using Column = py::array_t<int64_t, py::array::c_style>;
using Times = py::array_t<double, py::array::c_style>;
using Result = std::tuple<py::array_t<int64_t>, py::array_t<int64_t>, int64_t, int64_t>;

// Moves the vector to the heap and lets numpy own it through a capsule.
py::array_t<int64_t> to_numpy(std::vector<int64_t>&& values) {
  auto* owned = new std::vector<int64_t>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<int64_t>*>(p); });
  return py::array_t<int64_t>(static_cast<py::ssize_t>(owned->size()), owned->data(), owner);
}

Result to_python(lf::Partition&& p) {
  const int64_t bottleneck = p.bottleneck, group = p.bottleneck_group;
  return Result{to_numpy(std::move(p.boundaries)), to_numpy(std::move(p.group_costs)), bottleneck, group};
}

int64_t length(const Column& c) {
  if (c.ndim() != 1) throw std::invalid_argument("size columns must be 1-D");
  return static_cast<int64_t>(c.shape(0));
}

void check_same_length(const Column& a, const Column& b) {
  if (length(a) != length(b)) throw std::invalid_argument("size columns differ in length");
}

lf::SumCost sum_model(const Column& sizes) { return lf::SumCost(sizes.data(), length(sizes)); }

lf::PeakCost peak_model(const Column& weights, const Column& live) {
  check_same_length(weights, live);
  return lf::PeakCost(weights.data(), live.data(), length(weights));
}

// Runs `algorithm` with the GIL released on the `sum` model of `sizes`, or on the
// `peak` model when `live` (activations + buffers per layer) is given, where `sizes`
// holds the weights.
template <class Algorithm>
Result run(const Column& sizes, const std::optional<Column>& live, Algorithm&& algorithm) {
  lf::Partition p;
  {
    py::gil_scoped_release release;
    p = live ? algorithm(peak_model(sizes, *live)) : algorithm(sum_model(sizes));
  }
  return to_python(std::move(p));
}

template <class Combine>
Column combine(const Column& weights, const Column& activations, const std::optional<Column>& buffers,
               Combine&& fn) {
  check_same_length(weights, activations);
  if (buffers) check_same_length(weights, *buffers);
  const int64_t n = length(weights);
  Column out(n);
  const int64_t* b = buffers ? buffers->data() : nullptr;
  int64_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    fn(weights.data(), activations.data(), b, n, dst);
  }
  return out;
}

// Raises the Python exception class `name` of layerwise_fast.errors built from `args`.
template <class... Args>
void raise_python(const char* name, Args... args) {
  py::object type = py::module_::import("layerwise_fast.errors").attr(name);
  py::object value = type(args...);
  PyErr_SetObject(type.ptr(), value.ptr());
}

void translate_infeasible(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const lf::layer_too_large& e) {
    raise_python("LayerTooLargeError", e.layer(), e.bytes(), e.capacity());
  } catch (const lf::too_few_groups& e) {
    raise_python("TooFewGroupsError", e.k(), e.capacity(), e.bottleneck(), e.min_groups());
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "Native partition core of layerwise_fast (private; use the layerwise_fast package).";
  py::register_exception_translator(&translate_infeasible);

  const auto sizes = py::arg("sizes").noconvert(), live = py::arg("live").noconvert();
  m.def("greedy", [](const Column& s, const std::optional<Column>& l, int64_t cap) {
    return run(s, l, [cap](const auto& c) { return lf::greedy(c, cap); });
  }, sizes, live, py::arg("capacity"));
  m.def("balanced", [](const Column& s, const std::optional<Column>& l, int64_t k, int64_t cap) {
    return run(s, l, [k, cap](const auto& c) { return lf::balanced(c, k, cap); });
  }, sizes, live, py::arg("k"), py::arg("capacity"));
  m.def("balanced_fewest", [](const Column& s, const std::optional<Column>& l, int64_t cap) {
    return run(s, l, [cap](const auto& c) { return lf::balanced_fewest(c, cap); });
  }, sizes, live, py::arg("capacity"));
  m.def("dp", [](const Column& s, const std::optional<Column>& l, int64_t cap) {
    return run(s, l, [cap](const auto& c) { return lf::dp(c, cap); });
  }, sizes, live, py::arg("capacity"));
  m.def("dp_stage_time", [](const Column& s, const std::optional<Column>& l, int64_t cap, const Times& layer_time,
                            const Times& cut_time) {
    const int64_t n = length(s);
    if (layer_time.ndim() != 1 || cut_time.ndim() != 1 || layer_time.shape(0) != n || cut_time.shape(0) != n) {
      throw std::invalid_argument("layer_time and cut_time need one entry per layer");
    }
    const lf::StageTime objective{layer_time.data(), cut_time.data()};
    return run(s, l, [cap, n, objective](const auto& c) {
      lf::check_times(objective.layer_time, n, "layer_time");
      lf::check_times(objective.cut_time, n, "cut_time");
      return lf::dp(c, cap, objective);
    });
  }, sizes, live, py::arg("capacity"), py::arg("layer_time").noconvert(), py::arg("cut_time").noconvert());

  m.def("combine_sum", [](const Column& w, const Column& a, const std::optional<Column>& b) {
    return combine(w, a, b, lf::combine_sum);
  }, py::arg("weights").noconvert(), py::arg("activations").noconvert(), py::arg("buffers").noconvert());
  m.def("combine_live", [](const Column& w, const Column& a, const std::optional<Column>& b) {
    return combine(w, a, b, lf::combine_live);
  }, py::arg("weights").noconvert(), py::arg("activations").noconvert(), py::arg("buffers").noconvert());

  m.def("json_int_list", [](const Column& values) {
    if (values.ndim() != 1) throw std::invalid_argument("values must be 1-D");
    std::string text;
    {
      py::gil_scoped_release release;
      text = lf::json_int_list(values.data(), static_cast<std::size_t>(values.shape(0)));
    }
    return py::str(text);
  }, py::arg("values").noconvert());

  m.attr("UNBOUNDED") = lf::kUnbounded;
}
