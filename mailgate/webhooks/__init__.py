"""Webhooks: ticket events as signed JSON POSTs to the ``[[webhooks]]`` receivers.

``queue.py`` puts an event in the caller's transaction, ``payload.py`` writes and
signs what is sent, ``worker.py`` delivers it with retries.
"""
