"""Inbound web layer: the JSON API and the SOAP endpoint that feed the hub.

``web.app.create_app(hub, config)`` builds the WSGI application;
``web.server.serve(app, host, port, threads)`` runs it in production on the
event-loop server ``web.loopserver``. The
application talks to the rest of the hub only through ``web.ports.HubPort``.
"""
