// Box sampling shared by cmo_box and cmo_paste, and the schema of the arguments that drive it.
#include "box_sampling.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dali/pipeline/operator/common.h"

namespace dali_cmo {

namespace {

/** Uniform double in (0, 1): never 0, so that log() and pow(u, 1/a) stay finite. */
double OpenUniform(dali::Philox4x32_10 &rng) {
  uint64_t bits = (static_cast<uint64_t>(rng.next()) << 21) ^ (rng.next() >> 11);  // 53 bits
  return (static_cast<double>(bits) + 0.5) * (1.0 / 9007199254740992.0);
}

double StandardNormal(dali::Philox4x32_10 &rng) {
  // Box-Muller; the second value is dropped to keep the draw count per call fixed.
  double u1 = OpenUniform(rng), u2 = OpenUniform(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

/** Gamma(a, 1), Marsaglia & Tsang (2000); a < 1 through Gamma(a + 1) * U^(1/a). */
double SampleGamma(dali::Philox4x32_10 &rng, double a) {
  if (a < 1.0)
    return SampleGamma(rng, a + 1.0) * std::pow(OpenUniform(rng), 1.0 / a);
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = StandardNormal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0)
      continue;
    v = v * v * v;
    double u = OpenUniform(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x ||
        std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v)))
      return d * v;
  }
}

}  // namespace

double SampleBeta(dali::Philox4x32_10 &rng, double alpha) {
  double x = SampleGamma(rng, alpha), y = SampleGamma(rng, alpha);
  if (x + y == 0.0)  // both underflowed (tiny alpha): Beta is then a fair coin between 0 and 1
    return OpenUniform(rng) < 0.5 ? 0.0 : 1.0;
  return x / (x + y);
}

BoxSample BoxFromLambda(double lam, int32_t cy, int32_t cx, int32_t H, int32_t W) {
  double cut = std::sqrt(1.0 - lam);
  // Truncation and floor division by 2 on both sides, as in the reference (int(), //).
  int32_t cut_w = static_cast<int32_t>(W * cut), cut_h = static_cast<int32_t>(H * cut);
  BoxSample s;
  s.box.x1 = std::clamp(cx - cut_w / 2, 0, W);
  s.box.x2 = std::clamp(cx + cut_w / 2, 0, W);
  s.box.y1 = std::clamp(cy - cut_h / 2, 0, H);
  s.box.y2 = std::clamp(cy + cut_h / 2, 0, H);
  s.lam = LambdaOfBox(s.box, H, W);
  return s;
}

void AcquireBoxArgs(const dali::OpSpec &spec, const dali::ArgumentWorkspace &ws, int n,
                    bool per_sample, std::vector<float> &alpha, std::vector<float> &probability) {
  dali::GetPerSampleArgument(alpha, "alpha", spec, ws, n);
  dali::GetPerSampleArgument(probability, "probability", spec, ws, n);
  for (int i = 0; i < n; i++) {
    DALI_ENFORCE(alpha[i] > 0 && std::isfinite(alpha[i]), dali::make_string(
        "cmo: argument `alpha` must be a finite number > 0; got ", alpha[i], " for sample ", i));
    DALI_ENFORCE(probability[i] >= 0 && probability[i] <= 1, dali::make_string(
        "cmo: argument `probability` must be in [0, 1]; got ", probability[i], " for sample ", i));
    DALI_ENFORCE(per_sample || (alpha[i] == alpha[0] && probability[i] == probability[0]),
        dali::make_string("cmo: with per_sample=False one box is drawn for the whole batch, so "
                          "`alpha` and `probability` must be equal for all samples; sample ", i,
                          " has alpha=", alpha[i], ", probability=", probability[i],
                          ", sample 0 has alpha=", alpha[0], ", probability=", probability[0]));
  }
}

}  // namespace dali_cmo

DALI_SCHEMA(CmoBoxSampling)
    .DocStr("Arguments shared by the CMO box-sampling operators (cmo_box, cmo_paste).")
    .AddOptionalArg("alpha", R"(Beta distribution parameter: ``lam ~ Beta(alpha, alpha)``.

The box covers ``1 - lam`` of the image before clipping; the emitted lambda is recomputed
from the clipped box.)", 1.0f, true)
    .AddOptionalArg("probability", R"(Probability that a foreground is pasted at all.

Where nothing is pasted the box is empty and lambda is 1.0. The CMO reference uses 0.5.)",
                    1.0f, true)
    .AddOptionalArg("per_sample", R"(If False (the CMO reference), one coin, one lambda and one
box centre are drawn per batch and shared by all its samples (the centre is scaled to each
sample's size); if True, every sample draws its own.)", false)
    .MakeInternal();
