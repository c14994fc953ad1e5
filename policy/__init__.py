"""The content policy as a library: rule packs, lexicons, meaning rules and the content checker.

Both the flow validator (``dialogs``) and the send-time gate (``bot.compliance``) use it, so the
same rule with the same id judges a template when it is written and a text when it leaves.
Imports only ``common``.
"""
