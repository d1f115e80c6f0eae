"""cli: the bbzip command line."""
