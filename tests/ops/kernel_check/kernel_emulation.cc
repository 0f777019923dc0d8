// ctypes entry point for tests/ops/test_kernel_emulation.py: the cmo_paste kernel's body run on
// the host over the simulated grid (emulate_grid.h), for one batch described by flat arrays.
#include <cstdint>
#include <vector>

#include "emulate_grid.h"
#include "paste_pixel.h"

namespace {

using dali_cmo::Half;
using dali_cmo::PasteSampleDesc;

template <typename Out>
void Run(const PasteSampleDesc *descs, int n, bool chw) {
  if (chw)
    dali_cmo::EmulatePasteLaunch<Out, true>(descs, n);
  else
    dali_cmo::EmulatePasteLaunch<Out, false>(descs, n);
}

}  // namespace

extern "C" {

/**
 * Pastes n samples as the GPU kernel would. Per sample i: shape[3 i .. 3 i + 2] = (H, W, C),
 * box[4 i ..] = (y1, x1, y2, x2), fg_shape[2 i ..] = the foreground's (height, width), mirror[2 i ..]
 * = (background, foreground), mean/stddev[3 i ..], pointers background[i], foreground[i], out[i],
 * lam[i] (float), box_out[i] (4 int32). dtype: 0 uint8, 1 float32, 2 float16; resample: the
 * operator's resize_foreground. Returns 0.
 */
int emulate_paste(int n, const int32_t *shape, const int32_t *box, const int32_t *fg_shape,
                  const int32_t *mirror, const float *mean, const float *stddev,
                  const float *lam, const uint8_t *const *background,
                  const uint8_t *const *foreground, void *const *out, float *const *lam_out,
                  int32_t *const *box_out, int dtype, int chw, int resample) {
  std::vector<PasteSampleDesc> descs(n);
  dali_cmo::TapTable taps;
  for (int i = 0; i < n; i++) {
    PasteSampleDesc &d = descs[i];
    d.background = background[i];
    d.out = out[i];
    d.lam_out = lam_out[i];
    d.box_out = box_out[i];
    d.H = shape[3 * i];
    d.W = shape[3 * i + 1];
    d.C = shape[3 * i + 2];
    d.box = {box[4 * i], box[4 * i + 1], box[4 * i + 2], box[4 * i + 3]};
    d.lam = lam[i];
    dali_cmo::SetForeground(d, foreground[i], fg_shape[2 * i], fg_shape[2 * i + 1],
                            resample != 0, taps);
    d.mirror_background = mirror[2 * i] != 0;
    d.mirror_foreground = mirror[2 * i + 1] != 0;
    dali_cmo::SetNormalization(d, mean + 3 * i, stddev + 3 * i);
  }
  dali_cmo::BindTaps(descs.data(), descs.size(), taps.starts.data(), taps.weights.data());
  if (dtype == 0)
    Run<uint8_t>(descs.data(), n, chw != 0);
  else if (dtype == 1)
    Run<float>(descs.data(), n, chw != 0);
  else
    Run<Half>(descs.data(), n, chw != 0);
  return 0;
}

}  // extern "C"
