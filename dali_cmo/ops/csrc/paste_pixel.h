// Everything cmo_paste does per pixel, in one light header (standard headers only; cuda_fp16.h
// under nvcc; no DALI), so that the same code runs in
//   - the CPU operator (PasteRange over whole rows),
//   - the CUDA kernel (PasteKernelBody: groups of pixels per thread, vector stores),
//   - the CPU test that runs the kernel body over a simulated grid of blocks and threads, and
//   - the standalone kernel check (nvcc only), which compares device and host results.
//
// Arithmetic is identical on host and device: (value - mean) * inv_std in float32 without fused
// multiply-adds, then a conversion that rounds ties to even (device intrinsics on the GPU, an
// exact equivalent on the host), saturating for uint8. CPU and GPU outputs are therefore equal
// bit for bit for every dtype, layout, mirror and box.
#ifndef DALI_CMO_PASTE_PIXEL_H_
#define DALI_CMO_PASTE_PIXEL_H_

#include <cmath>
#include <cstdint>
#include <cstring>

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

/** Everything needed to produce one output sample; plain data, copied to the GPU as is. */
struct PasteSampleDesc {
  const uint8_t *background;  // H x W x C
  const uint8_t *foreground;  // fg_h x fg_w x C; its pixel (0, 0) lands on (fg_y0, fg_x0)
  void *out;                  // H x W x C or C x H x W
  float *lam_out;
  int32_t *box_out;           // [y1, x1, y2, x2] or nullptr
  int32_t H, W, C;            // H * W * C < 2^31 (checked by the operator)
  Box box;
  int32_t fg_y0, fg_x0, fg_h, fg_w;
  bool mirror_background, mirror_foreground;
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

/** Sets the foreground: full size (its box lands on the box) or only the box's region. */
inline void SetForeground(PasteSampleDesc &d, const uint8_t *foreground, bool region) {
  d.foreground = foreground;
  d.fg_y0 = region ? d.box.y1 : 0;
  d.fg_x0 = region ? d.box.x1 : 0;
  d.fg_h = region ? d.box.y2 - d.box.y1 : d.H;
  d.fg_w = region ? d.box.x2 - d.box.x1 : d.W;
}

// ---- arithmetic -------------------------------------------------------------------------------

/** (value - mean) * inv_std in float32, never fused into an FMA (the same bits on both sides). */
CMO_HOST_DEV inline float Normalize(float value, float mean, float inv_std) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(__fsub_rn(value, mean), inv_std);
#else
  return (value - mean) * inv_std;
#endif
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

/** The output value of channel c of output pixel (y, x). */
template <typename Out>
CMO_HOST_DEV inline Out OutputValue(const PasteSampleDesc &d, const uint8_t *src, int c) {
  return ConvertOut<Out>(Normalize(src[c], d.mean[c], d.inv_std[c]));
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
        o[i] = OutputValue<Out>(d, src + i * step, c);
    } else {
      Out *o = out + pixel * C + c;
      for (int i = 0; i < n; i++)
        o[i * C] = OutputValue<Out>(d, src + i * step, c);
    }
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

/** The whole sample on the CPU. */
template <typename Out, bool kCHW, int C>
void PasteSample(const PasteSampleDesc &d) {
  PasteRange<Out, kCHW, C>(d, 0, d.H * d.W);
  WriteSampleOutputs(d);
}

// ---- the GPU kernel's body ----------------------------------------------------------------------

constexpr int kBlockSize = 256;
constexpr int kPixelsPerThread = 4;      // consecutive pixels per thread and step: vector stores
constexpr int kMaxBlocksPerSample = 1024;

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

/**
 * kPixelsPerThread consecutive output pixels from flat index p = (y, x) on (rows may wrap),
 * all of them inside the sample: values computed into registers, then stored as vectors
 * (CHW: one run per channel plane; HWC: one run of interleaved channels).
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
      values[c][i] = OutputValue<Out>(d, src, c);
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
 * each step then adds a fixed (dy, dx), so there is no division per pixel.
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
    if (p + kPixelsPerThread <= n)
      PasteGroup<Out, kCHW, C>(d, p, y, x);
    else
      PasteRange<Out, kCHW, C>(d, p, n);
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
