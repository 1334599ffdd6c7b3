"""Inbound web layer: the JSON API and the SOAP endpoint that feed the hub.

``web.app.create_app(hub, config)`` builds the WSGI application; its front
doors (the JSON handlers in ``web.app``, ``web.soap``) read their wire format
and hand every message through ``web.intake``, the one way into the hub, built
on ``web.http`` (request, refusal, answers) and ``web.signing``.
``web.server.serve(app, host, port, threads)`` runs it in production on the
event-loop server ``web.loopserver``. The application talks to the rest of the
hub only through ``web.ports.HubPort``.
"""
