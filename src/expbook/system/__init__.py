"""System metrics: what the machine did while a run ran, recorded under ``system/`` keys.

- ``readings``: one sample of the process tree (psutil) and the GPUs it uses (NVML);
- ``coarsen``: which samples become stored points, so a run of days keeps a bounded number;
- ``sampler``: the background thread that samples a run (``start_run``, ``expbook run``'s
  recorder);
- ``summary``: the lines people used to write by hand ("GPU 0: util 21 % mean / 64 % peak").

Nothing here is imported by ``import expbook``; psutil and pynvml load in the sampler's thread.
See docs/system.md.
"""
