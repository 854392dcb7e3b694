"""The fan-out benchmark (``make bench``): marketcast against its baselines in one run.

Modules: ``runner`` (command line, orchestration), ``scenarios`` (what is run), ``cases``
(one scenario against one server), ``server`` and ``targets`` (the server-under-test process
and the servers themselves), ``publisher`` (the load inside the server), ``client`` and
``rawws`` (client load processes), ``stats`` (histograms, /proc), ``report`` (tables, ratios,
the JSON line), ``procs`` and ``common`` (plumbing shared by the processes), ``books`` (the
``book_levels`` scenario's order books, levels frames and stamps). Method and latest
figures: ``docs/performance.md``.

``--abuse`` runs the abuse scenario instead (issue 19): ``abuse`` (orchestration),
``bystander`` (the measured client), ``attacks`` / ``attacks_http`` / ``attacks_ws`` /
``attack_kit`` (the attacks), ``abuse_stats`` / ``abuse_report`` (figures, verdicts, JSON),
``rawhttp`` (a bounded HTTP/1.1 client).
"""
