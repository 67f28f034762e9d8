"""The event bus: every agent, call and queue change published once to one Redis stream, pushed to
browsers over Server-Sent Events (``GET /events``) and delivered to configured webhooks.

    keys.py      the stream, the webhook consumer group and dead letters
    schema.py    event types, what a call-layer queue-log line becomes, who may see which event
    bus.py       publishing (the call layer), the per-process fan-out reader (Hub), queue.stats
    sse.py       the text/event-stream body of ``GET /events``
    webhooks.py  the ``webhooks:`` config, HMAC signing, delivery through a consumer group

Agent states and queue joins are published by routing's Lua scripts (``routing/lua/lib.lua``: publish,
agent_changed), atomically with the change; call events by the call layer through
``calls.records.queue_event``. docs/EVENTS.md is the contract pages and CRMs code against.
"""
