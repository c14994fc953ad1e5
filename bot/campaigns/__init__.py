"""Campaigns: a lender's file of accounts released at a pace into the normal send path."""
