"""The call layer: what a worker does with the media of a call, between telephony (the legs) and the
domain packages (ivr, routing, cdr, dialer) that decide what should happen to it.
"""
