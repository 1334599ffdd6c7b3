"""Routes: the YAML route language and its execution on the message backbone."""
