"""Buses: how a published update reaches the hubs of every worker."""
