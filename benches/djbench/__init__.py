"""The benchmark's Django project: settings per engine, the `shop` app, seeding, one JSON view."""
