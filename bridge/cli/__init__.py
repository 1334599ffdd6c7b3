"""The bridge's commands, ``hub bridge …`` (the diode) and ``hub ferry …`` (the
disc ferry). They sit above both transports and ``bridge.publish`` (their
``--publish`` puts what crossed on the hub), so neither transport imports
back up into the glue."""
