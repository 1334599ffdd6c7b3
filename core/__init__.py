"""The message core of bdc-hub: envelope, errors, configuration, messages to people."""
