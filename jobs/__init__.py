"""gansweep: jobs."""
