// cmo_paste: schema, argument handling shared by both backends, and the CPU implementation.
#include "cmo_paste.h"

#include <string>
#include <vector>

#include "dali/core/static_switch.h"
#include "dali/pipeline/operator/common.h"

namespace dali_cmo {

using dali::CPUBackend;
using dali::make_string;

namespace {

/** Expands a per-channel argument of length 1 or C into kMaxChannels values. */
void ChannelValues(const std::vector<float> &values, float fallback, int C, const char *name,
                   float *out) {
  DALI_ENFORCE(values.empty() || static_cast<int>(values.size()) == 1 ||
               static_cast<int>(values.size()) == C,
               make_string("cmo_paste: argument `", name, "` must have 1 or ", C,
                           " values (one per channel); got ", values.size()));
  for (int c = 0; c < kMaxChannels; c++)
    out[c] = values.empty() ? fallback : values[values.size() == 1 ? 0 : std::min<int>(c, C - 1)];
}

// The CPU paste of one sample, built twice where the compiler can: for AVX2 and for any x86-64,
// the loader picking one at run time (target_clones). The clones do the same float operations in
// the same order (no FMA: -ffp-contract=off, and "avx2" does not enable it), so their outputs are
// equal bit for bit; AVX2 only widens the vectorised loops (the output rows: about 2x).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DALI_CMO_CPU_CLONES __attribute__((target_clones("avx2", "default"), flatten))
#else
#define DALI_CMO_CPU_CLONES
#endif

template <typename Out, bool kCHW>
DALI_CMO_CPU_CLONES void PasteSampleOnCpu(const PasteSampleDesc &d) {
  if (d.C == 3)
    PasteSample<Out, kCHW, 3>(d);
  else
    PasteSample<Out, kCHW, 1>(d);
}

}  // namespace

template <typename Backend>
CmoPaste<Backend>::CmoPaste(const dali::OpSpec &spec)
    : Base(spec),
      per_sample_(spec.GetArgument<bool>("per_sample")),
      output_box_(spec.GetArgument<bool>("output_box")),
      resize_foreground_(spec.GetArgument<bool>("resize_foreground")),
      dtype_(spec.GetArgument<dali::DALIDataType>("dtype")),
      mean_(spec.GetRepeatedArgument<float>("mean")),
      std_(spec.GetRepeatedArgument<float>("std")) {
  std::string layout = spec.GetArgument<std::string>("output_layout");
  DALI_ENFORCE(layout == "HWC" || layout == "CHW", make_string(
      "cmo_paste: argument `output_layout` must be \"HWC\" or \"CHW\"; got \"", layout, "\""));
  chw_ = layout == "CHW";
  DALI_ENFORCE(VisitType(dtype_, OutputTypes{}, [](auto) {}), make_string(
      "cmo_paste: argument `dtype` must be one of ", TypeNames(OutputTypes{}), "; got ", dtype_));
  for (float s : std_)
    DALI_ENFORCE(s != 0, "cmo_paste: argument `std` must not contain zeros");
  DALI_ENFORCE(!resize_foreground_ || spec.HasTensorArgument("box"),
               "cmo_paste: argument `resize_foreground` needs the `box` argument (the region "
               "each foreground was decoded for)");
}

template <typename Backend>
void CmoPaste<Backend>::AcquireBoxes(const dali::Workspace &ws,
                                     const dali::TensorListShape<> &bg_shape) {
  int n = bg_shape.num_samples();
  dali::TensorListShape<2> sizes(n);
  for (int i = 0; i < n; i++)
    sizes.set_tensor_shape(i, dali::TensorShape<2>{bg_shape[i][0], bg_shape[i][1]});
  if (!spec_.HasTensorArgument("box")) {
    AcquireBoxArgs(spec_, ws, n, per_sample_, alpha_, probability_);
    boxes_ = SampleBoxes([this](int i) { return this->GetSampleRNG(i); }, sizes, alpha_,
                         probability_, per_sample_);
    return;
  }
  const auto &arg = ws.ArgumentInput("box");
  DALI_ENFORCE(arg.type() == DALI_INT32 && arg.num_samples() == n, make_string(
      "cmo_paste: argument `box` must be an int32 batch of ", n, " samples (as from cmo_box); got ",
      arg.num_samples(), " samples of ", arg.type()));
  boxes_.resize(n);
  for (int i = 0; i < n; i++) {
    DALI_ENFORCE(arg.shape()[i].num_elements() == 4, make_string(
        "cmo_paste: argument `box` must hold [y1, x1, y2, x2] per sample; sample ", i,
        " has shape ", arg.shape()[i]));
    const int32_t *b = arg.tensor<int32_t>(i);
    Box box{b[0], b[1], b[2], b[3]};
    int32_t H = sizes[i][0], W = sizes[i][1];
    DALI_ENFORCE(0 <= box.y1 && box.y1 <= box.y2 && box.y2 <= H &&
                 0 <= box.x1 && box.x1 <= box.x2 && box.x2 <= W, make_string(
        "cmo_paste: argument `box` of sample ", i, " is [", box.y1, ", ", box.x1, ", ", box.y2,
        ", ", box.x2, "], outside the ", H, "x", W, " background"));
    boxes_[i] = {box, LambdaOfBox(box, H, W)};
  }
}

template <typename Backend>
void CmoPaste<Backend>::ValidateForeground(const dali::TensorListShape<> &bg_shape,
                                           const dali::TensorListShape<> &fg_shape) const {
  for (int i = 0; i < bg_shape.num_samples(); i++) {
    auto bg = bg_shape[i], fg = fg_shape[i];
    DALI_ENFORCE(bg.size() == 3 && (bg[2] == 1 || bg[2] == 3), make_string(
        "cmo_paste: sample ", i, ": background must be HWC with 1 or 3 channels; got shape ", bg));
    DALI_ENFORCE(bg.num_elements() <= kMaxSampleValues, make_string(
        "cmo_paste: sample ", i, ": images of more than ", kMaxSampleValues, " values (2^31 - 1 "
        "less one grid stride of the GPU kernel) are not supported; got shape ", bg));
    if (boxes_[i].box.empty())
      continue;  // nothing is read from this foreground
    const Box &b = boxes_[i].box;
    if (resize_foreground_) {
      DALI_ENFORCE(fg.size() == 3 && fg[0] > 0 && fg[1] > 0 && fg[2] == bg[2] &&
                   fg.num_elements() <= kMaxSampleValues, make_string(
          "cmo_paste: sample ", i, ": with resize_foreground=True the foreground must be a "
          "non-empty HWC region with the background's ", bg[2], " channels and at most ",
          kMaxSampleValues, " values; got shape ", fg));
      continue;
    }
    bool full = fg == bg;
    bool region = fg.size() == 3 && fg[0] == b.y2 - b.y1 && fg[1] == b.x2 - b.x1 && fg[2] == bg[2];
    DALI_ENFORCE(full || (region && spec_.HasTensorArgument("box")), make_string(
        "cmo_paste: sample ", i, ": foreground shape ", fg, " must equal the background shape ",
        bg, spec_.HasTensorArgument("box")
            ? make_string(" or the box extent (", b.y2 - b.y1, ", ", b.x2 - b.x1, ", ", bg[2], ")")
            : std::string()));
  }
}

template <typename Backend>
bool CmoPaste<Backend>::SetupImpl(std::vector<dali::OutputDesc> &output_desc,
                                  const dali::Workspace &ws) {
  const auto &bg = ws.Input<Backend>(0);
  const auto &fg = ws.Input<Backend>(1);
  DALI_ENFORCE(bg.type() == DALI_UINT8 && fg.type() == DALI_UINT8, make_string(
      "cmo_paste: inputs must be uint8 images; got background ", bg.type(), ", foreground ",
      fg.type()));
  const auto &bg_shape = bg.shape();
  int n = bg_shape.num_samples();
  DALI_ENFORCE(fg.shape().num_samples() == n, make_string(
      "cmo_paste: background and foreground batches differ in size: ", n, " vs ",
      fg.shape().num_samples()));
  AcquireBoxes(ws, bg_shape);
  ValidateForeground(bg_shape, fg.shape());
  this->GetPerSampleArgument(mirror_background_, "mirror", ws, n);
  this->GetPerSampleArgument(mirror_foreground_, "foreground_mirror", ws, n);

  dali::TensorListShape<> out_shape = bg_shape;
  if (chw_) {
    for (int i = 0; i < n; i++) {
      auto s = bg_shape[i];
      out_shape.set_tensor_shape(i, dali::TensorShape<>{s[2], s[0], s[1]});
    }
  }
  output_desc.resize(output_box_ ? 3 : 2);
  output_desc[0] = {out_shape, dtype_};
  output_desc[1] = {LambdaOutputShape(n), DALI_FLOAT};
  if (output_box_)
    output_desc[2] = {BoxOutputShape(n), DALI_INT32};
  return true;
}

template <typename Backend>
void CmoPaste<Backend>::PrepareDescs(dali::Workspace &ws) {
  const auto &bg = ws.Input<Backend>(0);
  const auto &fg = ws.Input<Backend>(1);
  auto &out = ws.Output<Backend>(0);
  auto &lam = ws.Output<Backend>(1);
  out.SetLayout(chw_ ? "CHW" : "HWC");
  int n = bg.num_samples();
  descs_.resize(n);
  taps_.clear();
  for (int i = 0; i < n; i++) {
    auto shape = bg.shape()[i];
    PasteSampleDesc &d = descs_[i];
    d.background = bg.template tensor<uint8_t>(i);
    d.out = out.raw_mutable_tensor(i);
    d.lam_out = lam.template mutable_tensor<float>(i);
    d.box_out = output_box_ ? ws.Output<Backend>(2).template mutable_tensor<int32_t>(i) : nullptr;
    d.H = shape[0];
    d.W = shape[1];
    d.C = shape[2];
    d.box = boxes_[i].box;
    d.lam = boxes_[i].lam;
    auto fg_shape = fg.shape()[i];  // any shape where the box is empty: then it is never read
    bool hwc = fg_shape.size() == 3;
    SetForeground(d, fg.template tensor<uint8_t>(i), hwc ? fg_shape[0] : 0,
                  hwc ? fg_shape[1] : 0, resize_foreground_, taps_);
    d.mirror_background = mirror_background_[i] != 0;
    d.mirror_foreground = mirror_foreground_[i] != 0;
    float mean[kMaxChannels], stddev[kMaxChannels];
    ChannelValues(mean_, 0.0f, d.C, "mean", mean);
    ChannelValues(std_, 1.0f, d.C, "std", stddev);
    SetNormalization(d, mean, stddev);
  }
  BindTaps(descs_.data(), descs_.size(), taps_.starts.data(), taps_.weights.data());
}

template <>
void CmoPaste<CPUBackend>::RunImpl(dali::Workspace &ws) {
  PrepareDescs(ws);
  auto &pool = ws.GetThreadPool();
VisitType(dtype_, OutputTypes{}, [&](auto type) {
    using Out = typename decltype(type)::type;
    BOOL_SWITCH(chw_, kCHW, (
      for (const auto &d : descs_)
        pool.AddWork([&d](int) { PasteSampleOnCpu<Out, kCHW>(d); },
                     static_cast<int64_t>(d.H) * d.W);
    ));  // NOLINT
  });
  pool.RunAll();
}

template class CmoPaste<CPUBackend>;
#if DALI_CMO_WITH_CUDA
template class CmoPaste<dali::GPUBackend>;
#endif

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoPaste, ::dali_cmo::CmoPaste<::dali::CPUBackend>, ::dali::CPU);

DALI_SCHEMA(CmoPaste)
    .DocStr(R"(CMO paste (context-rich minority oversampling, Park et al., CVPR 2022).

Pastes a CutMix box of each foreground onto the background at the same position of the batch,
and emits the exact background share ``lam`` of every output, so that the training loss is
``lam * L(out, y_background) + (1 - lam) * L(out, y_foreground)``. The box is drawn as in
``cmo_box`` (one per batch by default, as in the reference code), or taken from the ``box``
argument.

The paste is fused with the end of a training pipeline: independent horizontal flips of
background and foreground (``mirror``, ``foreground_mirror``), normalisation
``(x - mean) / std``, output ``dtype`` and ``output_layout``, as ``crop_mirror_normalize``
does. With the defaults (uint8, "HWC", no mean/std) the output is the pure paste.

Outputs: ``images``, ``lam`` (float32 scalar per sample, 1.0 where nothing was pasted) and,
with ``output_box=True``, ``box`` (int32 ``[y1, x1, y2, x2]``, zeros where nothing was pasted).)")
    .NumInput(2)
    .InputDox(0, "background", "TensorList of uint8 HWC images",
              "Backgrounds (in CMO: drawn from the data distribution).")
    .InputDox(1, "foreground", "TensorList of uint8 HWC images", R"(Foregrounds (in CMO: drawn
from the minority-weighted distribution), paired with the backgrounds by position. Each has the
background's shape, or, when ``box`` is given, the shape of its box (a region-only decode), or,
with ``resize_foreground``, any shape (resampled to the box).)")
    .InputLayout(0, "HWC")
    .InputLayout(1, "HWC")
    .NumOutput(2)
    .AdditionalOutputsFn([](const dali::OpSpec &spec) {
      return spec.GetArgument<bool>("output_box") ? 1 : 0;
    })
    .AddOptionalArg<int>("box", R"(Boxes ``[y1, x1, y2, x2]`` to paste (e.g. from ``cmo_box``)
instead of drawing them; ``alpha``, ``probability`` and ``per_sample`` are then unused.)",
                         nullptr, true)
    .AddOptionalArg("mirror", "Flip the background horizontally (per sample, 0 or 1).", 0, true)
    .AddOptionalArg("foreground_mirror", "Flip the foreground horizontally before pasting "
                    "(per sample, 0 or 1).", 0, true)
    .AddOptionalArg("mean", "Per-channel mean subtracted from the output (1 or C values).",
                    std::vector<float>{})
    .AddOptionalArg("std", "Per-channel standard deviation dividing the output (1 or C values).",
                    std::vector<float>{})
    .AddOptionalTypeArg("dtype", "Output type, one of: " + ::dali_cmo::TypeNames(
                        ::dali_cmo::OutputTypes{}) + ".", DALI_UINT8)
    .AddOptionalArg("output_layout", "Output layout: \"HWC\" or \"CHW\".", std::string("HWC"))
    .AddOptionalArg("output_box", "Add a third output with the pasted boxes.", false)
    .AddOptionalArg("resize_foreground", R"(Each foreground is the source region of its box, of
any size (e.g. a region-only decode from ``cmo_region``), and is resampled to the box's size
while it is pasted, with ``fn.resize``'s default filter: linear, antialiased when shrinking (a
triangle of radius ``in / out``), edges clamped. This replaces ``fn.resize(region,
size=box_size)`` before the paste and keeps its values in float (no rounding to uint8 in between).
Needs ``box``.)", false)
    .AddParent("CmoBoxSampling")
    .AddRandomSeedArg()
    .AddRandomStateArg();
