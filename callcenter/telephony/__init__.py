"""Telephony: the only package that imports pjsua2 (besides `doctor`, which measures the build).

`api` holds the protocol the rest of the code uses; `softswitch` the pjsua2 endpoint
(one per process, pumped from the asyncio/Twisted loop; shared music-on-hold players); `leg` one SIP call leg;
`media` prompt durations and format; `trust` who may call (sip.trusted,
per-source caps, P-Asserted-Identity); `admission` whether the worker takes one more call;
`settings` the SIP settings config validation builds without importing pjsua2.
"""
