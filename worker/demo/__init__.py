"""``routeq demo``: routeq end to end on an embedded default (the emulator in-process, a worker task,
Redis at ``REDIS_URL`` or an in-process stand-in), under the fixed prefix ``routeq-demo:``.

- :mod:`worker.demo.basic`: a mixed set of jobs and how each was routed;
- :mod:`worker.demo.adaptive`: the learn-from-outcomes loop (experiment, feedback, report,
  suggest, new rules, a second round);
- :mod:`worker.demo.housekeeping`: the prefix, its TTLs, ``routeq demo --clean``.
"""

from worker.demo.housekeeping import DEMO_PREFIX

__all__ = ["DEMO_PREFIX"]
