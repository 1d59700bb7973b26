"""Archives and service records from the upstream public-health system."""
