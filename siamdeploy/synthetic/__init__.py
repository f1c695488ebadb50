"""Generated tracking sequences with exact ground truth."""
