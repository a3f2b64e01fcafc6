import sys

from chariotd.sim.main import main

sys.exit(main())
