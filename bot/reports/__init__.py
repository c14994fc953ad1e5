"""Results over a date range: the funnel, intents, promises, handoffs, templates and the
gate's refusals, read from what the store keeps (``collect``), shown by the console's
dashboard and written as CSV or one standalone HTML file (``render``, ``smsbot report``)."""
