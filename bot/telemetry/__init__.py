"""Operating the service: Prometheus metrics (``metrics``), the ``/metrics`` endpoint and the
request middleware (``endpoint``), JSON log lines with personal data masked (``logs``)."""
