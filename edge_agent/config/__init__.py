"""Site configuration: schema, loading with located errors, and the device catalogue."""

from .loader import ConfigError, Problem, load_site
from .schema import SiteConfig

__all__ = ["ConfigError", "Problem", "SiteConfig", "load_site"]
