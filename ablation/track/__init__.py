"""MLflow tracking: the names every run uses, and the writer the driver uses."""
