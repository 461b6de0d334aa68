"""Error types that several modules raise; kept here, importing nothing of the package, so that the
modules raising them need not import each other (``catalogue`` uses ``crossmatch`` and ``neighbours``,
which raise ``CatalogueError`` too)."""


class CatalogueError(ValueError):
    """A catalogue that cannot be used as given; the message names the row or column."""
