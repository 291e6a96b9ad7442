import sys

from omnibyte.cli import main

sys.exit(main())
