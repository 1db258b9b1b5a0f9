"""Energy as money and carbon: tariffs (time of use) and grid emission factors, as data."""
