// Everything cmo_paste does per pixel, in one light header (standard headers only; cuda_fp16.h
// under nvcc; no DALI), so that the same code runs in
//   - the CPU operator (PasteSample: PasteRange over whole rows, ResampleBoxRow for a foreground
//     resampled into its box, with the taps of a TapTable),
//   - the CUDA kernel (PasteKernelBody: groups of pixels per thread, vector stores),
//   - the CPU test that runs the kernel body over a simulated grid of blocks and threads, and
//   - the standalone kernel check (nvcc only), which compares device and host results.
//
// One file on purpose (about 600 lines): the per-pixel rules must have one home that all four
// consumers include; it splits into sections: the descriptor, arithmetic and output conversion,
// the source pixel, resampling, spans (CPU), and the kernel's body (GPU).
//
// Arithmetic is identical on host and device: float32 without fused multiply-adds (round-to-
// nearest intrinsics on the device; the host code is compiled with -ffp-contract=off), the same
// operations in the same order, then a conversion that rounds ties to even (device intrinsics on
// the GPU, an exact equivalent on the host), saturating for uint8. CPU and GPU outputs are
// therefore equal bit for bit for every dtype, layout, mirror, box and resampling.
#ifndef DALI_CMO_PASTE_PIXEL_H_
#define DALI_CMO_PASTE_PIXEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define CMO_HOST_DEV __host__ __device__
#else
#define CMO_HOST_DEV
#endif

namespace dali_cmo {

constexpr int kMaxChannels = 3;

/** A pasted region: rows [y1, y2) and columns [x1, x2) come from the foreground. */
struct Box {
  int32_t y1 = 0, x1 = 0, y2 = 0, x2 = 0;
  CMO_HOST_DEV int64_t area() const { return int64_t(y2 - y1) * (x2 - x1); }
  CMO_HOST_DEV bool empty() const { return y2 <= y1 || x2 <= x1; }
};

/** A float16 output value, as its IEEE 754 binary16 bits (layout of DALI's float16). */
struct Half {
  uint16_t bits;
};

/**
 * One axis (rows or columns) of a foreground region resampled into its box: output index i
 * reads source indices tap_starts[start + i] + k (clamped to the region) with the weights
 * tap_weights[weight + i * support + k], k < support, of the batch's TapTable.
 */
struct ResampleAxis {
  int64_t start = 0, weight = 0;  // where output index 0's entries are in the table
  int32_t support = 0;            // taps per output index
};

/** Everything needed to produce one output sample; plain data, copied to the GPU as is. */
struct PasteSampleDesc {
  const uint8_t *background;  // H x W x C
  const uint8_t *foreground;  // fg_h x fg_w x C; its pixel (0, 0) lands on (fg_y0, fg_x0)
  void *out;                  // H x W x C or C x H x W
  float *lam_out;
  int32_t *box_out;           // [y1, x1, y2, x2] or nullptr
  int32_t H, W, C;            // H * W * C <= kMaxSampleValues (checked by the operator)
  Box box;
  int32_t fg_y0, fg_x0, fg_h, fg_w;
  bool mirror_background, mirror_foreground;
  bool resample;              // the foreground is a region of any size, resampled to the box
  ResampleAxis rows, cols;    // (when resample)
  const int32_t *tap_starts;  // the batch's TapTable, in the memory this code runs on
  const float *tap_weights;   // (BindTaps)
  float lam;
  float mean[kMaxChannels], inv_std[kMaxChannels];
};

/** Sets mean and inv_std = 1 / stddev (float32) of the first kMaxChannels channels. */
inline void SetNormalization(PasteSampleDesc &d, const float *mean, const float *stddev) {
  for (int c = 0; c < kMaxChannels; c++) {
    d.mean[c] = mean[c];
    d.inv_std[c] = 1.0f / stddev[c];
  }
}

// ---- arithmetic -------------------------------------------------------------------------------

// Single float32 operations, never fused into an FMA: the same bits on host and device.
#ifdef __CUDA_ARCH__
CMO_HOST_DEV inline float Add(float a, float b) { return __fadd_rn(a, b); }
CMO_HOST_DEV inline float Sub(float a, float b) { return __fsub_rn(a, b); }
CMO_HOST_DEV inline float Mul(float a, float b) { return __fmul_rn(a, b); }
#else
inline float Add(float a, float b) { return a + b; }
inline float Sub(float a, float b) { return a - b; }
inline float Mul(float a, float b) { return a * b; }
#endif

/** (value - mean) * inv_std in float32. */
CMO_HOST_DEV inline float Normalize(float value, float mean, float inv_std) {
  return Mul(Sub(value, mean), inv_std);
}

/**
 * float -> float16 bits, round to nearest, ties to even, overflow to infinity, NaN kept quiet:
 * what __float2half_rn does on the device, computed exactly with integer operations.
 */
inline uint16_t FloatToHalfBits(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u)                                  // infinity or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u)                                  // >= 65520: rounds to infinity
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) {                                // normal half: rebias, round 13 bits
    uint32_t r = ax - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  if (ax < 0x33000000u)                                   // <= 2^-25 rounds to zero
    return static_cast<uint16_t>(sign);
  // subnormal half: the 24-bit significand shifted right by 14..24 bits, ties to even
  const int shift = 126 - static_cast<int>(ax >> 23);
  const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u)))
    q++;
  return static_cast<uint16_t>(sign | q);
}

/** Rounds 0 <= value <= 255 to the nearest integer, ties to even: float32 has unit ulps in
 *  [2^23, 2^24), so adding and removing 2^23 rounds in the default rounding mode (exact IEEE
 *  arithmetic; compilers keep it unless told -ffast-math, which the build never uses). */
inline float RoundHalfEvenSmall(float value) {
  return (value + 8388608.0f) - 8388608.0f;
}

/** The output conversion: identity for float, ties-to-even float16, ties-to-even saturating
 *  uint8 (NaN -> 0). */
template <typename Out>
CMO_HOST_DEV inline Out ConvertOut(float value);

template <>
CMO_HOST_DEV inline float ConvertOut<float>(float value) {
  return value;
}

template <>
CMO_HOST_DEV inline Half ConvertOut<Half>(float value) {
#ifdef __CUDA_ARCH__
  return Half{__half_as_ushort(__float2half_rn(value))};
#else
  return Half{FloatToHalfBits(value)};
#endif
}

template <>
CMO_HOST_DEV inline uint8_t ConvertOut<uint8_t>(float value) {
#ifdef __CUDA_ARCH__
  return static_cast<uint8_t>(__float2uint_rn(fminf(fmaxf(value, 0.0f), 255.0f)));
#else
  return static_cast<uint8_t>(RoundHalfEvenSmall(std::fmin(std::fmax(value, 0.0f), 255.0f)));
#endif
}

// ---- which input pixel --------------------------------------------------------------------------

/** Whether output pixel (y, x) lies in the pasted box. */
CMO_HOST_DEV inline bool InBox(const Box &b, int y, int x) {
  return y >= b.y1 && y < b.y2 && x >= b.x1 && x < b.x2;
}

/** The input pixel (all its channels) that output pixel (y, x) is made from. */
CMO_HOST_DEV inline const uint8_t *SourcePixel(const PasteSampleDesc &d, int y, int x) {
  if (InBox(d.box, y, x)) {
    int fx = x - d.fg_x0;
    if (d.mirror_foreground)
      fx = d.fg_w - 1 - fx;
    return d.foreground + ((y - d.fg_y0) * d.fg_w + fx) * d.C;
  }
  int bx = d.mirror_background ? d.W - 1 - x : x;
  return d.background + (y * d.W + bx) * d.C;
}

/** The output value of channel c from input value v. */
template <typename Out>
CMO_HOST_DEV inline Out OutputValue(const PasteSampleDesc &d, float v, int c) {
  return ConvertOut<Out>(Normalize(v, d.mean[c], d.inv_std[c]));
}

// ---- the foreground resampled into its box --------------------------------------------------

/**
 * How the box's rows (or columns) sample a foreground region of in_size pixels: DALI's
 * fn.resize default (interp_type LINEAR, antialias=True), a triangle filter of radius 1 when
 * enlarging and of radius in_size / out_size when shrinking, weights normalised to sum 1,
 * source indices clamped to the region. The float steps follow DALI's CPU resampling
 * (InitializeResamplingFilter with its tabulated triangle [0, 1, 0]) one by one. Host only:
 * TapTable evaluates it once per output row and column.
 */
struct ResampleFilter {
  float scale;         // in_size / out_size
  float origin;        // 0.5 * scale - 0.5 - anchor: where output 0's filter starts
  float filter_scale;  // one source pixel in the triangle table's coordinates
  int32_t support;     // taps per output index
};

inline ResampleFilter MakeResampleFilter(int in_size, int out_size) {
  ResampleFilter f;
  f.scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float radius = in_size > out_size ? f.scale : 1.0f;  // antialiased when shrinking
  f.filter_scale = 2.0f / std::max(1.0f, 2.0f * radius);     // the table spans [0, 2]
  const float anchor = 1.0f / f.filter_scale;
  f.support = static_cast<int32_t>(std::ceil(2.0f / f.filter_scale));
  f.origin = (0.5f * f.scale - 0.5f) - anchor;
  return f;
}

/** The first source index of output index i's taps; f0: how far it lies past the filter's
 *  start. */
inline int TapStart(const ResampleFilter &f, int i, float &f0) {
  const float start = Add(Mul(static_cast<float>(i), f.scale), f.origin);
  const float first = std::ceil(start);
  f0 = Sub(first, start);
  return static_cast<int>(first);
}

/** The triangle's weight of tap k (before normalisation): DALI's table [0, 1, 0], linearly
 *  interpolated, at (f0 + k) * filter_scale. */
inline float TapWeight(const ResampleFilter &f, float f0, int k) {
  const float t = Mul(Add(f0, static_cast<float>(k)), f.filter_scale);
  if (!(t > -1.0f) || t >= 3.0f)
    return 0.0f;
  const float t0 = std::floor(t), frac = Sub(t, t0);
  return t0 == 0.0f ? frac : t0 == 1.0f ? Sub(1.0f, frac) : 0.0f;
}

/**
 * The taps of a batch's resampled boxes, computed once per output row and column (as fn.resize
 * prepares its filters), not per pixel: for every output index of every axis, the first source
 * index and the weights normalised to sum 1 (summed in tap order, then divided). The CPU reads
 * the table where it is, the GPU a copy of its two arrays (BindTaps).
 */
struct TapTable {
  std::vector<int32_t> starts;
  std::vector<float> weights;

  void clear() {
    starts.clear();
    weights.clear();
  }

  /** Appends the taps of out_size output indices sampling in_size source pixels. */
  ResampleAxis Append(int in_size, int out_size) {
    const ResampleFilter f = MakeResampleFilter(in_size, out_size);
    ResampleAxis a;
    a.start = static_cast<int64_t>(starts.size());
    a.weight = static_cast<int64_t>(weights.size());
    a.support = f.support;
    for (int i = 0; i < out_size; i++) {
      float f0;
      starts.push_back(TapStart(f, i, f0));
      float sum = 0.0f;
      for (int k = 0; k < f.support; k++)
        sum = Add(sum, TapWeight(f, f0, k));
      for (int k = 0; k < f.support; k++) {
        const float w = TapWeight(f, f0, k);
        weights.push_back(sum != 0.0f ? w / sum : w);
      }
    }
    return a;
  }
};

/**
 * Sets the foreground (d.box set first), fg_h x fg_w pixels: full size (fg_h x fg_w = H x W,
 * without resample: its box lands on the box), the box's region at the box's size, or, with
 * resample, the box's region at any size, resampled to the box with taps appended to `taps`
 * (BindTaps once the batch is complete).
 */
inline void SetForeground(PasteSampleDesc &d, const uint8_t *foreground, int fg_h, int fg_w,
                          bool resample, TapTable &taps) {
  const bool full = !resample && fg_h == d.H && fg_w == d.W;
  d.foreground = foreground;
  d.fg_y0 = full ? 0 : d.box.y1;
  d.fg_x0 = full ? 0 : d.box.x1;
  d.fg_h = fg_h;
  d.fg_w = fg_w;
  d.resample = resample && !d.box.empty();
  d.rows = d.resample ? taps.Append(fg_h, d.box.y2 - d.box.y1) : ResampleAxis{};
  d.cols = d.resample ? taps.Append(fg_w, d.box.x2 - d.box.x1) : ResampleAxis{};
}

/** Points n descriptors at a TapTable's arrays: the host's, or their copy on the GPU. */
inline void BindTaps(PasteSampleDesc *descs, size_t n, const int32_t *starts,
                     const float *weights) {
  for (size_t i = 0; i < n; i++) {
    descs[i].tap_starts = starts;
    descs[i].tap_weights = weights;
  }
}

/** Output index i of an axis: its first source index, and its `support` weights. */
CMO_HOST_DEV inline int FirstTap(const PasteSampleDesc &d, const ResampleAxis &a, int i) {
  return d.tap_starts[a.start + i];
}

CMO_HOST_DEV inline const float *TapWeights(const PasteSampleDesc &d, const ResampleAxis &a,
                                            int i) {
  return d.tap_weights + a.weight + static_cast<int64_t>(i) * a.support;
}

CMO_HOST_DEV inline int Clamp(int v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Column j of the box (0 = its left edge) in the resampled region: flipped with the
 *  foreground. */
CMO_HOST_DEV inline int ResampledColumn(const PasteSampleDesc &d, int x) {
  const int j = x - d.box.x1;
  return d.mirror_foreground ? d.box.x2 - d.box.x1 - 1 - j : j;
}

/**
 * The resampled foreground at box pixel (y, x), all channels: for each column tap (in order)
 * the column's vertical sum over the row taps (in order), then the weighted sum of the columns.
 * ResampleBoxRow computes the same sums in two passes, in the same order.
 */
template <int C>
CMO_HOST_DEV inline void ResampledPixel(const PasteSampleDesc &d, int y, int x,
                                        float (&value)[C]) {
  const int i = y - d.box.y1, j = ResampledColumn(d, x);
  const int sy0 = FirstTap(d, d.rows, i), sx0 = FirstTap(d, d.cols, j);
  const float *wy = TapWeights(d, d.rows, i), *wx = TapWeights(d, d.cols, j);
  for (int c = 0; c < C; c++)
    value[c] = 0.0f;
  for (int kx = 0; kx < d.cols.support; kx++) {
    const int sx = Clamp(sx0 + kx, 0, d.fg_w - 1);
    float column[C];
    for (int c = 0; c < C; c++)
      column[c] = 0.0f;
    for (int ky = 0; ky < d.rows.support; ky++) {
      const uint8_t *src = d.foreground + (Clamp(sy0 + ky, 0, d.fg_h - 1) * d.fg_w + sx) * C;
      for (int c = 0; c < C; c++)
        column[c] = Add(column[c], Mul(wy[ky], src[c]));
    }
    for (int c = 0; c < C; c++)
      value[c] = Add(value[c], Mul(wx[kx], column[c]));
  }
}

// ---- spans of pixels (the CPU operator; the GPU's partial groups) -----------------------------

/**
 * Output pixels [x0, x_end) of row y, all from one input (background or foreground): the
 * source pointer walks the input row forwards, or backwards where that input is mirrored.
 * Channel-outer loops keep the CHW writes contiguous.
 */
template <typename Out, bool kCHW, int C>
CMO_HOST_DEV void PasteRun(const PasteSampleDesc &d, int y, int x0, int x_end, bool mirrored) {
  if (x_end <= x0)
    return;
  const uint8_t *src = SourcePixel(d, y, x0);
  const int step = mirrored ? -C : C;
  const int n = x_end - x0;
  Out *out = static_cast<Out *>(d.out);
  const int pixel = y * d.W + x0;
  for (int c = 0; c < C; c++) {
    if constexpr (kCHW) {
      Out *o = out + c * d.H * d.W + pixel;
      for (int i = 0; i < n; i++)
        o[i] = OutputValue<Out>(d, src[i * step + c], c);
    } else {
      Out *o = out + pixel * C + c;
      for (int i = 0; i < n; i++)
        o[i * C] = OutputValue<Out>(d, src[i * step + c], c);
    }
  }
}

/** Output pixels [x0, x_end) of row y, all in the box, of a resampled foreground: pixel by
 *  pixel (the GPU's partial groups; the CPU operator uses ResampleBoxRow). */
template <typename Out, bool kCHW, int C>
CMO_HOST_DEV void ResampleRun(const PasteSampleDesc &d, int y, int x0, int x_end) {
  Out *out = static_cast<Out *>(d.out);
  for (int x = x0; x < x_end; x++) {
    float value[C];
    ResampledPixel<C>(d, y, x, value);
    const int pixel = y * d.W + x;
    for (int c = 0; c < C; c++)
      out[kCHW ? c * d.H * d.W + pixel : pixel * C + c] = OutputValue<Out>(d, value[c], c);
  }
}

/**
 * Output pixels [begin, end) of the sample in row-major order (part of a row, whole rows or
 * several rows): each row is cut into at most three runs, background / box / background.
 */
template <typename Out, bool kCHW, int C>
CMO_HOST_DEV void PasteRange(const PasteSampleDesc &d, int begin, int end) {
  if (begin >= end)
    return;
  const Box &b = d.box;
  int y = begin / d.W, x = begin - y * d.W;
  while (begin < end) {
    const int row_end = x + (end - begin) < d.W ? x + (end - begin) : d.W;
    if (y < b.y1 || y >= b.y2 || b.empty()) {
      PasteRun<Out, kCHW, C>(d, y, x, row_end, d.mirror_background);
    } else {
      const int x1 = b.x1 < x ? x : b.x1 > row_end ? row_end : b.x1;
      const int x2 = b.x2 < x1 ? x1 : b.x2 > row_end ? row_end : b.x2;
      PasteRun<Out, kCHW, C>(d, y, x, x1, d.mirror_background);
      if (d.resample)
        ResampleRun<Out, kCHW, C>(d, y, x1, x2);
      else
        PasteRun<Out, kCHW, C>(d, y, x1, x2, d.mirror_foreground);
      PasteRun<Out, kCHW, C>(d, y, x2, row_end, d.mirror_background);
    }
    begin += row_end - x;
    x = 0;
    y++;
  }
}

/** The lambda and box outputs of a sample. */
CMO_HOST_DEV inline void WriteSampleOutputs(const PasteSampleDesc &d) {
  *d.lam_out = d.lam;
  if (d.box_out) {
    d.box_out[0] = d.box.y1;
    d.box_out[1] = d.box.x1;
    d.box_out[2] = d.box.y2;
    d.box_out[3] = d.box.x2;
  }
}

/**
 * The box's part of output row y of a resampled foreground on the CPU, in two passes with the
 * sums of ResampledPixel in the same order: the vertical sums of every region column
 * (contiguous, vectorisable) into `columns` (fg_w x C), then per box pixel the weighted sum of
 * its column taps.
 */
template <typename Out, bool kCHW, int C>
void ResampleBoxRow(const PasteSampleDesc &d, int y, std::vector<float> &columns) {
  const int i = y - d.box.y1, sy = FirstTap(d, d.rows, i);
  const float *wy = TapWeights(d, d.rows, i);
  const int n = d.fg_w * C;
  std::fill(columns.begin(), columns.end(), 0.0f);
  for (int ky = 0; ky < d.rows.support; ky++) {
    const uint8_t *src = d.foreground + Clamp(sy + ky, 0, d.fg_h - 1) * n;
    float *column = columns.data();
    for (int v = 0; v < n; v++)
      column[v] = Add(column[v], Mul(wy[ky], src[v]));
  }
  Out *out = static_cast<Out *>(d.out);
  for (int x = d.box.x1; x < d.box.x2; x++) {
    const int j = ResampledColumn(d, x), sx = FirstTap(d, d.cols, j);
    const float *wx = TapWeights(d, d.cols, j);
    float value[C] = {};
    for (int kx = 0; kx < d.cols.support; kx++) {
      const float *column = columns.data() + Clamp(sx + kx, 0, d.fg_w - 1) * C;
      for (int c = 0; c < C; c++)
        value[c] = Add(value[c], Mul(wx[kx], column[c]));
    }
    const int pixel = y * d.W + x;
    for (int c = 0; c < C; c++)
      out[kCHW ? c * d.H * d.W + pixel : pixel * C + c] = OutputValue<Out>(d, value[c], c);
  }
}

/** The whole sample on the CPU. */
template <typename Out, bool kCHW, int C>
void PasteSample(const PasteSampleDesc &d) {
  if (!d.resample) {
    PasteRange<Out, kCHW, C>(d, 0, d.H * d.W);
  } else {
    std::vector<float> columns(static_cast<size_t>(d.fg_w) * C);
    const Box &b = d.box;
    PasteRange<Out, kCHW, C>(d, 0, b.y1 * d.W);
    for (int y = b.y1; y < b.y2; y++) {
      PasteRun<Out, kCHW, C>(d, y, 0, b.x1, d.mirror_background);
      ResampleBoxRow<Out, kCHW, C>(d, y, columns);
      PasteRun<Out, kCHW, C>(d, y, b.x2, d.W, d.mirror_background);
    }
    PasteRange<Out, kCHW, C>(d, b.y2 * d.W, d.H * d.W);
  }
  WriteSampleOutputs(d);
}

// ---- the GPU kernel's body ----------------------------------------------------------------------

constexpr int kBlockSize = 256;
constexpr int kPixelsPerThread = 4;      // consecutive pixels per thread and step: vector stores
constexpr int kMaxBlocksPerSample = 1024;

/** The most values (H x W x C) a sample may have, foreground or background. Pixel indices are
 *  int32, and a thread's index steps past the sample's last pixel by up to one grid stride
 *  (PasteThread), so that step must not overflow either (single-channel images near 2^31
 *  pixels); the operator refuses larger samples. */
constexpr int64_t kMaxSampleValues =
    INT32_MAX - int64_t{kMaxBlocksPerSample} * kBlockSize * kPixelsPerThread;

/** An aligned chunk of 4, 8 or 16 bytes: one vector store on the GPU. */
template <int kBytes>
struct alignas(kBytes) Chunk {
  uint32_t words[kBytes / 4];
};

/** Stores N values at dst: in 16-, 8- or 4-byte chunks where dst is aligned for them (always
 *  for the usual sizes), else one by one. */
template <typename T, int N>
CMO_HOST_DEV inline void StoreValues(T *dst, const T (&values)[N]) {
  constexpr int kBytes = N * static_cast<int>(sizeof(T));
  constexpr int kChunk = kBytes % 16 == 0 ? 16 : kBytes % 8 == 0 ? 8 : kBytes % 4 == 0 ? 4 : 1;
  if constexpr (kChunk >= 4) {
    if (reinterpret_cast<uintptr_t>(dst) % kChunk == 0) {
      Chunk<kChunk> chunks[kBytes / kChunk];
      memcpy(chunks, values, kBytes);
#pragma unroll
      for (int i = 0; i < kBytes / kChunk; i++)
        reinterpret_cast<Chunk<kChunk> *>(dst)[i] = chunks[i];
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < N; i++)
    dst[i] = values[i];
}

/** Whether any of the kPixelsPerThread pixels from (y, x) on (rows may wrap) is in the box. */
CMO_HOST_DEV inline bool GroupTouchesBox(const PasteSampleDesc &d, int y, int x) {
  bool touches = false;
#pragma unroll
  for (int i = 0; i < kPixelsPerThread; i++) {
    touches |= InBox(d.box, y, x);
    if (++x == d.W) {
      x = 0;
      y++;
    }
  }
  return touches;
}

/**
 * kPixelsPerThread consecutive output pixels from flat index p = (y, x) on (rows may wrap),
 * all of them inside the sample and none resampled: values computed into registers, then
 * stored as vectors (CHW: one run per channel plane; HWC: one run of interleaved channels).
 */
template <typename Out, bool kCHW, int C>
CMO_HOST_DEV inline void PasteGroup(const PasteSampleDesc &d, int p, int y, int x) {
  constexpr int K = kPixelsPerThread;
  Out values[C][K];
#pragma unroll
  for (int i = 0; i < K; i++) {
    const uint8_t *src = SourcePixel(d, y, x);
#pragma unroll
    for (int c = 0; c < C; c++)
      values[c][i] = OutputValue<Out>(d, src[c], c);
    if (++x == d.W) {
      x = 0;
      y++;
    }
  }
  Out *out = static_cast<Out *>(d.out);
  if constexpr (kCHW) {
    const int plane = d.H * d.W;
#pragma unroll
    for (int c = 0; c < C; c++)
      StoreValues(out + c * plane + p, values[c]);
  } else {
    Out interleaved[K * C];
#pragma unroll
    for (int i = 0; i < K; i++) {
#pragma unroll
      for (int c = 0; c < C; c++)
        interleaved[i * C + c] = values[c][i];
    }
    StoreValues(out + p * C, interleaved);
  }
}

/**
 * The pixels of one sample that thread t of num_threads writes: groups of kPixelsPerThread
 * at flat indices t * K, t * K + num_threads * K, ... The first (y, x) comes from one division;
 * each step then adds a fixed (dy, dx), so there is no division per pixel. Groups past the
 * sample's end and groups touching a resampled box go through PasteRange (one call site, so
 * the resampling loops exist once in the kernel; their stores are scalar).
 */
template <typename Out, bool kCHW, int C>
CMO_HOST_DEV void PasteThread(const PasteSampleDesc &d, int t, int num_threads) {
  const int n = d.H * d.W;
  const int stride = num_threads * kPixelsPerThread;
  int p = t * kPixelsPerThread;
  if (p >= n)
    return;
  int y = p / d.W, x = p - y * d.W;
  const int dy = stride / d.W, dx = stride - dy * d.W;
  for (; p < n; p += stride) {
    if (p + kPixelsPerThread <= n && !(d.resample && GroupTouchesBox(d, y, x)))
      PasteGroup<Out, kCHW, C>(d, p, y, x);
    else
      PasteRange<Out, kCHW, C>(d, p, p + kPixelsPerThread < n ? p + kPixelsPerThread : n);
    x += dx;
    y += dy;
    if (x >= d.W) {
      x -= d.W;
      y++;
    }
  }
}

/** Grid coordinates of one CUDA thread, as the kernel reads them from blockIdx etc. */
struct ThreadPosition {
  int block_x, block_y, thread_x, block_dim_x, grid_dim_x;
};

/** The kernel, minus the built-in variables: blockIdx.y picks the sample; the threads of the
 *  blocks along x share out its pixels. The descriptor is copied into registers first (the
 *  outputs cannot alias it then). */
template <typename Out, bool kCHW>
CMO_HOST_DEV void PasteKernelBody(const PasteSampleDesc *descs, ThreadPosition pos) {
  const PasteSampleDesc d = descs[pos.block_y];
  const int t = pos.block_x * pos.block_dim_x + pos.thread_x;
  const int num_threads = pos.grid_dim_x * pos.block_dim_x;
  if (d.C == 3)
    PasteThread<Out, kCHW, 3>(d, t, num_threads);
  else
    PasteThread<Out, kCHW, 1>(d, t, num_threads);
  if (pos.block_x == 0 && pos.thread_x == 0)
    WriteSampleOutputs(d);
}

/** Blocks along x for a batch whose largest sample has max_pixels pixels. */
inline int PasteBlocksPerSample(int64_t max_pixels) {
  int64_t per_block = static_cast<int64_t>(kBlockSize) * kPixelsPerThread;
  int64_t blocks = (max_pixels + per_block - 1) / per_block;
  return static_cast<int>(blocks < 1 ? 1 : blocks > kMaxBlocksPerSample ? kMaxBlocksPerSample
                                                                         : blocks);
}

}  // namespace dali_cmo

#endif  // DALI_CMO_PASTE_PIXEL_H_
