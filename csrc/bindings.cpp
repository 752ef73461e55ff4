// Python binding of the partition core: conversion only, no algorithm code.
//
// Entry points take int64, C-contiguous arrays exactly (noconvert): the Python layer
// (layerwise_fast/partition.py) validates and converts once. Every call releases the
// GIL around the core; results are handed to numpy without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "layerwise_fast/core.hpp"
#include "layerwise_fast/json_writer.hpp"
#include "layerwise_fast/json_reader.hpp"

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

// The ordered partitioners: (outcome, the partition as `run` returns it or None, device,
// layer); see ordered.hpp.
template <class Algorithm>
py::tuple run_ordered(const Column& sizes, const std::optional<Column>& live, const std::vector<int64_t>& capacities,
                      Algorithm&& algorithm) {
  lf::OrderedPartition p;
  {
    py::gil_scoped_release release;
    p = live ? algorithm(peak_model(sizes, *live), capacities) : algorithm(sum_model(sizes), capacities);
  }
  const bool fits = p.outcome == lf::OrderedOutcome::fits;
  py::object partition = fits ? py::cast(to_python(std::move(p.partition))) : py::none();
  return py::make_tuple(static_cast<int>(p.outcome), partition, p.device, p.layer);
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

// For a value that failed to convert (null): clears Python's error and returns false.
bool converted(PyObject* value) {
  if (value) return true;
  PyErr_Clear();
  return false;
}

// The values of one JSON array as they arrive: an int64 array while every value is an
// int that fits, a list from the first other value on, [] when there are none.
class ArrayBuilder {
 public:
  bool integer(int64_t v) {
    if (list_) return append_long(v);
    ints_.push_back(v);
    return true;
  }
  bool other(const py::object& value) {
    if (!list_) {  // the first value that is not an int: the ints become a list
      list_ = py::list();
      for (const int64_t v : ints_) {
        if (!append_long(v)) return false;
      }
      ints_ = {};
    }
    return PyList_Append(list_.ptr(), value.ptr()) == 0 || converted(nullptr);
  }
  py::object take() {
    if (list_) return std::move(list_);
    return ints_.empty() ? py::object(py::list()) : py::object(to_numpy(std::move(ints_)));
  }

 private:
  bool append_long(int64_t v) {
    PyObject* item = PyLong_FromLongLong(v);
    return converted(item) && other(py::reinterpret_steal<py::object>(item));
  }

  std::vector<int64_t> ints_;
  py::object list_;  // null while every value is an int64
};

// Builds the Python value of a JSON text for JsonReader, as json.loads would, except
// that an array of integers that all fit int64 becomes a numpy int64 array (the ints
// never become Python objects). Declines (returns false) where json.loads would give
// something else or fail (bytes that are not UTF-8, unpaired surrogate escapes,
// integers too long for Python to convert) and where the reader refuses what json.loads
// takes (a key repeated in one object).
class PythonJsonBuilder {
 public:
  py::object result() { return std::move(root_); }

  bool begin_object() {
    stack_.emplace_back();
    stack_.back().container = py::dict();
    return true;
  }
  bool key(std::string_view text, bool escaped) {
    py::object key;
    if (!escaped) {
      auto found = keys_.find(text);
      if (found != keys_.end()) key = found->second;
    }
    if (!key) {
      key = decode(text, escaped);
      if (!key) return false;
      if (!escaped) keys_.emplace(text, key);
    }
    const int seen = PyDict_Contains(stack_.back().container.ptr(), key.ptr());
    if (seen != 0) return seen < 0 ? converted(nullptr) : false;
    stack_.back().key = std::move(key);
    return true;
  }
  bool end_object() { return close(); }

  bool begin_array() {
    stack_.emplace_back();
    stack_.back().is_array = true;
    return true;
  }
  bool end_array() {
    stack_.back().container = stack_.back().items.take();
    return close();
  }

  bool string(std::string_view text, bool escaped) {
    if (text == last_text_ && !escaped && last_string_) return add(last_string_);
    py::object value = decode(text, escaped);
    if (!value) return false;
    if (!escaped) {
      last_text_ = text;
      last_string_ = value;
    }
    return add(std::move(value));
  }
  bool integer(int64_t value) {
    if (!stack_.empty() && stack_.back().is_array) return stack_.back().items.integer(value);
    PyObject* item = PyLong_FromLongLong(value);
    return converted(item) && add(py::reinterpret_steal<py::object>(item));
  }
  bool number(std::string_view text, bool is_integer) {
    const std::string digits(text);
    if (is_integer) {  // beyond int64; fails past Python's digit limit
      PyObject* value = PyLong_FromString(digits.c_str(), nullptr, 10);
      return converted(value) && add(py::reinterpret_steal<py::object>(value));
    }
    const double value = PyOS_string_to_double(digits.c_str(), nullptr, nullptr);  // float()'s parser
    if (value == -1.0 && PyErr_Occurred()) return converted(nullptr);
    return add(py::float_(value));
  }
  bool boolean(bool value) { return add(py::bool_(value)); }
  bool null() { return add(py::none()); }
  // A value built elsewhere, placed where the next value goes.
  bool value(py::object built) { return add(std::move(built)); }

  // The Python str of a JSON string's raw text, or a null object where it has none.
  py::object decode(std::string_view text, bool escaped) {
    if (escaped) {
      if (!lf::json_unescape(text, scratch_)) return py::object();
      text = scratch_;
    }
    PyObject* value = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "strict");
    return converted(value) ? py::reinterpret_steal<py::object>(value) : py::object();
  }

 private:
  struct Frame {
    py::object container;   // an object's dict; an array's value once it ends
    bool is_array = false;
    ArrayBuilder items;     // an array's values
    py::object key;         // an object's pending key
  };

  bool close() {
    py::object done = std::move(stack_.back().container);
    stack_.pop_back();
    return add(std::move(done));
  }

  bool add(py::object value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return true;
    }
    Frame& top = stack_.back();
    if (top.is_array) return top.items.other(value);
    return PyDict_SetItem(top.container.ptr(), top.key.ptr(), value.ptr()) == 0 || converted(nullptr);
  }

  std::vector<Frame> stack_;
  py::object root_;
  std::string scratch_;
  std::unordered_map<std::string_view, py::object> keys_;  // object keys seen, by raw text
  std::string_view last_text_;                              // the last plain string read
  py::object last_string_;
};

constexpr int kJsonMaxDepth = 500;

// PythonJsonBuilder, except for one member of the top-level object: an array of row
// objects, all with the same keys and only scalar values, becomes a dict of columns
// (field -> int64 array or list, in the first row's key order) instead of a list of
// dicts, so that 10^6 rows never become 10^6 Python dicts. Declines (returns false) on
// any other shape of that member: the caller then reads the text as json.loads would.
class RowColumnsBuilder {
 public:
  explicit RowColumnsBuilder(std::string_view rows_key) : rows_key_(rows_key) {}

  py::object result() { return document_.result(); }
  int64_t rows() const noexcept { return rows_; }

  bool begin_object() {
    ++depth_;
    if (state_ == State::kRows) return depth_ == 3 && begin_row();
    return document_.begin_object();
  }
  bool key(std::string_view text, bool escaped) {
    if (state_ == State::kRows) return row_key(text, escaped);
    const bool is_rows_key = depth_ == 1 && unescaped_equals(text, escaped, rows_key_);
    if (is_rows_key && state_ == State::kAfter) return false;  // a second one would replace the columns
    pending_ = is_rows_key;
    return document_.key(text, escaped);
  }
  // After the first row, each row's next key is most likely the first row's next one.
  std::string_view expected_key() const noexcept {
    if (state_ != State::kRows || rows_ < 2 || fields_in_row_ >= quoted_keys_.size()) return {};
    return quoted_keys_[fields_in_row_];
  }
  bool expected_key_read() {
    field_ = fields_in_row_;
    return mark_seen();
  }
  bool end_object() {
    --depth_;
    if (state_ == State::kRows) return fields_in_row_ == columns_.size();
    return document_.end_object();
  }
  bool begin_array() {
    ++depth_;
    if (state_ == State::kRows) return false;  // a nested value in a row
    if (depth_ == 2 && pending_ && state_ == State::kBefore) {
      state_ = State::kRows;
      return true;
    }
    return document_.begin_array();
  }
  bool end_array() {
    --depth_;
    if (state_ != State::kRows) return document_.end_array();
    state_ = State::kAfter;
    if (rows_ == 0) return document_.value(py::list());
    py::dict columns;
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (PyDict_SetItem(columns.ptr(), names_[c].ptr(), columns_[c].values.take().ptr()) != 0) {
        return converted(nullptr);
      }
    }
    return document_.value(std::move(columns));
  }

  bool string(std::string_view text, bool escaped) {
    if (state_ != State::kRows) return document_.string(text, escaped);
    return in_row() && column_string(columns_[field_], text, escaped);
  }
  bool integer(int64_t v) {
    if (state_ != State::kRows) return document_.integer(v);
    return in_row() && columns_[field_].values.integer(v);
  }
  bool number(std::string_view text, bool is_integer) {
    if (state_ != State::kRows) return document_.number(text, is_integer);
    return false;  // an integer beyond int64 or a fraction: rare, and checked in full
  }
  bool boolean(bool v) {
    if (state_ != State::kRows) return document_.boolean(v);
    return in_row() && columns_[field_].values.other(py::bool_(v));
  }
  bool null() {
    if (state_ != State::kRows) return document_.null();
    return in_row() && columns_[field_].values.other(py::none());
  }

 private:
  enum class State { kBefore, kRows, kAfter };

  // One field's values across the rows, and the last plain string read for it, reused
  // for equal text (the same kind or dtype in row after row).
  struct Column {
    ArrayBuilder values;
    std::string_view last_text;
    py::object last_string;
  };

  bool column_string(Column& column, std::string_view text, bool escaped) {
    if (escaped) {
      const py::object value = document_.decode(text, true);
      return value && column.values.other(value);
    }
    if (!column.last_string || text != column.last_text) {
      py::object value = document_.decode(text, false);
      if (!value) return false;
      column.last_text = text;
      column.last_string = std::move(value);
    }
    return column.values.other(column.last_string);
  }

  bool begin_row() {
    ++rows_;
    fields_in_row_ = 0;
    return true;
  }

  // A key of the current row: a new column in the first row, a known one after it,
  // never twice in one row. Keys compare unescaped.
  bool row_key(std::string_view text, bool escaped) {
    if (escaped) {
      if (!lf::json_unescape(text, key_scratch_)) return false;
      text = key_scratch_;
    }
    if (!find_field(text)) {
      if (rows_ != 1) return false;
      if (escaped) text = unescaped_keys_.emplace_back(text);  // the map's key must outlive the scratch
      py::object name = document_.decode(text, false);
      if (!name) return false;
      field_ = columns_.size();
      index_.emplace(text, field_);
      key_text_.push_back(text);
      quoted_keys_.push_back(escaped ? std::string() : '"' + std::string(text) + '"');
      names_.push_back(std::move(name));
      columns_.emplace_back();
      seen_in_row_.push_back(0);
    }
    return mark_seen();
  }

  // Counts field_ as held by the current row; false if it already was.
  bool mark_seen() {
    if (seen_in_row_[field_] == rows_) return false;
    seen_in_row_[field_] = rows_;
    ++fields_in_row_;
    return true;
  }

  // Whether a key's raw text, unescaped, is `expected` (false where it cannot be read).
  bool unescaped_equals(std::string_view text, bool escaped, std::string_view expected) {
    if (!escaped) return text == expected;
    return lf::json_unescape(text, key_scratch_) && key_scratch_ == expected;
  }

  // Sets field_ to the column of key `text`, if there is one. Rows mostly list their
  // keys in the first row's order, so that column is tried before the hash map.
  bool find_field(std::string_view text) {
    if (fields_in_row_ < key_text_.size() && key_text_[fields_in_row_] == text) {
      field_ = fields_in_row_;
      return true;
    }
    const auto found = index_.find(text);
    if (found == index_.end()) return false;
    field_ = found->second;
    return true;
  }

  // A scalar is a row's value only inside a row object (depth 3), never an array item.
  bool in_row() const noexcept { return depth_ == 3; }

  PythonJsonBuilder document_;
  std::string_view rows_key_;
  State state_ = State::kBefore;
  bool pending_ = false;  // the last top-level key was rows_key
  int depth_ = 0;
  int64_t rows_ = 0;
  size_t field_ = 0, fields_in_row_ = 0;
  std::unordered_map<std::string_view, size_t> index_;  // by unescaped text
  std::string key_scratch_;
  std::deque<std::string> unescaped_keys_;  // stable storage for the escaped keys in index_
  std::vector<std::string_view> key_text_;  // [column]: its key, unescaped
  std::vector<std::string> quoted_keys_;    // [column]: its key's raw text in quotes ("" if escaped)
  std::vector<py::object> names_;
  std::vector<Column> columns_;
  std::vector<int64_t> seen_in_row_;  // the last row (1-based) that held each field
};

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
  m.def("ordered_fit", [](const Column& s, const std::optional<Column>& l, const std::vector<int64_t>& caps) {
    return run_ordered(s, l, caps, [](const auto& c, const auto& d) { return lf::ordered_fit(c, d); });
  }, sizes, live, py::arg("capacities"));
  m.def("ordered_balanced", [](const Column& s, const std::optional<Column>& l, const std::vector<int64_t>& caps) {
    return run_ordered(s, l, caps, [](const auto& c, const auto& d) { return lf::ordered_balanced(c, d); });
  }, sizes, live, py::arg("capacities"));
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

  m.def("stage_times", [](const Times& layer_time, const Times& cut_time, const Column& boundaries) {
    const auto n = layer_time.ndim() == 1 ? layer_time.shape(0) : -1;
    if (n < 1 || cut_time.ndim() != 1 || cut_time.shape(0) != n || boundaries.ndim() != 1) {
      throw std::invalid_argument("stage_times needs one layer_time and one cut_time per layer and 1-D boundaries");
    }
    const int64_t* cuts = boundaries.data();
    const auto count = boundaries.shape(0);
    const auto rising = [&](py::ssize_t g) { return g == 0 ? cuts[0] == 0 : cuts[g] > cuts[g - 1]; };
    bool valid = count >= 2 && cuts[count - 1] == n;
    for (py::ssize_t g = 0; valid && g < count; ++g) valid = rising(g);
    if (!valid) throw std::invalid_argument("boundaries must rise from 0 to the layer count");
    std::vector<double> times;
    {
      py::gil_scoped_release release;
      times = lf::stage_times(lf::StageTime{layer_time.data(), cut_time.data()},
                              std::vector<int64_t>(cuts, cuts + count));
    }
    return py::array_t<double>(static_cast<py::ssize_t>(times.size()), times.data());
  }, py::arg("layer_time").noconvert(), py::arg("cut_time").noconvert(), py::arg("boundaries").noconvert());

  m.def("combine_sum", [](const Column& w, const Column& a, const std::optional<Column>& b) {
    return combine(w, a, b, lf::combine_sum);
  }, py::arg("weights").noconvert(), py::arg("activations").noconvert(), py::arg("buffers").noconvert());
  m.def("combine_live", [](const Column& w, const Column& a, const std::optional<Column>& b) {
    return combine(w, a, b, lf::combine_live);
  }, py::arg("weights").noconvert(), py::arg("activations").noconvert(), py::arg("buffers").noconvert());

  m.def("json_int_list", [](const Column& values) {
    if (values.ndim() != 1) throw std::invalid_argument("values must be 1-D");
    const auto n = static_cast<std::size_t>(values.shape(0));
    const std::size_t size = lf::json_int_list_size(values.data(), n);
    PyObject* text = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));  // filled in place
    if (!text) throw py::error_already_set();
    lf::json_write_int_list(PyBytes_AS_STRING(text), values.data(), n);
    return py::reinterpret_steal<py::bytes>(text);
  }, py::arg("values").noconvert());

  m.def("json_str_list", [](const py::list& values) {
    std::string text;
    text.push_back('[');
    for (Py_ssize_t i = 0, n = PyList_GET_SIZE(values.ptr()); i < n; ++i) {
      PyObject* item = PyList_GET_ITEM(values.ptr(), i);
      if (!PyUnicode_CheckExact(item)) throw py::type_error("values must all be str");
      Py_ssize_t size;
      const char* utf8 = PyUnicode_AsUTF8AndSize(item, &size);  // fails on lone surrogates
      if (!utf8) throw py::error_already_set();
      if (i != 0) text.push_back(',');
      lf::json_append_string(text, std::string_view(utf8, static_cast<size_t>(size)));
    }
    text.push_back(']');
    return py::bytes(text);
  }, py::arg("values"));

  m.def("json_loads", [](const py::bytes& data) {
    char* text;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(data.ptr(), &text, &size) != 0) throw py::error_already_set();
    PythonJsonBuilder builder;
    lf::JsonReader<PythonJsonBuilder> reader(std::string_view(text, static_cast<size_t>(size)), builder, kJsonMaxDepth);
    if (!reader.read()) throw py::value_error("the fast JSON reader declined this text");
    return builder.result();
  }, py::arg("data"));

  m.def("json_loads_row_columns", [](const py::bytes& data, const std::string& rows_key) {
    char* text;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(data.ptr(), &text, &size) != 0) throw py::error_already_set();
    RowColumnsBuilder builder(rows_key);
    lf::JsonReader<RowColumnsBuilder> reader(std::string_view(text, static_cast<size_t>(size)), builder, kJsonMaxDepth);
    if (!reader.read()) throw py::value_error("the fast JSON reader declined this text");
    return py::make_tuple(builder.result(), builder.rows());
  }, py::arg("data"), py::arg("rows_key"));

  // The index of the first item of a list or tuple whose type is exactly one of
  // `types`, or -1: one pass over the item pointers, no Python call per item.
  m.def("first_of_type", [](const py::handle& values, const py::tuple& types) -> Py_ssize_t {
    if (!PyList_Check(values.ptr()) && !PyTuple_Check(values.ptr())) {
      throw py::type_error("values must be a list or a tuple");
    }
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(values.ptr());
    PyObject** items = PySequence_Fast_ITEMS(values.ptr());
    for (Py_ssize_t i = 0; i < n; ++i) {
      const PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(items[i]));
      for (const py::handle wanted : types) {
        if (type == wanted.ptr()) return i;
      }
    }
    return -1;
  }, py::arg("values"), py::arg("types"));

  m.attr("UNBOUNDED") = lf::kUnbounded;
}
