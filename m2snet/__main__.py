import sys

from m2snet.cli import main

sys.exit(main())
