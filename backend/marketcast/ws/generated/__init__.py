"""Routers rendered from ``ws/generic.py.j2`` — generated, do not edit."""
