"""Campaigns: a lender's file of accounts read (rows.py, columns.py), imported and released at a
pace into the normal send path (service.py), followed to payment (status, export)."""
