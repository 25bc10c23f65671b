"""Service levels: business calendars, SLA policies and a ticket's due times."""
