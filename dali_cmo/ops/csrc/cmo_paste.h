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
#include "dali/operators/random/rng_base.h"
#include "dali/pipeline/operator/operator.h"
#include "paste_pixel.h"

namespace dali_cmo {

template <typename... T>
struct TypeList {};

/** The output types of cmo_paste, named once: the `dtype` check, its doc and both backends use
 *  it. (Half is float16 as its bits: the per-pixel code needs no DALI type.) */
using OutputTypes = TypeList<uint8_t, float, Half>;

template <typename T>
constexpr dali::DALIDataType kTypeId = dali::type2id<T>::value;
template <>
constexpr dali::DALIDataType kTypeId<Half> = DALI_FLOAT16;

/**
 * Calls `visit(std::type_identity<Out>{})` for the type Out of `types` whose DALI id is `dtype`;
 * returns false (calling nothing) when `dtype` is not in the list.
 */
template <typename Visit, typename... T>
bool VisitType(dali::DALIDataType dtype, TypeList<T...>, Visit &&visit) {
  return ((dtype == kTypeId<T> && (visit(std::type_identity<T>{}), true)) || ...);
}

/** The names of `types`, e.g. "uint8, float, float16" (for docs and error messages). */
template <typename... T>
std::string TypeNames(TypeList<T...>) {
  std::string names;
  ((names += std::string(names.empty() ? "" : ", ") + dali::GetBuiltinTypeName(kTypeId<T>)), ...);
  return names;
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

  /** Fills descs_ (and taps_) with the pointers of this iteration's inputs and outputs. */
  void PrepareDescs(dali::Workspace &ws);

  /** The boxes: from the `box` argument, else sampled. */
  void AcquireBoxes(const dali::Workspace &ws, const dali::TensorListShape<> &bg_shape);
  void ValidateForeground(const dali::TensorListShape<> &bg_shape,
                          const dali::TensorListShape<> &fg_shape) const;

  bool per_sample_;
  bool output_box_;
  bool resize_foreground_;
  bool chw_;
  dali::DALIDataType dtype_;
  std::vector<float> mean_, std_;
  std::vector<float> alpha_, probability_;
  std::vector<int> mirror_background_, mirror_foreground_;
  std::vector<BoxSample> boxes_;
  std::vector<PasteSampleDesc> descs_;
  TapTable taps_;  // the resampled boxes' taps, which descs_ point at
};

template <>
void CmoPaste<dali::CPUBackend>::RunImpl(dali::Workspace &ws);
#if DALI_CMO_WITH_CUDA
template <>
void CmoPaste<dali::GPUBackend>::RunImpl(dali::Workspace &ws);
#endif

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_PASTE_H_
