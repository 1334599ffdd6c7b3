"""The assembly floor: the running hub and its inputs under one lifecycle.

``app.service.HubService`` assembles a hub from a loaded config (route
workers, the inbound web server, pollers, the diode inbox watch) and starts
and stops them as one. ``hub run`` and ``hub demo`` use it; the Docker image
runs ``hub run``.
"""
