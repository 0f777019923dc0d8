// cmo_region: the source window a region-only decode of a foreground must read, so that the
// decoded window resized to its box equals the box's part of the foreground's
// random-resized-crop. One operator instead of a dozen arithmetic nodes per sample.
#ifndef DALI_CMO_CMO_REGION_H_
#define DALI_CMO_CMO_REGION_H_

#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"

namespace dali_cmo {

/**
 * Inputs: the crop window (anchor, shape) of a random-resized-crop in source pixels and the box
 * drawn by cmo_box in the size x size output. Outputs the window's part under the box (start,
 * extent, in source pixels, columns mirrored with the foreground's flip) and the box's size.
 */
class CmoRegion : public dali::StatelessOperator<dali::CPUBackend> {
 public:
  explicit CmoRegion(const dali::OpSpec &spec);

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override;
  void RunImpl(dali::Workspace &ws) override;

 private:
  int size_;
  std::vector<int> mirror_;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_REGION_H_
