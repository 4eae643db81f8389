"""The web app and its JSON API."""
