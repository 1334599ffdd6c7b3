"""One module per simulated department."""
