"""Modbus TCP driver. pymodbus is imported only in `client.py` (and the simulators)."""
