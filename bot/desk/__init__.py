"""The agent console's case queue, as a library: cases opened by the flow's handoffs, the
queue agents work from, their actions on a case (each an audited event through the account's
queue), SLA expiry, unmatched messages and a live feed. The web layer (``bot/console``) calls
:mod:`bot.desk.service` with the signed-in agent's name and role."""
