"""``python -m scripts.soak``: the order-book soak (``scripts.soak.orderbook``)."""

from .orderbook import main

raise SystemExit(main())
