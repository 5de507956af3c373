"""pyqtgraph views: created once, updated in place."""

import pyqtgraph as pg

# One axis order for every image in the app: rows are y. Set before any ImageItem exists.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
