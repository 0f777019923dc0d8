// The cmo_paste kernel launch run on the host: every (block, thread) of the grid that
// LaunchPaste (paste_kernel.cuh) would start calls PasteKernelBody (paste_pixel.h), in order.
// Used by the CPU test (kernel_emulation.cc, through ctypes) and the standalone kernel check's
// CPU mode (kernel_check.cu), so that a CPU machine runs the kernel's own index arithmetic.
#ifndef DALI_CMO_TESTS_EMULATE_GRID_H_
#define DALI_CMO_TESTS_EMULATE_GRID_H_

#include <algorithm>
#include <cstdint>

#include "paste_pixel.h"

namespace dali_cmo {

/** All threads of the grid LaunchPaste starts for these samples, one after another. */
template <typename Out, bool kCHW>
void EmulatePasteLaunch(const PasteSampleDesc *descs, int num_samples) {
  int64_t max_pixels = 1;
  for (int i = 0; i < num_samples; i++)
    max_pixels = std::max<int64_t>(max_pixels, static_cast<int64_t>(descs[i].H) * descs[i].W);
  const int blocks = PasteBlocksPerSample(max_pixels);
  for (int sample = 0; sample < num_samples; sample++)
    for (int block = 0; block < blocks; block++)
      for (int thread = 0; thread < kBlockSize; thread++)
        PasteKernelBody<Out, kCHW>(descs, ThreadPosition{block, sample, thread, kBlockSize,
                                                         blocks});
}

}  // namespace dali_cmo

#endif  // DALI_CMO_TESTS_EMULATE_GRID_H_
