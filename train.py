"""Long-tailed training with CMO on DALI (the full trainer lands with the trainer work).

For now `python train.py` checks the install end to end: it loads the operator library and
runs one CMO paste on the CPU.
"""
import numpy as np
from nvidia.dali import fn, pipeline_def

import dali_cmo


def main() -> None:
    library = dali_cmo.load_plugin()

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, seed=0)
    def smoke():
        bg, fg = (fn.external_source(source=[[np.full((8, 8, 3), v, np.uint8)] * 4], cycle=True,
                                     layout="HWC") for v in (0, 255))
        return tuple(fn.cmo_paste(bg, fg, per_sample=True))

    pipe = smoke()
    pipe.build()
    _, lam = pipe.run()
    print(f"dali-cmo {dali_cmo.__version__}: operators loaded from {library}; "
          f"one paste ran, lam = {[round(float(np.array(x)), 3) for x in lam]}")


if __name__ == "__main__":
    main()
