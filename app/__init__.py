"""The assembly floor: the running hub and its inputs under one lifecycle.

``app.service.HubService`` assembles a hub from a loaded config: the route
workers and the inputs of ``app.inputs`` (the inbound web server, the
pollers, the diode inbox watch, the ferry inbox watch), started in that order
and stopped in reverse. ``hub run`` (``app.cli``) and ``hub demo`` use it; the
Docker image runs ``hub run``.
"""
