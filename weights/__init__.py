"""The model zoo manifest (manifest.toml), shipped inside the wheel as package data."""
