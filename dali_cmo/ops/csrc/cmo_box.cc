// cmo_box: schema and CPU implementation.
#include "cmo_box.h"

#include <vector>

#include "dali/pipeline/operator/arg_helper.h"

namespace dali_cmo {

bool CmoBox::SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) {
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

void CmoBox::RunImpl(dali::Workspace &ws) {
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
