// cmo_cache: the store, cmo_cache_lookup and cmo_cache_window (CPU), and the counters' C entry.
#include "cmo_cache.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace dali_cmo {

using dali::CPUBackend;
using dali::make_string;

namespace {

std::mutex registry_mutex;
std::unordered_map<std::string, std::weak_ptr<ForegroundStore>> &Registry() {
  static std::unordered_map<std::string, std::weak_ptr<ForegroundStore>> stores;
  return stores;
}

/** Sample `i` of an integer input (int32 or int64) as int64 values. */
std::vector<int64_t> Integers(const dali::TensorList<CPUBackend> &input, int i) {
  int64_t n = input.tensor_shape(i).num_elements();
  if (input.type() == DALI_INT64) {
    const int64_t *v = input.tensor<int64_t>(i);
    return {v, v + n};
  }
  const int32_t *v = input.tensor<int32_t>(i);
  return {v, v + n};
}

void RequireIntegers(const dali::Workspace &ws, int input, const char *op, const char *what) {
  auto type = ws.Input<CPUBackend>(input).type();
  DALI_ENFORCE(type == DALI_INT64 || type == DALI_INT32, make_string(
      op, ": input ", input, " (", what, ") must be int64 or int32; got ", type));
}

}  // namespace

std::shared_ptr<ForegroundStore> ForegroundStore::Get(const std::string &name) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto &slot = Registry()[name];
  auto store = slot.lock();
  if (!store) {
    store = std::make_shared<ForegroundStore>();
    slot = store;
  }
  return store;
}

std::shared_ptr<ForegroundStore> ForegroundStore::Find(const std::string &name) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto found = Registry().find(name);
  return found == Registry().end() ? nullptr : found->second.lock();
}

void ForegroundStore::Configure(const std::string &admission_file, int64_t budget_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (configured_) {
    DALI_ENFORCE(budget_ == budget_bytes, make_string(
        "cmo_cache_lookup: cache already configured with budget ", budget_, " bytes, not ",
        budget_bytes));
    return;
  }
  std::ifstream file(admission_file, std::ios::binary);
  DALI_ENFORCE(file.good(), make_string("cmo_cache_lookup: cannot read admission_file ",
                                        admission_file));
  admitted_.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  budget_ = budget_bytes;
  configured_ = true;
}

CacheState ForegroundStore::Lookup(int64_t index, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (images_.count(index)) {
    stats_.hits++;
    return kCacheHit;
  }
  stats_.misses++;
  if (pending_.count(index)) return kCacheAdmit;  // another copy is on its way: store either
  bool admitted = index >= 0 && index < static_cast<int64_t>(admitted_.size()) &&
                  admitted_[index] && reserved_ + bytes <= budget_;
  if (!admitted) return kCacheMiss;
  reserved_ += bytes;
  pending_[index] = bytes;
  return kCacheAdmit;
}

std::shared_ptr<const CachedImage> ForegroundStore::Image(int64_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = images_.find(index);
  return found == images_.end() ? nullptr : found->second;
}

std::shared_ptr<const CachedImage> ForegroundStore::Store(int64_t index, CachedImage image) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = images_.find(index);
  if (found != images_.end()) return found->second;
  auto bytes = static_cast<int64_t>(image.pixels.size());
  auto held = std::make_shared<const CachedImage>(std::move(image));
  auto pending = pending_.find(index);
  if (pending != pending_.end()) {  // settle the reservation at the image's real size
    reserved_ += bytes - pending->second;
    pending_.erase(pending);
  } else if (reserved_ + bytes <= budget_) {  // stored without a lookup (a fill)
    reserved_ += bytes;
  } else {
    return held;  // over the budget: its window is cut, the image is not held
  }
  images_.emplace(index, held);
  stats_.stored++;
  stats_.bytes += bytes;
  return held;
}

CacheStats ForegroundStore::Stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

CmoCacheLookup::CmoCacheLookup(const dali::OpSpec &spec)
    : StatelessOperator(spec),
      store_(ForegroundStore::Get(spec.GetArgument<std::string>("cache"))) {
  int64_t budget = spec.GetArgument<int64_t>("budget_bytes");
  DALI_ENFORCE(budget >= 0, make_string("cmo_cache_lookup: budget_bytes must be >= 0; got ",
                                        budget));
  store_->Configure(spec.GetArgument<std::string>("admission_file"), budget);
}

bool CmoCacheLookup::SetupImpl(std::vector<dali::OutputDesc> &output_desc,
                               const dali::Workspace &ws) {
  RequireIntegers(ws, 0, "cmo_cache_lookup", "dataset index");
  RequireIntegers(ws, 1, "cmo_cache_lookup", "image shape");
  int n = ws.GetInputBatchSize(0);
  output_desc.assign(1, {dali::uniform_list_shape(n, dali::TensorShape<0>{}), DALI_INT32});
  return true;
}

void CmoCacheLookup::RunImpl(dali::Workspace &ws) {
  const auto &index = ws.Input<CPUBackend>(0), &shape = ws.Input<CPUBackend>(1);
  auto &state = ws.Output<CPUBackend>(0);
  for (int i = 0; i < index.num_samples(); i++) {
    auto hw = Integers(shape, i);
    DALI_ENFORCE(hw.size() >= 2, "cmo_cache_lookup: the image shape must be (H, W[, C])");
    // decoded as RGB: three bytes per pixel, whatever the file's channels
    state.mutable_tensor<int32_t>(i)[0] = store_->Lookup(Integers(index, i).at(0),
                                                         hw[0] * hw[1] * 3);
  }
}

CmoCacheWindow::CmoCacheWindow(const dali::OpSpec &spec)
    : StatelessOperator(spec),
      store_(ForegroundStore::Get(spec.GetArgument<std::string>("cache"))) {}

bool CmoCacheWindow::SetupImpl(std::vector<dali::OutputDesc> &output_desc,
                               const dali::Workspace &ws) {
  RequireIntegers(ws, 0, "cmo_cache_window", "dataset index");
  const auto &index = ws.Input<CPUBackend>(0);
  const auto &start = ws.Input<CPUBackend>(1), &extent = ws.Input<CPUBackend>(2);
  DALI_ENFORCE(start.type() == DALI_FLOAT && extent.type() == DALI_FLOAT,
               "cmo_cache_window: start and extent must be float32 (from cmo_region)");
  bool storing = ws.NumInput() > 3;
  if (storing)
    DALI_ENFORCE(ws.Input<CPUBackend>(3).type() == DALI_UINT8 &&
                 ws.Input<CPUBackend>(3).sample_dim() == 3,
                 "cmo_cache_window: the image to store must be uint8 HWC");
  int n = index.num_samples();
  windows_.resize(n);
  dali::TensorListShape<3> shape(n);
  for (int i = 0; i < n; i++) {
    int64_t key = Integers(index, i).at(0);
    auto &win = windows_[i];
    if (storing) {
      const auto &decoded = ws.Input<CPUBackend>(3);
      auto s = decoded.tensor_shape(i);
      CachedImage image;
      image.height = s[0], image.width = s[1], image.channels = s[2];
      const uint8_t *pixels = decoded.tensor<uint8_t>(i);
      image.pixels.assign(pixels, pixels + s.num_elements());
      win.image = store_->Store(key, std::move(image));
    } else {
      win.image = store_->Image(key);
      DALI_ENFORCE(win.image != nullptr, make_string(
          "cmo_cache_window: dataset index ", key, " is not in the cache (ask cmo_cache_lookup "
          "first; only its hits may be read without an image to store)"));
    }
    // decoders.image_slice's rounding: anchor and end rounded to the nearest pixel
    const float *a = start.tensor<float>(i), *e = extent.tensor<float>(i);
    int64_t y0 = std::llround(static_cast<double>(a[0]));
    int64_t x0 = std::llround(static_cast<double>(a[1]));
    int64_t y1 = std::llround(static_cast<double>(a[0]) + static_cast<double>(e[0]));
    int64_t x1 = std::llround(static_cast<double>(a[1]) + static_cast<double>(e[1]));
    DALI_ENFORCE(0 <= y0 && y0 <= y1 && y1 <= win.image->height && 0 <= x0 && x0 <= x1 &&
                 x1 <= win.image->width, make_string(
        "cmo_cache_window: window [", y0, ", ", y1, ") x [", x0, ", ", x1, ") lies outside the ",
        win.image->height, " x ", win.image->width, " image of dataset index ", key));
    win.y = y0, win.x = x0, win.h = y1 - y0, win.w = x1 - x0;
    shape.set_tensor_shape(i, dali::TensorShape<3>{win.h, win.w, win.image->channels});
  }
  output_desc.assign(1, {shape, DALI_UINT8});
  return true;
}

void CmoCacheWindow::RunImpl(dali::Workspace &ws) {
  auto &output = ws.Output<CPUBackend>(0);
  output.SetLayout("HWC");
  auto &pool = ws.GetThreadPool();
  for (int i = 0; i < static_cast<int>(windows_.size()); i++) {
    const auto &win = windows_[i];
    uint8_t *out = output.mutable_tensor<uint8_t>(i);
    pool.AddWork([&win, out](int) {
      const auto &image = *win.image;
      int64_t row = win.w * image.channels;
      for (int64_t y = 0; y < win.h; y++)
        std::memcpy(out + y * row,
                    image.pixels.data() + ((win.y + y) * image.width + win.x) * image.channels,
                    row);
    }, win.h * win.w);
  }
  pool.RunAll();
}

}  // namespace dali_cmo

/** Counters of the cache named `name` into `out` (hits, misses, images stored, bytes held);
 *  returns 0 when no pipeline holds such a cache. For Python (ctypes), which DALI's plugin
 *  interface gives no other way to read an operator's counters. */
extern "C" int dali_cmo_cache_stats(const char *name, int64_t *out) {
  auto store = dali_cmo::ForegroundStore::Find(name);
  if (!store) return 0;
  auto s = store->Stats();
  out[0] = s.hits, out[1] = s.misses, out[2] = s.stored, out[3] = s.bytes;
  return 1;
}

DALI_REGISTER_OPERATOR(CmoCacheLookup, ::dali_cmo::CmoCacheLookup, ::dali::CPU);
DALI_REGISTER_OPERATOR(CmoCacheWindow, ::dali_cmo::CmoCacheWindow, ::dali::CPU);

DALI_SCHEMA(CmoCacheLookup)
    .DocStr(R"(Whether a pasted foreground's decoded image is held by the cache ``cache``.

Per sample: ``1`` (a hit: ``cmo_cache_window`` cuts its window from the held image), ``2`` (an
admitted miss: decode it whole and give it to ``cmo_cache_window`` to store) or ``0`` (a miss:
decode as without a cache). A miss is admitted when its dataset index is marked in
``admission_file`` and its decoded bytes (``H * W * 3``) fit in what is left of
``budget_bytes``; stored images are never evicted. The store lives while a pipeline holds an
operator naming it and is not checkpointed: a restored pipeline fills it again.)")
    .NumInput(2)
    .InputDox(0, "index", "TensorList of int64 scalars", "The sample's dataset index.")
    .InputDox(1, "shape", "1D TensorList of int64", "The image's shape (``peek_image_shape``).")
    .NumOutput(1)
    .AddArg("cache", "Name of the store, shared with ``cmo_cache_window``.", DALI_STRING)
    .AddArg("admission_file", R"(One byte per dataset index, in order: non-zero where the image
may be stored.)", DALI_STRING)
    .AddArg("budget_bytes", "Most decoded bytes the store holds.", DALI_INT64);

DALI_SCHEMA(CmoCacheWindow)
    .DocStr(R"(The window ``[round(start), round(start + extent))`` (rows, columns) of a
foreground held by the cache ``cache``, HWC uint8: what ``decoders.image_slice(encoded, start,
extent, normalized_anchor=False, normalized_shape=False)`` decodes, cut from the whole decoded
image. With a fourth input (the whole decoded image) the image is stored first.)")
    .NumInput(3, 4)
    .InputDox(0, "index", "TensorList of int64 scalars", "The sample's dataset index.")
    .InputDox(1, "start", "1D TensorList of float", "Window start ``(y, x)`` (``cmo_region``).")
    .InputDox(2, "extent", "1D TensorList of float", "Window extent ``(h, w)`` (``cmo_region``).")
    .InputDox(3, "image", "3D TensorList of uint8", "The whole decoded image, HWC, to store.")
    .NumOutput(1)
    .AddArg("cache", "Name of the store, shared with ``cmo_cache_lookup``.", DALI_STRING);
