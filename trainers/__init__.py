"""gansweep: trainers."""
