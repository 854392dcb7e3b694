"""Soaks: a real ``marketcast serve`` run for minutes against a faulty fake upstream, checked
all along (``python -m scripts.soak``: the order books, ``orderbook``); ``serve`` starts the
server, for the soaks and for the integration tests' harness alike."""
