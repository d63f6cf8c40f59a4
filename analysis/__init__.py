"""gansweep: analysis."""
