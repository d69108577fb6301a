"""The built-in functions: their table (types, cost, docs) and the helpers generated code calls."""
