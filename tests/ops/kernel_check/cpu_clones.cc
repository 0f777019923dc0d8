// Every byte of many random CPU pastes (PasteSample: all dtypes, layouts, flips, boxes, with and
// without a resampled foreground), folded into one FNV-1a hash and printed. Built once per
// instruction set by tests/ops/test_cpu_clones.py: the operator's AVX2 clone and its generic
// clone must print the same hash.
#include <cstdio>
#include <random>
#include <vector>

#include "paste_pixel.h"

using dali_cmo::Box;
using dali_cmo::Half;
using dali_cmo::PasteSampleDesc;

namespace {

uint64_t hash = 1469598103934665603ull;

void Mix(const void *data, size_t n) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  for (size_t i = 0; i < n; i++) {
    hash ^= bytes[i];
    hash *= 1099511628211ull;
  }
}

template <typename Out, bool kCHW, int C>
void RandomPaste(std::mt19937 &rng) {
  const int H = 8 + rng() % 90, W = 8 + rng() % 90;
  const int y1 = rng() % H, x1 = rng() % W;
  const int y2 = y1 + 1 + rng() % (H - y1), x2 = x1 + 1 + rng() % (W - x1);
  const bool resample = rng() % 2;
  const int fg_h = resample ? 1 + rng() % 200 : y2 - y1, fg_w = resample ? 1 + rng() % 200 : x2 - x1;
  std::vector<uint8_t> background(H * W * C), foreground(fg_h * fg_w * C);
  for (auto &v : background) v = rng();
  for (auto &v : foreground) v = rng();
  std::vector<Out> out(H * W * C);
  float lam;
  int32_t box[4];
  const float mean[3] = {float(rng() % 255), 116.5f, 103.25f};
  const float stddev[3] = {58.395f, 57.12f, 1.0f + rng() % 90};
  dali_cmo::TapTable taps;
  PasteSampleDesc d{};
  d.background = background.data();
  d.out = out.data();
  d.lam_out = &lam;
  d.box_out = box;
  d.H = H;
  d.W = W;
  d.C = C;
  d.box = Box{y1, x1, y2, x2};
  d.lam = 0.3f;
  d.mirror_background = rng() % 2;
  d.mirror_foreground = rng() % 2;
  dali_cmo::SetNormalization(d, mean, stddev);
  dali_cmo::SetForeground(d, foreground.data(), fg_h, fg_w, resample, taps);
  dali_cmo::BindTaps(&d, 1, taps.starts.data(), taps.weights.data());
  dali_cmo::PasteSample<Out, kCHW, C>(d);
  Mix(out.data(), out.size() * sizeof(Out));
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  for (int i = 0; i < 500; i++) {
    RandomPaste<float, true, 3>(rng);
    RandomPaste<float, false, 3>(rng);
    RandomPaste<Half, true, 3>(rng);
    RandomPaste<Half, false, 3>(rng);
    RandomPaste<uint8_t, true, 3>(rng);
    RandomPaste<uint8_t, false, 1>(rng);
  }
  std::printf("%016llx\n", static_cast<unsigned long long>(hash));
  return 0;
}
