"""OPC UA driver. asyncua is imported only in `session.py` (and the simulators)."""
