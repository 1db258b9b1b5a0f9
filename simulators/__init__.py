"""Simulated plant equipment served over the real protocols, on the injectable clock."""
