"""A Kite Connect v3 protocol simulator (REST, the ticker WebSocket and the
instruments dump), for tests and ``alphaspt up
--kite-sim``. It speaks the wire protocol only: the Kite broker talks to it through the
two root settings exactly as to ``api.kite.trade``.
"""

from alphaspt.kite_sim.app import Simulator, build_app
from alphaspt.kite_sim.book import Book, Limits, SimError
from alphaspt.kite_sim.faults import Faults
from alphaspt.kite_sim.server import SimServer

__all__ = ["Book", "Faults", "Limits", "SimError", "SimServer", "Simulator", "build_app"]
