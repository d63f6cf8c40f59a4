"""gansweep: search_spaces."""
