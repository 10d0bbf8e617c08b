import sys

from keras_interp.cli import main

sys.exit(main())
