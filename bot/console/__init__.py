"""The agents' web console (``/console``): sign-in, sessions, CSRF, roles and the page shell.

``app.setup`` wires it into ``create_app``; ``auth`` is the guard (sessions, CSRF, roles,
``current_agent``); ``signin`` the attempt limits and the password check; ``views`` the pages
and the JSON API; ``agents`` what can be done to an agent; ``cli`` the ``smsbot agents``
commands. Nothing is imported here, so ``smsbot agents`` stays cheap to start.
"""
