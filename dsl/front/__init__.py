"""The language's front end: tokens, the grammar, the syntax tree, parse errors by example."""
