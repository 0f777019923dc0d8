// cmo_paste on the GPU: one batched kernel launch per iteration on the operator's stream.
// Box sampling and argument handling are the CPU operator's (cmo_paste.cc), so both backends
// produce the same boxes for the same seed.
#include "cmo_paste.h"

#include <algorithm>

#include "dali/core/cuda_error.h"
#include "dali/core/static_switch.h"
#include "dali/kernels/dynamic_scratchpad.h"

namespace dali_cmo {

namespace {

constexpr int kBlockSize = 256;
constexpr int kPixelsPerThread = 4;

/** blockIdx.y picks the sample; the blocks along x stride over its pixels. */
template <typename Out, bool kCHW>
__global__ void PasteKernel(const PasteSampleDesc *descs) {
  const PasteSampleDesc &d = descs[blockIdx.y];
  int64_t num_pixels = static_cast<int64_t>(d.H) * d.W;
  for (int64_t p = blockIdx.x * blockDim.x + threadIdx.x; p < num_pixels;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int y = static_cast<int>(p / d.W), x = static_cast<int>(p % d.W);
    PastePixel<Out, kCHW>(d, y, x);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    *d.lam_out = d.lam;
    if (d.box_out) {
      d.box_out[0] = d.box.y1; d.box_out[1] = d.box.x1;
      d.box_out[2] = d.box.y2; d.box_out[3] = d.box.x2;
    }
  }
}

}  // namespace

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
  const PasteSampleDesc *gpu_descs = scratchpad.ToGPU(stream, descs_);
  int blocks = static_cast<int>(std::min<int64_t>(
      (max_pixels + kBlockSize * kPixelsPerThread - 1) / (kBlockSize * kPixelsPerThread), 1024));
  dim3 grid(blocks, n);
  VisitType(dtype_, OutputTypes{}, [&](auto type) {
    using Out = typename decltype(type)::type;
    BOOL_SWITCH(chw_, kCHW, (
      PasteKernel<Out, kCHW><<<grid, kBlockSize, 0, stream>>>(gpu_descs);
    ));  // NOLINT
  });
  CUDA_CALL(cudaGetLastError());
}

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoPaste, ::dali_cmo::CmoPaste<::dali::GPUBackend>, ::dali::GPU);
