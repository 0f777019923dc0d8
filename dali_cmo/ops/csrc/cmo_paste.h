// cmo_paste: pastes the CMO box of a foreground onto a background, fused with the flip,
// normalisation, layout and type conversion that a training pipeline ends with anyway
// (what crop_mirror_normalize would do), so CMO adds no memory pass over the baseline.
#ifndef DALI_CMO_CMO_PASTE_H_
#define DALI_CMO_CMO_PASTE_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "box_sampling.h"
#include "dali/core/convert.h"
#include "dali/core/float16.h"
#include "dali/core/host_dev.h"
#include "dali/operators/random/rng_base.h"
#include "dali/pipeline/operator/operator.h"

namespace dali_cmo {

constexpr int kMaxChannels = 3;

template <typename... T>
struct TypeList {};

/** The output types of cmo_paste, named once: the `dtype` check and both backends use it. */
using OutputTypes = TypeList<uint8_t, float, dali::float16>;

/**
 * Calls `visit(std::type_identity<Out>{})` for the type Out of `types` whose id is `dtype`;
 * returns false (calling nothing) when `dtype` is not in the list.
 */
template <typename Visit, typename... T>
bool VisitType(dali::DALIDataType dtype, TypeList<T...>, Visit &&visit) {
  return ((dtype == dali::type2id<T>::value && (visit(std::type_identity<T>{}), true)) || ...);
}

/** The names of `types`, e.g. "uint8, float, float16" (for error messages). */
template <typename... T>
std::string TypeNames(TypeList<T...>) {
  std::string names;
  ((names += std::string(names.empty() ? "" : ", ") +
             dali::GetBuiltinTypeName(dali::type2id<T>::value)), ...);
  return names;
}

/** Everything needed to produce one output sample; plain data, copied to the GPU as is. */
struct PasteSampleDesc {
  const uint8_t *background;  // H x W x C
  const uint8_t *foreground;  // fg_h x fg_w x C; its pixel (0, 0) lands on (fg_y0, fg_x0)
  void *out;                  // H x W x C or C x H x W
  float *lam_out;
  int32_t *box_out;           // [y1, x1, y2, x2] or nullptr
  int32_t H, W, C;
  Box box;
  int32_t fg_y0, fg_x0, fg_h, fg_w;
  bool mirror_background, mirror_foreground;
  float lam;
  float mean[kMaxChannels], inv_std[kMaxChannels];
};

/** The input pixel (all its channels) that output pixel (y, x) is made from. */
DALI_HOST_DEV inline const uint8_t *SourcePixel(const PasteSampleDesc &d, int y, int x) {
  if (y >= d.box.y1 && y < d.box.y2 && x >= d.box.x1 && x < d.box.x2) {
    int fx = x - d.fg_x0;
    if (d.mirror_foreground)
      fx = d.fg_w - 1 - fx;
    return d.foreground + (static_cast<int64_t>(y - d.fg_y0) * d.fg_w + fx) * d.C;
  }
  int bx = d.mirror_background ? d.W - 1 - x : x;
  return d.background + (static_cast<int64_t>(y) * d.W + bx) * d.C;
}

/** Writes output pixel (y, x): (value - mean) / std, converted with saturation. */
template <typename Out, bool kCHW>
DALI_HOST_DEV inline void PastePixel(const PasteSampleDesc &d, int y, int x) {
  const uint8_t *src = SourcePixel(d, y, x);
  Out *out = static_cast<Out *>(d.out);
  int64_t plane = static_cast<int64_t>(d.H) * d.W;
  int64_t pixel = static_cast<int64_t>(y) * d.W + x;
  for (int c = 0; c < d.C; c++) {
    Out v = dali::ConvertSat<Out>((src[c] - d.mean[c]) * d.inv_std[c]);
    if (kCHW)
      out[c * plane + pixel] = v;
    else
      out[pixel * d.C + c] = v;
  }
}

template <typename Backend>
class CmoPaste : public dali::rng::OperatorWithRng<dali::Operator<Backend>> {
 public:
  explicit CmoPaste(const dali::OpSpec &spec);

 protected:
  using Base = dali::rng::OperatorWithRng<dali::Operator<Backend>>;
  using Base::spec_;

  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override;
  void RunImpl(dali::Workspace &ws) override;

  /** Fills descs_ with the pointers of this iteration's inputs and outputs. */
  void PrepareDescs(dali::Workspace &ws);

  /** The boxes: from the `box` argument, else sampled. */
  void AcquireBoxes(const dali::Workspace &ws, const dali::TensorListShape<> &bg_shape);
  void ValidateForeground(const dali::TensorListShape<> &bg_shape,
                          const dali::TensorListShape<> &fg_shape) const;

  bool per_sample_;
  bool output_box_;
  bool chw_;
  dali::DALIDataType dtype_;
  std::vector<float> mean_, std_;
  std::vector<float> alpha_, probability_;
  std::vector<int> mirror_background_, mirror_foreground_;
  std::vector<BoxSample> boxes_;
  std::vector<PasteSampleDesc> descs_;
};

template <>
void CmoPaste<dali::CPUBackend>::RunImpl(dali::Workspace &ws);
#if DALI_CMO_WITH_CUDA
template <>
void CmoPaste<dali::GPUBackend>::RunImpl(dali::Workspace &ws);
#endif

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_PASTE_H_
