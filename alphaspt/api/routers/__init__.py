"""One router per resource; each is built by a function that receives its dependencies.

Routers carry their full path prefix themselves (rather than getting it from
``include_router``) so that a route's ``path`` is its full template, which the metrics
label requests by.
"""

from typing import Final

API_PREFIX: Final = "/api/v1"
