"""Named rule sets and thresholds (TOML), read with importlib.resources."""
