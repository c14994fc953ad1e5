"""Every Redis key smsbot uses, built in one place (as arq keeps its key prefixes together).

Layout (everything starts with ``smsbot:``):

Per account, all under the hash tag ``{acc:<id>}`` so that one account's keys share one Redis
Cluster slot and every multi-key script of an account (enqueue + de-duplication claim, commit)
touches a single slot:

- ``smsbot:{acc:<id>}:account``        string  the AccountRecord (JSON)
- ``smsbot:{acc:<id>}:queue``          list    unprocessed QueuedEvents, oldest first (JSON)
- ``smsbot:{acc:<id>}:seen:<dedup>``   string  a de-duplication claim (expires, see redis.py)
- ``smsbot:{acc:<id>}:conversation``   string  the dialog engine's conversation (JSON)
- ``smsbot:{acc:<id>}:audit``          list    AuditEntries, oldest first: one JSON array per
  write (an event's commit, a gate decision); a single JSON object is one entry (older data)
- ``smsbot:{acc:<id>}:outbox``         list    unsent Outbound messages, oldest first (JSON)
- ``smsbot:{acc:<id>}:lock``           string  the per-account lock's owner token (expires)
- ``smsbot:{acc:<id>}:meta``           hash    small per-account facts (borrower preferences)
- ``smsbot:{acc:<id>}:deferred``       list    Outbound messages the compliance gate deferred
- ``smsbot:{acc:<id>}:outbound``       hash    message id -> OutboundRecord (JSON) past the outbox
  (gated or later; bot.outbound.record); the outbox holds the ``queued`` ones
- ``smsbot:{acc:<id>}:case``           hash    the account's open case (bot.desk.case.Case's
  fields, times ISO 8601, ``rank`` and ``sla_us`` as numbers for the scripts); absent: none.
  Opened, raised and resolved only in the commit script, with the event that did it
- ``smsbot:{acc:<id>}:case:log``       list    the open case's history and notes (CaseEntry JSON)
- ``smsbot:{acc:<id>}:case:<case id>``      hash  a resolved case, as it was when resolved
  (renamed from ``case`` in the resolving commit)
- ``smsbot:{acc:<id>}:case:<case id>:log``  list  its history and notes (renamed likewise)
- ``smsbot:{acc:<id>}:cases``          list    ids of the account's resolved cases, oldest first
- ``smsbot:{acc:<id>}:campaigns``      set     ids of the campaigns the account is a member of
  (written before the campaign's own step adds it: an extra entry is harmless)

Per campaign (bot.storage.redis_campaigns), all under the hash tag ``{cmp:<id>}`` so that each
step of a campaign is one script in one slot:

- ``smsbot:{cmp:<id>}:campaign``       hash    the Campaign's fields (times ISO 8601), ``seq``
- ``smsbot:{cmp:<id>}:members``        zset    account id -> import order (every member)
- ``smsbot:{cmp:<id>}:pending``        list    account ids not taken for release yet, in order
- ``smsbot:{cmp:<id>}:releasing``      zset    account id -> when taken (µs): start not yet
  confirmed submitted; the release step re-submits entries older than its lease
- ``smsbot:{cmp:<id>}:released``       set     account ids whose start event was submitted

Global (each in its own slot; never combined with per-account keys in one script; see "Redis
Cluster" below):

- ``smsbot:phone:<E.164>``             string  the account id of a phone number
- ``smsbot:due``                       zset    account id -> earliest timer (µs since epoch);
  on a Redis Cluster ``smsbot:{due:<n>:<salt>}``, one per range of 256 slots (below)
- ``smsbot:optout``                    set     phone numbers that opted out
- ``smsbot:{unmatched}:list``          list    InboundSms from unknown numbers (JSON)
- ``smsbot:{unmatched}:seen:<p>:<id>`` string  claim of one provider message id (same slot as
  the list, so the claim and the append are one script)
- ``smsbot:sandbox:sent``              zset    the sandbox carrier's "sent" messages (JSON) by time;
  a zset, so that storing one again (a re-sent group) changes nothing
- ``smsbot:{ph:<E.164>}:sends``         zset    SendRecords of one phone by time (frequency caps):
  "<kind> <message id> <text hash> <account id>" in about 50 bytes (redis_codec.ledger_member;
  JSON for ids not ours, and as written before), the time being the score
- ``smsbot:sendq``                     zset    "<account id> <message id>" -> when a sender should
  look at the record (µs since epoch): reserved sends, retries, leases, reconciliations
- ``smsbot:msg:<message id>``          string  the account of a message that reached the
  senders (receipts carry our id only; expires after 30 days)
- ``smsbot:pid:<carrier>:<id>``        string  "<account id> <message id>" of a provider's
  message id (receipts that carry only the provider's id; expires after 30 days)
- ``smsbot:invalid``                   set     numbers a provider said cannot be reached
- ``smsbot:{receipts}:unmatched``      list    delivery receipts no record matched (JSON)
- ``smsbot:rate:<bucket>``             hash    a token bucket shared by every process (tokens,
  time): the per-carrier send rate; ``login:name:<sha256>`` and ``login:ip:<sha256>``, the
  console's sign-in attempts per agent name and per client address (bot/console/limits.py)
- ``smsbot:agents``                    hash    agent name -> AgentRecord (JSON): who may sign in
  to the console (bot/storage/redis_agents.py)
- ``smsbot:desk:open``                 zset    account id -> SLA due (µs since epoch) of every
  account with an open case: the queue's index. Kept like the due-timer index: written before
  the commit that opens a case (``ZADD LT``) and removed after the commit that resolves it, so
  a crash leaves an extra entry (skipped when listed; dropped by ``repair_index``), never a
  missing one. ``repair_index`` also re-adds every open case a SCAN finds
- ``smsbot:desk:events``               stream  the desk's live feed (bot.storage.desk_events),
  capped at about 10,000 entries
- ``smsbot:campaigns``                 zset    campaign id -> created (µs): every campaign
- ``smsbot:campaign:name:<name>``      string  the campaign id of a name (names are unique)
- ``smsbot:{unmatched}:handled``       list    unmatched messages taken off the list, with who
  linked (to which account) or dismissed them and when (JSON): kept for audit

Redis Cluster (``redis+cluster://``, bot/storage/resp_cluster.py): where each key lives and why
no script spans two slots.

- Every Lua script's keys are in one slot: one account's (``{acc:<id>}``: enqueue, commit with
  its case part, the outbound transition, the desk's steps, retention's edits), one
  campaign's (``{cmp:<id>}``: add, take, mark, set state), the unmatched list and its claims
  (``{unmatched}``), or a single key (the rate bucket, the receipts list, the agents' hash,
  compare-and-delete of a phone key). Redis itself refuses a script whose keys span slots
  (CROSSSLOT); the contract suites run every script on a real 3-primary cluster.
- The global keys (due index, senders' index, suppression and unreachable sets, desk index,
  campaign index and names, phone and message-id keys, sandbox log) are never in a script:
  they are separate commands in the same *group*, written before the script and removed
  after it (the rule of ``Store.move`` in bot/storage/base.py: an extra index entry or ledger
  charge is harmless, a missing one is not). Split already, so none had to be split for the
  cluster. On a cluster such a group reaches two or three primaries: the client keeps its
  order (a run with a write waits for what comes before it), so the rule still holds at the
  price of a round trip per primary.
- The due index is sharded on a cluster (``due_shards``): 64 shards, shard ``n`` indexing the
  accounts of the n-th range of 256 slots and tagged so that it lies in that range itself,
  so on the primary of (nearly) all its accounts. Measured (bench/cluster_groups.py, 3
  primaries, 400 replies): with one global index 1.6 of a reply's 5.0 groups reached
  several primaries (2.2 extra runs); sharded, 1.0 (1.4). A timer scan reads all 64 shards
  in one group (and ``smsbot:due``, which older versions wrote, moving its due entries to
  their shards). On one server the index stays one key: nothing to gain there.
- The other hot global keys stay single. Per inbound message the senders' index takes about
  2 commands, the suppression and unreachable sets one ``SISMEMBER`` each: O(log n) or O(1)
  commands on a primary that runs well over 100,000 such commands a second, against about
  1,000 messages a second per service process (bench/scale.py).
- The per-phone ledger (``{ph:<E.164>}``) and the message-id keys are spread by their own
  names over every primary.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PREFIX = "smsbot:"

# --- per account ---------------------------------------------------------------------------
ACCOUNT_TAG_PREFIX = PREFIX + "{acc:"
ACCOUNT_TAG_SUFFIX = "}"

ACCOUNT = "account"
QUEUE = "queue"
SEEN = "seen"
CONVERSATION = "conversation"
AUDIT = "audit"
OUTBOX = "outbox"
LOCK = "lock"
META = "meta"
DEFERRED = "deferred"
OUTBOUND = "outbound"
CASE = "case"
CASES = "cases"
ACCOUNT_CAMPAIGNS = "campaigns"

# --- global --------------------------------------------------------------------------------
PHONE_PREFIX = PREFIX + "phone:"
DUE = PREFIX + "due"
OPT_OUT = PREFIX + "optout"
UNMATCHED_TAG = PREFIX + "{unmatched}"
UNMATCHED = UNMATCHED_TAG + ":list"
UNMATCHED_SEEN_PREFIX = UNMATCHED_TAG + ":seen:"
SANDBOX = PREFIX + "sandbox:sent"
SENDS_PREFIX = PREFIX + "{ph:"
SEND_QUEUE = PREFIX + "sendq"
MESSAGE_PREFIX = PREFIX + "msg:"
PROVIDER_ID_PREFIX = PREFIX + "pid:"
INVALID_NUMBERS = PREFIX + "invalid"
UNMATCHED_RECEIPTS = PREFIX + "{receipts}:unmatched"
RATE_PREFIX = PREFIX + "rate:"
AGENTS = PREFIX + "agents"
DESK_OPEN = PREFIX + "desk:open"
DESK_EVENTS = PREFIX + "desk:events"
UNMATCHED_HANDLED = UNMATCHED_TAG + ":handled"
CAMPAIGNS = PREFIX + "campaigns"
CAMPAIGN_NAME_PREFIX = PREFIX + "campaign:name:"
CAMPAIGN_TAG_PREFIX = PREFIX + "{cmp:"


def usable_account_id(account_id: str) -> bool:
    """False for ids no key can be built for (empty, or with a brace)."""
    # A brace would end (or open) the hash tag early: the account's keys could then fall in
    # different slots, and an id such as "a}:seen:x" could collide with another account's
    # de-duplication key. AccountRecord's id pattern never allows braces.
    return bool(account_id) and "{" not in account_id and "}" not in account_id


def _check_account_id(account_id: str) -> str:
    if not usable_account_id(account_id):
        raise ValueError(f"invalid account id {account_id!r}: empty or contains a brace")
    return account_id


@functools.lru_cache(maxsize=4096)  # a message builds about ten keys of its account
def account_prefix(account_id: str) -> str:
    """``smsbot:{acc:<id>}:`` — the start of every key of the account."""
    return f"{ACCOUNT_TAG_PREFIX}{_check_account_id(account_id)}{ACCOUNT_TAG_SUFFIX}:"


def account(account_id: str) -> str:
    return account_prefix(account_id) + ACCOUNT


def queue(account_id: str) -> str:
    return account_prefix(account_id) + QUEUE


def seen(account_id: str, dedup: str) -> str:
    return f"{account_prefix(account_id)}{SEEN}:{dedup}"


def conversation(account_id: str) -> str:
    return account_prefix(account_id) + CONVERSATION


def audit(account_id: str) -> str:
    return account_prefix(account_id) + AUDIT


def outbox(account_id: str) -> str:
    return account_prefix(account_id) + OUTBOX


def lock(account_id: str) -> str:
    return account_prefix(account_id) + LOCK


def meta(account_id: str) -> str:
    return account_prefix(account_id) + META


def deferred(account_id: str) -> str:
    return account_prefix(account_id) + DEFERRED


def outbound(account_id: str) -> str:
    return account_prefix(account_id) + OUTBOUND


def case(account_id: str) -> str:
    return account_prefix(account_id) + CASE


def case_log(account_id: str) -> str:
    return account_prefix(account_id) + CASE + ":log"


def closed_case(account_id: str, case_id: str) -> str:
    if not case_id.isalnum():  # our ids are hex; anything else would build a stranger's key
        raise ValueError(f"invalid case id {case_id!r}")
    return f"{account_prefix(account_id)}{CASE}:{case_id}"


def closed_case_log(account_id: str, case_id: str) -> str:
    return closed_case(account_id, case_id) + ":log"


def cases(account_id: str) -> str:
    return account_prefix(account_id) + CASES


def send_member(account_id: str, message_id: str) -> str:
    """A record's member in the senders' index (account ids never hold a space)."""
    return f"{account_id} {message_id}"


def message(message_id: str) -> str:
    return MESSAGE_PREFIX + message_id


def provider_id(carrier: str, provider_message_id: str) -> str:
    return f"{PROVIDER_ID_PREFIX}{carrier}:{provider_message_id}"


def rate(bucket: str) -> str:
    return RATE_PREFIX + bucket


def sends(phone: str) -> str:
    return f"{SENDS_PREFIX}{phone}}}:sends"


def phone(number: str) -> str:
    return PHONE_PREFIX + number


def unmatched_seen(provider: str, msg_id: str) -> str:
    return f"{UNMATCHED_SEEN_PREFIX}{provider}:{msg_id}"


# --- the due index on a cluster ---------------------------------------------------------------
DUE_SHARDS = 64  # on a Redis Cluster only (see "Redis Cluster" above)
_DUE_WIDTH = REDIS_CLUSTER_HASH_SLOTS // DUE_SHARDS


@functools.cache
def due_shards() -> tuple[str, ...]:
    """Every shard of the due index: ``smsbot:{due:<n>:<salt>}``, shard ``n`` indexing the
    accounts whose slot is in the n-th range of 256 slots, its salt the first whose tag hashes
    into that same range (found once, about 64 tries a shard). A stored format: never change
    the scheme without reading the old keys too."""
    found: list[str] = []
    for n in range(DUE_SHARDS):
        salt = 0
        while key_slot(f"due:{n}:{salt}".encode()) // _DUE_WIDTH != n:
            salt += 1
        found.append(f"{PREFIX}{{due:{n}:{salt}}}")
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def due_shard(account_id: str) -> str:
    """The due index shard of an account (cluster mode), in its keys' slot range."""
    return due_shards()[key_slot(account(account_id).encode()) // _DUE_WIDTH]


def account_pattern(suffix: str) -> str:
    """SCAN pattern for one kind of per-account key, e.g. every account's queue."""
    return f"{ACCOUNT_TAG_PREFIX}*{ACCOUNT_TAG_SUFFIX}:{suffix}"


def account_of(key: str, suffix: str) -> str | None:
    """The account id of a per-account key ending in ``suffix``; None for any other key."""
    head = ACCOUNT_TAG_PREFIX
    tail = f"{ACCOUNT_TAG_SUFFIX}:{suffix}"
    if not (key.startswith(head) and key.endswith(tail)) or len(key) <= len(head) + len(tail):
        return None
    account_id = key[len(head) : -len(tail)]
    if "{" in account_id or "}" in account_id:
        return None  # e.g. a de-duplication key whose text happens to end in "}:queue"
    return account_id


def account_campaigns(account_id: str) -> str:
    return account_prefix(account_id) + ACCOUNT_CAMPAIGNS


# --- per campaign ----------------------------------------------------------------------------


def usable_campaign_id(campaign_id: str) -> bool:
    """Our campaign ids are hex (bot.ids); anything else could build a stranger's key."""
    return bool(campaign_id) and len(campaign_id) <= 64 and campaign_id.isalnum()


@dataclass(frozen=True)
class CampaignKeys:
    campaign: str
    members: str
    pending: str
    releasing: str
    released: str


def campaign_keys(campaign_id: str) -> CampaignKeys:
    if not usable_campaign_id(campaign_id):
        raise ValueError(f"invalid campaign id {campaign_id!r}")
    tag = f"{CAMPAIGN_TAG_PREFIX}{campaign_id}}}:"
    return CampaignKeys(
        tag + "campaign", tag + "members", tag + "pending", tag + "releasing", tag + "released"
    )


def campaign(campaign_id: str) -> str:
    return campaign_keys(campaign_id).campaign


def campaign_members(campaign_id: str) -> str:
    return campaign_keys(campaign_id).members


def campaign_pending(campaign_id: str) -> str:
    return campaign_keys(campaign_id).pending


def campaign_releasing(campaign_id: str) -> str:
    return campaign_keys(campaign_id).releasing


def campaign_name(name: str) -> str:
    return CAMPAIGN_NAME_PREFIX + name
