"""Channel families: one module per family declares everything that differs between them."""
