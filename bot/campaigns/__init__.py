"""Campaigns: lenders' account files imported and released to the bot (issue 12)."""
