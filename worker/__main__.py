"""``python -m worker``: what the Procfile's worker process runs."""

import sys

from worker.serve import main

sys.exit(main())
