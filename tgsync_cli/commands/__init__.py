"""CLI commands, split by area; each parses, calls one core function, renders."""
