"""Step definitions, grouped by domain; each step parses its text, calls drkit and records."""
