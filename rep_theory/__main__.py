import sys

from rep_theory.cli import main

sys.exit(main())
