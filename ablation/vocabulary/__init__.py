"""Words of the service, defined once and importable without torch, Ray, MLflow or pydantic."""
