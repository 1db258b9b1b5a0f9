"""The park-factory energy edge agent."""

__version__ = "0.1.0"
