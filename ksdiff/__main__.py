import sys

from ksdiff.cli import main

sys.exit(main())
