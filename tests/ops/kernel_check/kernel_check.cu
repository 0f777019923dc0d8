// Standalone check of the cmo_paste CUDA kernel: nvcc only, no DALI, no Python packages.
//
// Builds batches of random and edge cases (1x1 images, empty and full boxes, box-sized
// foregrounds with mirrors, foregrounds of any size resampled into their boxes, C = 1 and 3,
// mixed sizes, a 4K image past the block cap, a batch of 300, a batch of 70,000 past the grid's
// 65,535 samples, the rounding tables of the ImageNet, CIFAR and tie-making constants), runs
// them through
// the real kernel (LaunchPaste, paste_kernel.cuh) and compares every output byte with the CPU
// operator's code (PasteSample, paste_pixel.h). Without a GPU it runs the kernel's body over the
// simulated grid instead (emulate_grid.h), so CI checks the same index arithmetic on a CPU.
//
//   kernel_check [--random N] [--seed S] [--json PATH] [--require-gpu] [--no-timing] [--no-large]
//
// --no-large leaves out the 4K images and the large batches (for the compute-sanitizer rerun).
//
// On a mismatch it says where: case, sample, (y, x, channel), inside or outside the box, the
// expected and the actual value and their distance in ulps. Exit status: 0 all equal, 1 a
// mismatch or a CUDA error, 2 bad arguments, 3 no GPU with --require-gpu.
// tests/ops/kernel_check/run_kernel_check.py compiles and runs it (under compute-sanitizer
// when present).
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "emulate_grid.h"
#include "paste_kernel.cuh"

namespace {

using dali_cmo::Box;
using dali_cmo::Half;
using dali_cmo::PasteSampleDesc;

#define CHECK_CUDA(call)                                                                      \
  do {                                                                                        \
    cudaError_t err_ = (call);                                                                \
    if (err_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__,  \
                   __LINE__, cudaGetErrorString(err_));                                       \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

enum DType { kU8 = 0, kF32 = 1, kF16 = 2 };
const char *const kDTypeNames[] = {"uint8", "float32", "float16"};
int DTypeSize(DType t) { return t == kU8 ? 1 : t == kF32 ? 4 : 2; }

// The training pipelines' constants (dali_cmo/constants.py), float32 as DALI passes them.
const float kImageNetMean[3] = {float(0.485 * 255), float(0.456 * 255), float(0.406 * 255)};
const float kImageNetStd[3] = {float(0.229 * 255), float(0.224 * 255), float(0.225 * 255)};
const float kCifarMean[3] = {float(0.4914 * 255), float(0.4822 * 255), float(0.4465 * 255)};
const float kCifarStd[3] = {float(0.2023 * 255), float(0.1994 * 255), float(0.2010 * 255)};

struct SampleSpec {
  int H = 1, W = 1, C = 3;
  Box box;
  bool region = false, mirror_b = false, mirror_f = false;
  bool resample = false;  // the foreground is fg_h x fg_w, resampled into the box
  int fg_h = 0, fg_w = 0;
  float mean[3] = {0, 0, 0}, stddev[3] = {1, 1, 1};
};

/** The foreground's (height, width): resampled region, box-sized region or full size. */
std::pair<int, int> FgShape(const SampleSpec &s) {
  if (s.resample)
    return {s.fg_h, s.fg_w};
  if (s.region)
    return {s.box.y2 - s.box.y1, s.box.x2 - s.box.x1};
  return {s.H, s.W};
}

struct Case {
  std::string name;
  DType dtype = kU8;
  bool chw = false;
  bool ramp = false;  // inputs hold 0..255 ramps (the rounding tables) instead of random bytes
  std::vector<SampleSpec> samples;
};

/** One case's host data: inputs and outputs packed back to back, as in a DALI batch. */
struct Batch {
  std::vector<uint8_t> bg, fg;
  std::vector<size_t> bg_off, fg_off, out_off;
  size_t out_bytes = 0;
};

size_t FgValues(const SampleSpec &s) {
  auto [h, w] = FgShape(s);
  return size_t(h) * w * s.C;
}

Batch MakeBatch(const Case &c, std::mt19937 &rng) {
  Batch b;
  size_t bg = 0, fg = 0, out = 0;
  for (const auto &s : c.samples) {
    b.bg_off.push_back(bg);
    b.fg_off.push_back(fg);
    b.out_off.push_back(out);
    bg += size_t(s.H) * s.W * s.C;
    fg += FgValues(s);
    out += size_t(s.H) * s.W * s.C * DTypeSize(c.dtype);
  }
  b.bg.resize(bg + 1);  // +1: a zero-sized batch still has a valid pointer
  b.fg.resize(fg + 1);
  b.out_bytes = out;
  auto fill = [&](std::vector<uint8_t> &values, size_t count, bool reversed) {
    for (size_t i = 0; i < count; i += 4) {  // four random bytes per draw
      uint32_t word = rng();
      for (size_t k = i; k < i + 4 && k < count; k++, word >>= 8)
        values[k] = c.ramp ? uint8_t(reversed ? 255 - k / 3 % 256 : k / 3 % 256) : uint8_t(word);
    }
  };
  fill(b.bg, bg, false);
  fill(b.fg, fg, true);
  return b;
}

/** Descriptors for the case with the given base pointers (host or device), pointing at `taps`
 *  in host memory (DeviceTaps moves them). */
std::vector<PasteSampleDesc> MakeDescs(const Case &c, const Batch &b, const uint8_t *bg,
                                       const uint8_t *fg, uint8_t *out, float *lam,
                                       int32_t *box, dali_cmo::TapTable &taps) {
  std::vector<PasteSampleDesc> descs(c.samples.size());
  for (size_t i = 0; i < descs.size(); i++) {
    const SampleSpec &s = c.samples[i];
    PasteSampleDesc &d = descs[i];
    d.background = bg + b.bg_off[i];
    d.out = out + b.out_off[i];
    d.lam_out = lam + i;
    d.box_out = box + 4 * i;
    d.H = s.H;
    d.W = s.W;
    d.C = s.C;
    d.box = s.box;
    d.lam = s.box.empty() ? 1.0f : float(1.0 - double(s.box.area()) / (double(s.H) * s.W));
    auto [fg_h, fg_w] = FgShape(s);
    dali_cmo::SetForeground(d, fg + b.fg_off[i], fg_h, fg_w, s.resample, taps);
    d.mirror_background = s.mirror_b;
    d.mirror_foreground = s.mirror_f;
    dali_cmo::SetNormalization(d, s.mean, s.stddev);
  }
  dali_cmo::BindTaps(descs.data(), descs.size(), taps.starts.data(), taps.weights.data());
  return descs;
}

/** A tap table's copy in device memory, which the descriptors are pointed at; freed with it. */
struct DeviceTaps {
  int32_t *starts = nullptr;
  float *weights = nullptr;
  DeviceTaps(const dali_cmo::TapTable &taps, std::vector<PasteSampleDesc> &descs) {
    CHECK_CUDA(cudaMalloc(&starts, taps.starts.size() * sizeof(int32_t) + 1));
    CHECK_CUDA(cudaMalloc(&weights, taps.weights.size() * sizeof(float) + 1));
    CHECK_CUDA(cudaMemcpy(starts, taps.starts.data(), taps.starts.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(weights, taps.weights.data(), taps.weights.size() * sizeof(float),
                          cudaMemcpyHostToDevice));
    dali_cmo::BindTaps(descs.data(), descs.size(), starts, weights);
  }
  ~DeviceTaps() {
    cudaFree(starts);
    cudaFree(weights);
  }
};

template <typename F>
void WithTypes(DType dtype, bool chw, F &&f) {
  auto with_layout = [&](auto out_tag) {
    if (chw)
      f(out_tag, std::true_type{});
    else
      f(out_tag, std::false_type{});
  };
  if (dtype == kU8)
    with_layout(std::type_identity<uint8_t>{});
  else if (dtype == kF32)
    with_layout(std::type_identity<float>{});
  else
    with_layout(std::type_identity<Half>{});
}

/** The CPU operator's result: PasteSample per sample. */
void HostReference(const Case &c, const std::vector<PasteSampleDesc> &descs) {
  WithTypes(c.dtype, c.chw, [&](auto out_tag, auto chw_tag) {
    using Out = typename decltype(out_tag)::type;
    constexpr bool kCHW = decltype(chw_tag)::value;
    for (const auto &d : descs) {
      if (d.C == 3)
        dali_cmo::PasteSample<Out, kCHW, 3>(d);
      else
        dali_cmo::PasteSample<Out, kCHW, 1>(d);
    }
  });
}

void EmulatedKernel(const Case &c, const std::vector<PasteSampleDesc> &descs) {
  WithTypes(c.dtype, c.chw, [&](auto out_tag, auto chw_tag) {
    using Out = typename decltype(out_tag)::type;
    dali_cmo::EmulatePasteLaunch<Out, decltype(chw_tag)::value>(descs.data(),
                                                                int(descs.size()));
  });
}

/** Runs the real kernel; returns its time in ms (one launch, after a warm-up one). */
float DeviceKernel(const Case &c, const std::vector<PasteSampleDesc> &descs, bool timing) {
  PasteSampleDesc *gpu_descs = nullptr;
  CHECK_CUDA(cudaMalloc(&gpu_descs, sizeof(PasteSampleDesc) * descs.size() + 1));
  CHECK_CUDA(cudaMemcpy(gpu_descs, descs.data(), sizeof(PasteSampleDesc) * descs.size(),
                        cudaMemcpyHostToDevice));
  int64_t max_pixels = 1;
  for (const auto &d : descs)
    max_pixels = std::max<int64_t>(max_pixels, int64_t(d.H) * d.W);
  float ms = 0;
  WithTypes(c.dtype, c.chw, [&](auto out_tag, auto chw_tag) {
    using Out = typename decltype(out_tag)::type;
    constexpr bool kCHW = decltype(chw_tag)::value;
    auto launch = [&] {
      dali_cmo::LaunchPaste<Out, kCHW>(gpu_descs, int(descs.size()), max_pixels, 0);
      CHECK_CUDA(cudaGetLastError());
    };
    launch();
    CHECK_CUDA(cudaDeviceSynchronize());
    if (timing) {
      cudaEvent_t start, stop;
      CHECK_CUDA(cudaEventCreate(&start));
      CHECK_CUDA(cudaEventCreate(&stop));
      const int reps = 20;
      CHECK_CUDA(cudaEventRecord(start));
      for (int i = 0; i < reps; i++)
        launch();
      CHECK_CUDA(cudaEventRecord(stop));
      CHECK_CUDA(cudaEventSynchronize(stop));
      CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
      ms /= reps;
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
  });
  CHECK_CUDA(cudaFree(gpu_descs));
  return ms;
}

/** Distance of two values of the output type: ulps for float types, levels for uint8. */
int64_t Ulps(DType dtype, const uint8_t *a, const uint8_t *b) {
  auto ordered = [](int64_t bits, int width) {  // sign-magnitude -> monotonic integer
    int64_t sign = int64_t(1) << (width - 1);
    return bits & sign ? -(bits & (sign - 1)) : bits;
  };
  if (dtype == kU8)
    return std::llabs(int64_t(*a) - int64_t(*b));
  if (dtype == kF16) {
    uint16_t x, y;
    std::memcpy(&x, a, 2);
    std::memcpy(&y, b, 2);
    return std::llabs(ordered(x, 16) - ordered(y, 16));
  }
  uint32_t x, y;
  std::memcpy(&x, a, 4);
  std::memcpy(&y, b, 4);
  return std::llabs(ordered(x, 32) - ordered(y, 32));
}

double Value(DType dtype, const uint8_t *p) {
  if (dtype == kU8)
    return *p;
  if (dtype == kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;  // decode binary16 by hand: the host may lack a half type
  std::memcpy(&h, p, 2);
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                   : std::ldexp(1024 + m, e - 25);
  return h & 0x8000 ? -v : v;
}

/** Compares image, lambda and box outputs; prints where the first difference is. */
bool Compare(const Case &c, const Batch &b, const std::vector<uint8_t> &want,
             const std::vector<uint8_t> &got, const std::vector<float> &want_lam,
             const std::vector<float> &got_lam, const std::vector<int32_t> &want_box,
             const std::vector<int32_t> &got_box, const char *what) {
  bool ok = true;
  const int size = DTypeSize(c.dtype);
  for (size_t i = 0; i < c.samples.size(); i++) {
    const SampleSpec &s = c.samples[i];
    int64_t mismatches = 0, max_ulps = 0;
    int64_t first = -1;
    const int64_t values = int64_t(s.H) * s.W * s.C;
    for (int64_t v = 0; v < values; v++) {
      const uint8_t *a = want.data() + b.out_off[i] + v * size;
      const uint8_t *g = got.data() + b.out_off[i] + v * size;
      if (std::memcmp(a, g, size) != 0) {
        mismatches++;
        max_ulps = std::max(max_ulps, Ulps(c.dtype, a, g));
        if (first < 0)
          first = v;
      }
    }
    if (mismatches) {
      ok = false;
      int64_t pixel = c.chw ? first % (int64_t(s.H) * s.W) : first / s.C;
      int ch = int(c.chw ? first / (int64_t(s.H) * s.W) : first % s.C);
      int y = int(pixel / s.W), x = int(pixel % s.W);
      const uint8_t *a = want.data() + b.out_off[i] + first * size;
      const uint8_t *g = got.data() + b.out_off[i] + first * size;
      std::printf(
          "MISMATCH %s: case %s, sample %zu (%dx%dx%d %s %s, box [%d, %d, %d, %d], %s "
          "foreground, mirror %d/%d): %lld of %lld values differ, max %lld ulps; first at "
          "(y %d, x %d, channel %d), %s the box: expected %.9g, got %.9g (%lld ulps)\n",
          what, c.name.c_str(), i, s.H, s.W, s.C, kDTypeNames[c.dtype], c.chw ? "CHW" : "HWC",
          s.box.y1, s.box.x1, s.box.y2, s.box.x2,
          s.resample ? "resampled" : s.region ? "region" : "full-size",
          int(s.mirror_b), int(s.mirror_f), (long long)mismatches, (long long)values,
          (long long)max_ulps, y, x, ch, dali_cmo::InBox(s.box, y, x) ? "inside" : "outside",
          Value(c.dtype, a), Value(c.dtype, g), (long long)Ulps(c.dtype, a, g));
    }
    if (std::memcmp(&want_lam[i], &got_lam[i], sizeof(float)) != 0 ||
        std::memcmp(&want_box[4 * i], &got_box[4 * i], 4 * sizeof(int32_t)) != 0) {
      ok = false;
      std::printf("MISMATCH %s: case %s, sample %zu: lam %.9g vs %.9g, box [%d %d %d %d] vs "
                  "[%d %d %d %d]\n", what, c.name.c_str(), i, want_lam[i], got_lam[i],
                  want_box[4 * i], want_box[4 * i + 1], want_box[4 * i + 2], want_box[4 * i + 3],
                  got_box[4 * i], got_box[4 * i + 1], got_box[4 * i + 2], got_box[4 * i + 3]);
    }
  }
  return ok;
}

// ---- the cases ----------------------------------------------------------------------------------

void SetConstants(SampleSpec &s, const float *mean, const float *stddev) {
  std::memcpy(s.mean, mean, sizeof(s.mean));
  std::memcpy(s.stddev, stddev, sizeof(s.stddev));
}

Box RandomBox(std::mt19937 &rng, int H, int W) {
  std::uniform_int_distribution<int> kind(0, 9);
  int k = kind(rng);
  if (k == 0)
    return {};                      // nothing pasted
  if (k == 1)
    return {0, 0, H, W};            // everything pasted
  std::uniform_int_distribution<int> ys(0, H), xs(0, W);
  int a = ys(rng), b = ys(rng), c = xs(rng), d = xs(rng);
  return {std::min(a, b), std::min(c, d), std::max(a, b), std::max(c, d)};
}

SampleSpec RandomSample(std::mt19937 &rng, int max_side, int C, bool resample = false) {
  std::uniform_int_distribution<int> side(1, max_side), coin(0, 1), pick(0, 3);
  std::uniform_real_distribution<float> mean(-20.0f, 270.0f), stddev(0.3f, 90.0f);
  SampleSpec s;
  s.H = side(rng);
  s.W = side(rng);
  s.C = C;
  s.box = RandomBox(rng, s.H, s.W);
  s.region = coin(rng);
  s.mirror_b = coin(rng);
  s.mirror_f = coin(rng);
  if (resample) {  // regions from one pixel up to three times the image
    std::uniform_int_distribution<int> region_side(1, 3 * max_side);
    s.resample = true;
    s.fg_h = region_side(rng);
    s.fg_w = region_side(rng);
  }
  switch (pick(rng)) {
    case 0: SetConstants(s, kImageNetMean, kImageNetStd); break;
    case 1: SetConstants(s, kCifarMean, kCifarStd); break;
    case 2: break;  // the pure paste
    default:
      for (int ch = 0; ch < 3; ch++) {
        s.mean[ch] = mean(rng);
        s.stddev[ch] = stddev(rng);
      }
  }
  return s;
}

std::vector<Case> MakeCases(int random_cases, bool large, std::mt19937 &rng) {
  std::vector<Case> cases;
  const DType dtypes[] = {kU8, kF32, kF16};
  auto add = [&](std::string name, DType t, bool chw, std::vector<SampleSpec> samples,
                 bool ramp = false) {
    cases.push_back({name + "/" + kDTypeNames[t] + (chw ? "/CHW" : "/HWC"), t, chw, ramp,
                     std::move(samples)});
  };
  // Rounding tables: every byte 0..255 in every channel (a 16 x 16 ramp), background and
  // pasted foreground, with the training constants and constants that make exact ties.
  struct Constants { const char *name; float mean[3], stddev[3]; };
  const Constants tables[] = {
      {"imagenet", {kImageNetMean[0], kImageNetMean[1], kImageNetMean[2]},
                   {kImageNetStd[0], kImageNetStd[1], kImageNetStd[2]}},
      {"cifar", {kCifarMean[0], kCifarMean[1], kCifarMean[2]},
                {kCifarStd[0], kCifarStd[1], kCifarStd[2]}},
      {"ties_mean0.5", {0.5f, 0.5f, 0.5f}, {1, 1, 1}},         // uint8: every value a tie
      {"ties_std2", {0, 0, 0}, {2, 2, 2}},                     // uint8: odd values are ties
      {"ties_f16", {-2048, -2048, -2048}, {1, 1, 1}},          // float16: odd values are ties
      {"overflow_f16", {0, 0, 0}, {1.0f / 300, 1.0f / 300, 1.0f / 300}},  // > 65504: infinity
  };
  for (const auto &k : tables) {
    for (DType t : dtypes) {
      SampleSpec bg, fg;
      bg.H = fg.H = 16;
      bg.W = fg.W = 16;
      SetConstants(bg, k.mean, k.stddev);
      SetConstants(fg, k.mean, k.stddev);
      fg.box = {0, 0, 16, 16};
      add(std::string("rounding_") + k.name, t, true, {bg, fg}, true);
    }
  }
  // 1x1 images: nothing pasted, the pixel pasted (full-size and region foregrounds), mirrors.
  for (DType t : dtypes) {
    for (bool chw : {false, true}) {
      std::vector<SampleSpec> samples;
      for (int C : {1, 3}) {
        for (int k = 0; k < 4; k++) {
          SampleSpec s;
          s.C = C;
          s.box = k == 0 ? Box{} : Box{0, 0, 1, 1};
          s.region = k >= 2;
          s.mirror_b = s.mirror_f = k == 3;
          SetConstants(s, kImageNetMean, kImageNetStd);
          samples.push_back(s);
        }
      }
      add("one_pixel", t, chw, samples);
    }
  }
  // Empty and full boxes; box-sized foregrounds with every mirror combination; C = 1 and 3.
  for (DType t : dtypes) {
    for (bool chw : {false, true}) {
      std::vector<SampleSpec> samples;
      for (int C : {1, 3}) {
        for (int k = 0; k < 8; k++) {
          SampleSpec s;
          s.H = 37;
          s.W = 53;
          s.C = C;
          s.box = k == 0 ? Box{} : k == 1 ? Box{0, 0, 37, 53} : Box{5, 7, 30, 41 + k};
          s.region = k >= 1 && k % 2 == 1;
          s.mirror_b = k & 2;
          s.mirror_f = k & 4;
          SetConstants(s, kCifarMean, kCifarStd);
          samples.push_back(s);
        }
      }
      add("boxes_and_mirrors", t, chw, samples);
    }
  }
  // Resampled foregrounds: enlarged from a single pixel, shrunk hundreds of times into one
  // pixel, box-sized (the identity), flipped, into full and one-pixel boxes.
  for (DType t : dtypes) {
    for (bool chw : {false, true}) {
      std::vector<SampleSpec> samples;
      const int shapes[][2] = {{1, 1}, {300, 200}, {25, 34}, {9, 70}, {120, 5}, {3, 2}};
      for (int k = 0; k < 12; k++) {
        SampleSpec s;
        s.H = 37;
        s.W = 53;
        s.C = k % 3 ? 3 : 1;
        s.box = k % 4 == 0 ? Box{0, 0, 37, 53} : k % 4 == 1 ? Box{10, 20, 11, 21}
                                                            : Box{6, 9, 31, 43};
        s.resample = true;
        s.fg_h = shapes[k % 6][0];
        s.fg_w = shapes[k % 6][1];
        s.mirror_f = k % 2;
        s.mirror_b = k % 5 == 0;
        SetConstants(s, kImageNetMean, kImageNetStd);
        samples.push_back(s);
      }
      add("resampled_edges", t, chw, samples);
    }
  }
  // A 4K image: more pixels than the block cap covers in one step (the grid-stride loop).
  for (auto [t, chw] : {std::pair{kF16, true}, std::pair{kU8, false}}) {
    if (!large)
      break;
    SampleSpec s;
    s.H = 2160;
    s.W = 3840;
    s.box = {300, 1001, 1800, 3333};
    s.region = chw;
    s.mirror_b = true;
    s.mirror_f = chw;
    SetConstants(s, kImageNetMean, kImageNetStd);
    add("4k", t, chw, {s});
  }
  if (large) {
    SampleSpec s;
    s.H = 2160;
    s.W = 3840;
    s.box = {100, 200, 2000, 3000};
    s.resample = true;
    s.fg_h = 700;
    s.fg_w = 3500;  // enlarged vertically, shrunk horizontally
    s.mirror_f = true;
    SetConstants(s, kCifarMean, kCifarStd);
    add("4k_resampled", kF32, true, {s});
  }
  // A batch of 300 small images of mixed sizes and channel counts; a batch of 70,000 pixels,
  // more samples than one launch's grid can take (gridDim.y <= 65,535).
  if (large) {
    std::vector<SampleSpec> samples;
    for (int i = 0; i < 300; i++)
      samples.push_back(RandomSample(rng, 40, i % 5 ? 3 : 1));
    add("batch300", kF32, true, samples);
    samples.assign(70000, SampleSpec{});
    for (int i = 0; i < 70000; i++) {
      samples[i].C = 1;
      samples[i].box = i % 3 ? Box{0, 0, 1, 1} : Box{};
      samples[i].mirror_b = i % 2;
    }
    add("batch70000", kU8, false, samples);
  }
  // Random batches.
  std::uniform_int_distribution<int> batch(1, 8), dtype(0, 2), coin(0, 1), side(1, 300);
  for (int r = 0; r < random_cases; r++) {
    std::vector<SampleSpec> samples;
    int n = batch(rng), C = coin(rng) ? 3 : 1, max_side = side(rng);
    bool resample = r % 3 == 2;  // a third of the batches resample their foregrounds
    for (int i = 0; i < n; i++)
      samples.push_back(RandomSample(rng, resample ? std::min(max_side, 120) : max_side, C,
                                     resample));
    add("random" + std::to_string(r), DType(dtype(rng)), coin(rng), samples);
  }
  return cases;
}

// ---- main ---------------------------------------------------------------------------------------

struct Options {
  int random_cases = 60;
  unsigned seed = 1;
  const char *json = nullptr;
  bool require_gpu = false, timing = true, large = true;
};

bool ParseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--random" && i + 1 < argc) {
      o.random_cases = std::atoi(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      o.seed = unsigned(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--json" && i + 1 < argc) {
      o.json = argv[++i];
    } else if (a == "--require-gpu") {
      o.require_gpu = true;
    } else if (a == "--no-timing") {
      o.timing = false;
    } else if (a == "--no-large") {
      o.large = false;
    } else {
      std::fprintf(stderr, "usage: %s [--random N] [--seed S] [--json PATH] [--require-gpu] "
                           "[--no-timing] [--no-large]\n", argv[0]);
      return false;
    }
  }
  return true;
}

/** Kernel time for a training-like batch: 256 x 224 x 224 x 3 -> float16 CHW, half-area boxes,
 *  box-sized foregrounds or (resample) 221 x 221 regions resampled into them, as
 *  benchmarks/paste_op.py's paste_box and fused_resize; GB/s counts the bytes read and written
 *  once. */
std::string TimeTrainingBatch(std::mt19937 &rng, bool resample) {
  Case c{"timing", kF16, true, false, {}};
  for (int i = 0; i < 256; i++) {
    SampleSpec s;
    s.H = s.W = 224;
    s.box = {33, 33, 191, 191};
    s.region = !resample;
    s.resample = resample;
    s.fg_h = s.fg_w = 221;
    s.mirror_b = i % 2;
    s.mirror_f = i % 3 == 0;
    SetConstants(s, kImageNetMean, kImageNetStd);
    c.samples.push_back(s);
  }
  Batch b = MakeBatch(c, rng);
  uint8_t *bg, *fg, *out;
  float *lam;
  int32_t *box;
  CHECK_CUDA(cudaMalloc(&bg, b.bg.size()));
  CHECK_CUDA(cudaMalloc(&fg, b.fg.size()));
  CHECK_CUDA(cudaMalloc(&out, b.out_bytes));
  CHECK_CUDA(cudaMalloc(&lam, 256 * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&box, 256 * 4 * sizeof(int32_t)));
  CHECK_CUDA(cudaMemcpy(bg, b.bg.data(), b.bg.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(fg, b.fg.data(), b.fg.size(), cudaMemcpyHostToDevice));
  dali_cmo::TapTable taps;
  std::vector<PasteSampleDesc> descs = MakeDescs(c, b, bg, fg, out, lam, box, taps);
  DeviceTaps device_taps(taps, descs);
  float ms = DeviceKernel(c, descs, true);
  // written, plus read: the background outside the boxes and the foregrounds
  double bytes = double(b.out_bytes) + (224.0 * 224 - 158.0 * 158) * 3 * 256 + b.fg.size() - 1;
  cudaFree(bg); cudaFree(fg); cudaFree(out); cudaFree(lam); cudaFree(box);
  char text[200];
  std::snprintf(text, sizeof(text), "{\"batch\": \"256x224x224x3 uint8 -> CHW float16%s\", "
                "\"kernel_ms\": %.4f, \"GB_per_s\": %.1f}",
                resample ? ", 221x221 regions resampled into the boxes" : "", ms,
                bytes / (ms * 1e-3) / 1e9);
  return text;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  if (!ParseArgs(argc, argv, o))
    return 2;
  int devices = 0;
  bool gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  cudaGetLastError();  // clear the error a machine without a GPU leaves behind
  std::string device = "none";
  if (gpu) {
    cudaDeviceProp prop;
    CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    device = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
             std::to_string(prop.minor) + ")";
  } else if (o.require_gpu) {
    std::printf("no CUDA GPU found (--require-gpu)\n");
    return 3;
  }
  const char *mode = gpu ? "gpu" : "cpu-emulation";
  std::printf("kernel_check: %s, device %s\n", gpu ? "GPU kernel vs CPU code"
              : "no GPU: the kernel's body on a simulated grid vs CPU code", device.c_str());

  std::mt19937 rng(o.seed);
  std::vector<Case> cases = MakeCases(o.random_cases, o.large, rng);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> failed;
  for (const Case &c : cases) {
    Batch b = MakeBatch(c, rng);
    const size_t n = c.samples.size();
    std::vector<uint8_t> want(b.out_bytes + 1), got(b.out_bytes + 1);
    std::vector<float> want_lam(n), got_lam(n, -1.0f);
    std::vector<int32_t> want_box(4 * n), got_box(4 * n, -1);
    dali_cmo::TapTable taps;
    HostReference(c, MakeDescs(c, b, b.bg.data(), b.fg.data(), want.data(), want_lam.data(),
                               want_box.data(), taps));
    if (gpu) {
      uint8_t *bg, *fg, *out;
      float *lam;
      int32_t *box;
      CHECK_CUDA(cudaMalloc(&bg, b.bg.size()));
      CHECK_CUDA(cudaMalloc(&fg, b.fg.size()));
      CHECK_CUDA(cudaMalloc(&out, got.size()));
      CHECK_CUDA(cudaMalloc(&lam, n * sizeof(float) + 1));
      CHECK_CUDA(cudaMalloc(&box, 4 * n * sizeof(int32_t) + 1));
      CHECK_CUDA(cudaMemcpy(bg, b.bg.data(), b.bg.size(), cudaMemcpyHostToDevice));
      CHECK_CUDA(cudaMemcpy(fg, b.fg.data(), b.fg.size(), cudaMemcpyHostToDevice));
      CHECK_CUDA(cudaMemset(out, 0xAB, got.size()));  // unwritten values show up
      taps.clear();
      std::vector<PasteSampleDesc> descs = MakeDescs(c, b, bg, fg, out, lam, box, taps);
      DeviceTaps device_taps(taps, descs);
      DeviceKernel(c, descs, false);
      CHECK_CUDA(cudaMemcpy(got.data(), out, got.size(), cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(got_lam.data(), lam, n * sizeof(float), cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(got_box.data(), box, 4 * n * sizeof(int32_t),
                            cudaMemcpyDeviceToHost));
      cudaFree(bg); cudaFree(fg); cudaFree(out); cudaFree(lam); cudaFree(box);
    } else {
      std::memset(got.data(), 0xAB, got.size());
      taps.clear();
      EmulatedKernel(c, MakeDescs(c, b, b.bg.data(), b.fg.data(), got.data(), got_lam.data(),
                                  got_box.data(), taps));
    }
    if (!Compare(c, b, want, got, want_lam, got_lam, want_box, got_box, mode))
      failed.push_back(c.name);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string timing = "null";
  if (gpu && o.timing)
    timing = "{\"paste_box\": " + TimeTrainingBatch(rng, false) + ", \"fused_resize\": " +
             TimeTrainingBatch(rng, true) + "}";
  std::printf("kernel_check: %zu of %zu cases equal bit for bit (%s, %.1f s)%s%s\n",
              cases.size() - failed.size(), cases.size(), mode, seconds,
              timing != "null" ? "; timing " : "", timing != "null" ? timing.c_str() : "");
  if (o.json) {
    FILE *f = std::fopen(o.json, "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", o.json);
      return 1;
    }
    std::fprintf(f, "{\"mode\": \"%s\", \"device\": \"%s\", \"cases\": %zu, \"equal\": %zu, "
                 "\"seconds\": %.2f, \"timing\": %s, \"failed\": [", mode, device.c_str(),
                 cases.size(), cases.size() - failed.size(), seconds, timing.c_str());
    for (size_t i = 0; i < failed.size(); i++)
      std::fprintf(f, "%s\"%s\"", i ? ", " : "", failed[i].c_str());
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return failed.empty() ? 0 : 1;
}
