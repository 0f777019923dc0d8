// cmo_box: samples the CMO boxes ahead of the paste, so that a pipeline can decode only the
// region of a foreground that will be pasted and hand the box to cmo_paste(..., box=...).
#ifndef DALI_CMO_CMO_BOX_H_
#define DALI_CMO_CMO_BOX_H_

#include <vector>

#include "box_sampling.h"
#include "dali/operators/random/rng_base.h"
#include "dali/pipeline/operator/operator.h"

namespace dali_cmo {

/** Boxes and lambdas as cmo_paste would draw them, without touching any pixels. */
class CmoBox : public dali::rng::OperatorWithRng<dali::Operator<dali::CPUBackend>> {
 public:
  explicit CmoBox(const dali::OpSpec &spec)
      : OperatorWithRng(spec), per_sample_(spec.GetArgument<bool>("per_sample")) {}

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override;
  void RunImpl(dali::Workspace &ws) override;

 private:
  bool per_sample_;
  dali::TensorListShape<2> sizes_;
  std::vector<float> alpha_, probability_;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_BOX_H_
