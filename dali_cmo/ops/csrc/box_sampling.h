// Box sampling shared by the cmo_box and cmo_paste operators: the CutMix box of CMO (Park et al.,
// CVPR 2022; github.com/naver-ai/cmo, `rand_bbox`): lambda ~ Beta(alpha, alpha), a box of area
// (1 - lambda) at a uniform centre, clipped to the image, and lambda recomputed as the exact
// background share.
//
//   cut = sqrt(1 - lam); cut_w = int(W * cut); cut_h = int(H * cut)
//   cx ~ U{0..W-1}, cy ~ U{0..H-1}
//   x1 = clip(cx - cut_w / 2, 0, W), x2 = clip(cx + cut_w / 2, 0, W)   (same for y)
//   lam = 1 - (x2 - x1) * (y2 - y1) / (W * H)
//
// Random numbers come from DALI's Philox generator, so the draws are the same on CPU and GPU
// operators, follow the pipeline seed, and are saved and restored by DALI checkpoints.
#ifndef DALI_CMO_BOX_SAMPLING_H_
#define DALI_CMO_BOX_SAMPLING_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dali/core/random/philox.h"
#include "dali/core/tensor_shape.h"
#include "dali/pipeline/operator/operator.h"

namespace dali_cmo {

/** A pasted region: rows [y1, y2) and columns [x1, x2) come from the foreground. */
struct Box {
  int32_t y1 = 0, x1 = 0, y2 = 0, x2 = 0;
  int64_t area() const { return int64_t(y2 - y1) * (x2 - x1); }
  bool empty() const { return y2 <= y1 || x2 <= x1; }
};

/** The box and the background share lambda for one sample. */
struct BoxSample {
  Box box;
  float lam = 1.0f;
};

/** Shape of the `box` output: [y1, x1, y2, x2] per sample. */
inline dali::TensorListShape<> BoxOutputShape(int n) {
  return dali::uniform_list_shape(n, dali::TensorShape<1>{4});
}

/** Shape of the `lam` output: one scalar per sample. */
inline dali::TensorListShape<> LambdaOutputShape(int n) {
  return dali::uniform_list_shape(n, dali::TensorShape<0>{});
}

/** Uniform float in [0, 1) from the top 24 bits of a 32-bit draw. */
inline float UniformFloat(dali::Philox4x32_10 &rng) {
  return (rng.next() >> 8) * (1.0f / 16777216.0f);
}

/** Uniform integer in {0, ..., n - 1} (multiply-shift, bias below 2^-32 * n). */
inline int32_t UniformInt(dali::Philox4x32_10 &rng, int32_t n) {
  return static_cast<int32_t>((static_cast<uint64_t>(rng.next()) * static_cast<uint64_t>(n)) >> 32);
}

/** Beta(alpha, alpha) via two Gamma(alpha) draws (Marsaglia-Tsang). */
double SampleBeta(dali::Philox4x32_10 &rng, double alpha);

/** The box for an H x W image from lambda and a centre, exactly as the CMO reference code. */
BoxSample BoxFromLambda(double lam, int32_t cy, int32_t cx, int32_t H, int32_t W);

/** Lambda of a given box: 1 - box area / image area (1.0 for an empty box). */
inline float LambdaOfBox(const Box &box, int32_t H, int32_t W) {
  return box.empty() ? 1.0f : static_cast<float>(1.0 - double(box.area()) / (double(H) * W));
}

/**
 * Samples the boxes for a batch.
 *
 * Per batch (the reference): one coin, one lambda and one relative centre for the whole batch;
 * the centre is scaled to each sample's size, so a batch of equal sizes shares one box.
 * Per sample: every sample has its own coin, lambda and centre.
 *
 * @param sample_rng  returns the Philox generator of sample i for this iteration
 */
template <typename SampleRng>
std::vector<BoxSample> SampleBoxes(SampleRng &&sample_rng, const dali::TensorListShape<2> &sizes,
                                   const std::vector<float> &alpha,
                                   const std::vector<float> &probability, bool per_sample) {
  int n = sizes.num_samples();
  std::vector<BoxSample> out(n);
  if (n == 0)
    return out;
  auto draw = [](dali::Philox4x32_10 &rng, float alpha, float probability,
                 double &lam, double &cy_rel, double &cx_rel) {
    // The coin and lambda are drawn first, in the order of the reference code.
    bool paste = UniformFloat(rng) < probability;
    lam = SampleBeta(rng, alpha);
    cy_rel = UniformFloat(rng);
    cx_rel = UniformFloat(rng);
    return paste;
  };
  auto scaled = [](double rel, int32_t extent) {
    return std::min(static_cast<int32_t>(rel * extent), extent - 1);
  };
  double lam = 1.0;
  double cy_rel = 0, cx_rel = 0;
  bool paste = false;
  for (int i = 0; i < n; i++) {
    if (per_sample || i == 0) {
      auto rng = sample_rng(i);
      paste = draw(rng, alpha[i], probability[i], lam, cy_rel, cx_rel);
    }
    int32_t H = sizes[i][0], W = sizes[i][1];
    if (paste && H > 0 && W > 0)
      out[i] = BoxFromLambda(lam, scaled(cy_rel, H), scaled(cx_rel, W), H, W);
  }
  return out;
}

/**
 * Reads and validates the `alpha` and `probability` arguments for a batch of n samples.
 * In per-batch mode the values must be the same for every sample.
 */
void AcquireBoxArgs(const dali::OpSpec &spec, const dali::ArgumentWorkspace &ws, int n,
                    bool per_sample, std::vector<float> &alpha, std::vector<float> &probability);

}  // namespace dali_cmo

#endif  // DALI_CMO_BOX_SAMPLING_H_
