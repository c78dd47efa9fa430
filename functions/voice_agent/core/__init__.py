"""Framework-free core: takes and returns plain typed values, never sees an event dict or boto3."""
