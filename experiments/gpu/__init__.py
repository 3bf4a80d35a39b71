"""The GPU check and the GPU study: one prepared, time-boxed script each for a short loan of one
GPU on an offline machine (``bash launch/gpu_check.sh``, ``bash launch/gpu_study.sh``; each has a
``--dry-run`` on CPU that CI runs). Research around ds_w2v, not in the wheel; see docs/benchmarks.md."""
