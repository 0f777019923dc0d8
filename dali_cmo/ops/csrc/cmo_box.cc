// Box sampling shared by cmo_box and cmo_paste, and the cmo_box operator, which samples the
// boxes ahead of the paste so that a pipeline can decode only the region that will be pasted.
#include "cmo_box.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"
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

/**
 * cmo_box: samples CMO boxes without touching pixels, for pipelines that decode only the region
 * of a foreground that will be pasted and then hand the box to cmo_paste(..., box=...).
 */
class CmoBox : public dali::rng::OperatorWithRng<dali::Operator<dali::CPUBackend>> {
 public:
  explicit CmoBox(const dali::OpSpec &spec)
      : OperatorWithRng(spec), per_sample_(spec.GetArgument<bool>("per_sample")) {}

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override {
    int n = ws.GetRequestedBatchSize(0);
    dali::GetShapeArgument(sizes_, spec_, "size", ws, n);
    AcquireBoxArgs(spec_, ws, n, per_sample_, alpha_, probability_);
    for (int i = 0; i < n; i++)
      DALI_ENFORCE(sizes_[i][0] > 0 && sizes_[i][1] > 0, dali::make_string(
          "cmo_box: argument `size` must be a positive (height, width); got ", sizes_[i],
          " for sample ", i));
    output_desc.resize(2);
    output_desc[0] = {BoxOutputShape(n), DALI_INT32};
    output_desc[1] = {LambdaOutputShape(n), DALI_FLOAT};
    return true;
  }

  void RunImpl(dali::Workspace &ws) override {
    auto samples = SampleBoxes([this](int i) { return GetSampleRNG(i); }, sizes_, alpha_,
                               probability_, per_sample_);
    auto &boxes = ws.Output<dali::CPUBackend>(0);
    auto &lams = ws.Output<dali::CPUBackend>(1);
    boxes.SetLayout("");
    for (int i = 0; i < static_cast<int>(samples.size()); i++) {
      const Box &b = samples[i].box;
      int32_t *box = boxes.mutable_tensor<int32_t>(i);
      box[0] = b.y1; box[1] = b.x1; box[2] = b.y2; box[3] = b.x2;
      *lams.mutable_tensor<float>(i) = samples[i].lam;
    }
  }

 private:
  bool per_sample_;
  dali::TensorListShape<2> sizes_;
  std::vector<float> alpha_, probability_;
};

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoBox, ::dali_cmo::CmoBox, ::dali::CPU);

DALI_SCHEMA(CmoBox)
    .DocStr(R"(Samples CMO (CutMix) boxes and their lambdas without touching any pixels.

For each sample of an image of ``size = (H, W)``: ``lam ~ Beta(alpha, alpha)``,
``cut = sqrt(1 - lam)``, ``cut_w = int(W * cut)``, ``cut_h = int(H * cut)``, a centre
``cx ~ U{0..W-1}``, ``cy ~ U{0..H-1}``, ``x1 = clip(cx - cut_w // 2, 0, W)``,
``x2 = clip(cx + cut_w // 2, 0, W)`` (same for y), and the emitted
``lam = 1 - (x2 - x1) * (y2 - y1) / (W * H)``.

Outputs ``box`` (int32, ``[y1, x1, y2, x2]``; all zeros where nothing is pasted) and ``lam``
(float32 scalar; 1.0 where nothing is pasted). Feed ``box`` to ``cmo_paste(..., box=box)``
together with a foreground decoded only over that region.)")
    .NumInput(0)
    .NumOutput(2)
    .AddArg("size", "Output image size ``(height, width)`` the boxes are drawn for.",
            DALI_INT_VEC, true)
    .AddParent("CmoBoxSampling")
    .AddRandomSeedArg()
    .AddRandomStateArg();

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

namespace dali_cmo {

/**
 * cmo_region: the source window of a foreground that a region decode must read so that,
 * resized to the box, it equals the box's part of the foreground's crop resized to size x size.
 * One operator instead of a dozen arithmetic nodes per sample.
 */
class CmoRegion : public dali::StatelessOperator<dali::CPUBackend> {
 public:
  explicit CmoRegion(const dali::OpSpec &spec)
      : StatelessOperator(spec), size_(spec.GetArgument<int>("size")) {
    DALI_ENFORCE(size_ > 0, dali::make_string("cmo_region: argument `size` must be > 0; got ",
                                              size_));
  }

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override {
    int n = ws.GetInputBatchSize(0);
    for (int i = 0; i < 3; i++)
      DALI_ENFORCE(ws.Input<dali::CPUBackend>(i).type() == DALI_INT32, dali::make_string(
          "cmo_region: input ", i, " must be int32 (crop anchor and shape from "
          "random_crop_generator, box from cmo_box)"));
    GetPerSampleArgument(mirror_, "foreground_mirror", ws, n);
    auto pair = dali::TensorListShape<>(dali::uniform_list_shape(n, dali::TensorShape<1>{2}));
    output_desc.assign(3, {pair, DALI_FLOAT});
    return true;
  }

  void RunImpl(dali::Workspace &ws) override {
    const auto &anchor = ws.Input<dali::CPUBackend>(0), &window = ws.Input<dali::CPUBackend>(1);
    const auto &boxes = ws.Input<dali::CPUBackend>(2);
    const float S = static_cast<float>(size_);
    for (int i = 0; i < boxes.num_samples(); i++) {
      const int32_t *a = anchor.tensor<int32_t>(i), *w = window.tensor<int32_t>(i);
      const int32_t *b = boxes.tensor<int32_t>(i);  // y1, x1, y2, x2
      // Columns of the box, mirrored when the foreground is flipped, map linearly into the crop.
      float left = mirror_[i] ? S - b[3] : b[1];
      float scale_y = w[0] / S, scale_x = w[1] / S;
      float *start = ws.Output<dali::CPUBackend>(0).mutable_tensor<float>(i);
      float *extent = ws.Output<dali::CPUBackend>(1).mutable_tensor<float>(i);
      float *box_size = ws.Output<dali::CPUBackend>(2).mutable_tensor<float>(i);
      start[0] = a[0] + b[0] * scale_y;
      start[1] = a[1] + left * scale_x;
      extent[0] = std::max((b[2] - b[0]) * scale_y, 1.0f);  // at least one source pixel
      extent[1] = std::max((b[3] - b[1]) * scale_x, 1.0f);
      box_size[0] = static_cast<float>(b[2] - b[0]);
      box_size[1] = static_cast<float>(b[3] - b[1]);
    }
  }

 private:
  int size_;
  std::vector<int> mirror_;
};

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoRegion, ::dali_cmo::CmoRegion, ::dali::CPU);

DALI_SCHEMA(CmoRegion)
    .DocStr(R"(The source window to decode for a region-only foreground.

Inputs: the foreground's random-resized-crop window (``anchor``, ``shape`` in source pixels,
``(y, x)`` and ``(h, w)``, as from ``random_crop_generator``) and its ``cmo_box`` box in the
``size x size`` output. Outputs ``start`` and ``extent`` (float, ``(y, x)`` and ``(h, w)``) for
``decoders.image_slice(..., normalized_anchor=False, normalized_shape=False)``, and the box's
``(height, width)`` to resize the decoded window to. With ``foreground_mirror`` the window of the
mirrored columns is returned (``cmo_paste`` flips it within the box).)")
    .NumInput(3)
    .NumOutput(3)
    .AddArg("size", "Side of the square training image the boxes were drawn for.", DALI_INT32)
    .AddOptionalArg("foreground_mirror", "Whether the foreground is flipped (per sample).", 0,
                    true);
