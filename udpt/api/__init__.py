"""The REST API (UDPT's): list, inspect, add, flag, unflag and drop torrents.

Meant for trusted networks only, as UDPT's documentation says: it has tokens but
no TLS, so a token crosses the network in clear text (and, as ``?token=``, sits in
URLs). Bind it to a loopback or management address, never to the internet.

Reads answer from the projections; changes are events appended through the same
group-commit writer as announces, and a change is answered only once committed.
"""

from udpt.api.server import ApiServer

__all__ = ["ApiServer"]
