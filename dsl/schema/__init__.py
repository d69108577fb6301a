"""The input schema: the field table, the value types, airports and time zones."""
