"""Jinja2 templates shipped as package data (PR bodies, check summaries, pages)."""
