"""Step kinds that know real-estate registration (domain code, unlike the
generic steps beside them in ``routes.steps``): they read the canonical
application and speak the guide's business language."""
