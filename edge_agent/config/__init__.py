"""Site configuration: schema (`schema`), loading with located errors (`loader`), and the
device catalogue (`catalogue`). Nothing is imported here, so that driver config models can
build on `config.base` without an import cycle."""
