"""The send side: outbound records and their state machine (``record``), the gate step that
reserves sends under the account's lock (``dispatch``), the senders that call carriers off the
lock (``sender``), rate limits (``ratelimit``), carrier adapters (``carriers``) and delivery
receipts (``receipts``). The inbound side (``bot.pipeline``) hands it committed messages."""
