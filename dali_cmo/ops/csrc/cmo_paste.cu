// cmo_paste on the GPU: one batched kernel launch per iteration on the operator's stream.
// Box sampling and argument handling are the CPU operator's (cmo_paste.cc), and the per-pixel
// code is paste_pixel.h, so both backends produce the same boxes and the same bits.
#include "cmo_paste.h"

#include <algorithm>

#include "dali/core/cuda_error.h"
#include "dali/core/static_switch.h"
#include "dali/kernels/dynamic_scratchpad.h"
#include "paste_kernel.cuh"

namespace dali_cmo {

template <>
void CmoPaste<dali::GPUBackend>::RunImpl(dali::Workspace &ws) {
  PrepareDescs(ws);
  int n = static_cast<int>(descs_.size());
  if (n == 0)
    return;
  int64_t max_pixels = 1;
  for (const auto &d : descs_)
    max_pixels = std::max<int64_t>(max_pixels, static_cast<int64_t>(d.H) * d.W);
  cudaStream_t stream = ws.stream();
  dali::kernels::DynamicScratchpad scratchpad(stream);
  if (!taps_.starts.empty()) {  // the kernel reads the resampling taps from device memory
    auto [starts, weights] = scratchpad.ToContiguousGPU(stream, taps_.starts, taps_.weights);
    BindTaps(descs_.data(), descs_.size(), starts, weights);
  }
  const PasteSampleDesc *gpu_descs = scratchpad.ToGPU(stream, descs_);
  VisitType(dtype_, OutputTypes{}, [&](auto type) {
    using Out = typename decltype(type)::type;
    BOOL_SWITCH(chw_, kCHW, (
      LaunchPaste<Out, kCHW>(gpu_descs, n, max_pixels, stream);
    ));  // NOLINT
  });
  CUDA_CALL(cudaGetLastError());
}

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoPaste, ::dali_cmo::CmoPaste<::dali::GPUBackend>, ::dali::GPU);
